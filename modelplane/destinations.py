"""Where a request may go: a private address must be one this machine carries itself.

A local cluster's Service address (a ClusterIP such as 10.96.0.10) is only served where kube-proxy
runs; without it the kernel sends the packet to the default gateway, off the machine, to whatever
answers there. So before Modelplane calls an endpoint, each address of its host is checked with the
kernel's own routing decision (`ip route get`): loopback, an address of this machine, or a network
behind one of its own devices (a Docker or cluster bridge) is carried here; a private address the
kernel would hand to the uplink (the device of the default route) is not, and is refused. Public
addresses are a real remote service (Azure) and pass.
"""

from __future__ import annotations

import functools
import ipaddress
import shutil
import socket
import subprocess
from urllib.parse import urlparse


class RemoteDestinationError(Exception):
    """A request would leave the machine for a private address nobody here serves."""


def _ip(*args: str) -> str:
    ip = shutil.which("ip")
    if ip is None:
        return ""
    result = subprocess.run([ip, *args], capture_output=True, text=True, timeout=5, check=False)
    return result.stdout if result.returncode == 0 else ""


def _device(route: str) -> str | None:
    words = route.split()
    return words[words.index("dev") + 1] if "dev" in words[:-1] else None


@functools.cache
def uplink() -> str | None:
    """The device of the default route: what leads off the machine."""
    return _device(_ip("route", "show", "default"))


@functools.cache
def route_to(address: str) -> str:
    """The kernel's route for an address, as `ip route get` prints it ("" when unknown)."""
    return _ip("route", "get", address).strip()


def carried_here(address: str) -> bool:
    """Whether packets to `address` stay on this machine (loopback, a local address, a local bridge)."""
    ip = ipaddress.ip_address(address)
    if ip.is_loopback:
        return True
    route = route_to(address)
    if route.startswith("local "):
        return True
    device = _device(route)
    return device is not None and device != uplink() and " via " not in f" {route} "


def allowed(address: str) -> bool:
    """Public addresses are remote services; private ones must be carried here."""
    ip = ipaddress.ip_address(address)
    return carried_here(address) or not (ip.is_private or ip.is_reserved or ip.is_link_local)


def check_url(url: str) -> None:
    """Raise RemoteDestinationError when the URL's host is a private address this machine does not carry."""
    host = urlparse(url).hostname
    if not host:
        return
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)}
    except socket.gaierror:
        return  # The request itself reports an unknown host.
    for address in sorted(addresses):
        if not allowed(str(address)):
            route = route_to(str(address)) or "no route"
            raise RemoteDestinationError(
                f"{url}: {address} is a private address this machine does not carry (the kernel routes it"
                f" `{route}`, off the machine); a local cluster's Service address needs kube-proxy on this"
                " machine, or a NodePort/port-forward on 127.0.0.1"
            )
