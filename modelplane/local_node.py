"""A real node for the local cluster: containerd runs the pods, kubelet registers the node and runs its
probes, kube-proxy serves Services, and a registry with htpasswd auth stands in for ACR.

Everything stays on this machine: the node's address is on loopback (`NODE_IP`), pods live on the
bridge `mp-cni0` (`NODE_POD_CIDR`, no masquerade: nothing a pod sends leaves through the uplink), and
Services are reached as NodePorts on 127.0.0.1. Built by scripts/bootstrap-kubernetes (kubelet,
kube-proxy and containerd from Go modules; runc, CNI plugins, conntrack and the registry from Debian).

This sandbox cannot lower a process's oom_score_adj, so containerd runs with `restrict_oom_score_adj`
(the pod sandbox keeps containerd's own score instead of -998), and the kubelet accepts cgroup v1.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from modelplane.local_cluster import LocalCluster

CACHE = Path(os.environ.get("MODELPLANE_CACHE", Path.home() / ".cache" / "modelplane"))
CONTAINERD_VERSION = "v2.4.2"
METRICS_SERVER_VERSION = "v0.9.0"
NODE_BINARIES = ("kubelet", "kube-proxy", "containerd", "containerd-shim-runc-v2", "ctr", "metrics-server")
NODE_NAME = "modelplane-node-0"
NODE_IP = "10.240.0.2"
NODE_POD_CIDR = "10.245.0.0/24"
SERVICE_CIDR = "10.96.0.0/16"
BRIDGE = "mp-cni0"
# Pods reach each other (and Services, once kube-proxy has turned a service address into a pod's) on the
# bridge; whatever else a pod sends is dropped at the node, whatever the host's default FORWARD policy.
POD_FORWARD_RULES = (("-i", BRIDGE, "-o", BRIDGE, "-j", "ACCEPT"), ("-i", BRIDGE, "-j", "DROP"))
POD_RULE_COMMENT = ("-m", "comment", "--comment", "modelplane node: pods stay on the bridge")
CNI_BIN = Path("/usr/lib/cni")
RUNC = "/usr/sbin/runc"
RUNC_ROOT = "/run/containerd/runc/k8s.io"  # where containerd's runc shim keeps its state for "k8s.io"
SANDBOX_IMAGE = "docker.io/modelplane/pause:1"
REGISTRY_USER = "modelplane"
KUBELET_CHAINS = ("KUBE-FIREWALL", "KUBE-KUBELET-CANARY", "KUBE-IPTABLES-HINT")
ROUTE_LOCALNET = Path("/proc/sys/net/ipv4/conf/all/route_localnet")
# One real node per machine: it owns NODE_IP, the bridge and the kube-proxy rules.
NODE_LOCK = Path(tempfile.gettempdir()) / "modelplane-node.lock"
# The registry's blobs outlive a cluster (one runs at a time, under NODE_LOCK): an image pushed before is
# not pushed again, only its new layers.
REGISTRY_STORAGE = CACHE / "registry"


def node_dir(kubernetes_version: str) -> Path:
    """`$MODELPLANE_NODE_DIR` when set, else the bootstrap's cache folder."""
    configured = os.environ.get("MODELPLANE_NODE_DIR")
    name = f"node-{kubernetes_version}-containerd{CONTAINERD_VERSION}-metrics{METRICS_SERVER_VERSION}"
    default = CACHE / "kubernetes" / name
    return Path(configured) if configured else default


def missing_node_parts(root: Path) -> list[str]:
    """What a real node needs and this machine lacks."""
    missing = [name for name in NODE_BINARIES if not os.access(root / "bin" / name, os.X_OK)]
    missing += [str(root / "pause.tar")] if not (root / "pause.tar").is_file() else []
    missing += [
        tool for tool in (RUNC, "/usr/bin/docker-registry", "/usr/bin/htpasswd") if not os.access(tool, os.X_OK)
    ]
    missing += [str(CNI_BIN / "bridge")] if not (CNI_BIN / "bridge").exists() else []
    return missing


class ClusterError(RuntimeError):
    """The local cluster could not be started (a missing binary, a process that exited, a timeout)."""


def run_command(*args: str, check: bool = False, input_text: str | None = None) -> subprocess.CompletedProcess[str]:
    """A command's result; with `check`, a failure is a ClusterError that names it and shows its stderr."""
    result = subprocess.run(list(args), capture_output=True, text=True, input=input_text, timeout=120)
    if check and result.returncode != 0:
        raise ClusterError(f"`{' '.join(args)}` failed ({result.returncode}): {result.stderr.strip()[-2000:]}")
    return result


CONTAINERD_CONFIG = """\
version = 3
root = "{root}/root"
state = "{root}/state"

[grpc]
  address = "{socket}"

[plugins."io.containerd.cri.v1.images"]
  snapshotter = "overlayfs"
  [plugins."io.containerd.cri.v1.images".pinned_images]
    sandbox = "{sandbox}"
  [plugins."io.containerd.cri.v1.images".registry]
    config_path = "{root}/certs.d"

[plugins."io.containerd.cri.v1.runtime"]
  restrict_oom_score_adj = true
  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = ["{cni_bin}"]
    conf_dir = "{root}/cni"
  [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
      SystemdCgroup = false
      BinaryName = "{runc}"
"""


def cni_config() -> dict[str, object]:
    """A bridge with host-local addresses; no masquerade, so pod traffic has no way off the machine."""
    bridge = {
        "type": "bridge",
        "bridge": BRIDGE,
        "isGateway": True,
        "ipMasq": False,
        "hairpinMode": True,
        # Service addresses are reached through the node (kube-proxy's rules), and nothing else is routed.
        "ipam": {
            "type": "host-local",
            "ranges": [[{"subnet": NODE_POD_CIDR}]],
            "routes": [{"dst": SERVICE_CIDR}],
        },
    }
    return {
        "cniVersion": "1.0.0",
        "name": "modelplane",
        "plugins": [bridge, {"type": "portmap", "capabilities": {"portMappings": True}}, {"type": "loopback"}],
    }


def kubelet_config(socket: Path, port: int, healthz_port: int, client_ca: Path) -> dict[str, object]:
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "cgroupDriver": "cgroupfs",
        "failCgroupV1": False,
        "failSwapOn": False,
        # The API server (logs, exec) proves itself with a client certificate of the cluster's CA.
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": False},
            "x509": {"clientCAFile": str(client_ca)},
        },
        "authorization": {"mode": "AlwaysAllow"},
        "containerRuntimeEndpoint": f"unix://{socket}",
        "podCIDR": NODE_POD_CIDR,
        "address": NODE_IP,
        "port": port,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": healthz_port,
        "enforceNodeAllocatable": [],
        # A shared machine: evict nothing for disk or memory pressure that other work causes.
        "evictionHard": {"memory.available": "50Mi", "nodefs.available": "1%", "imagefs.available": "1%"},
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "serializeImagePulls": False,
        "resolvConf": "",
    }


@dataclass(frozen=True)
class RegistryCredentials:
    address: str
    username: str
    password: str

    def write(self, path: Path) -> Path:
        path.touch(mode=0o600)
        path.write_text(json.dumps({"address": self.address, "username": self.username, "password": self.password}))
        return path


@dataclass
class LocalNode:
    """One real node of `cluster`, with the registry its pods pull from."""

    cluster: LocalCluster
    root: Path
    netns_before: set[str] = field(default_factory=set)
    registry: RegistryCredentials | None = None
    route_localnet: str = "0"
    """The sysctl kube-proxy turns on for NodePorts on 127.0.0.1, as it was before: put back on stop."""
    lock: IO[str] | None = None
    """Held while this node owns the machine's node address, bridge and rules."""

    @property
    def folder(self) -> Path:
        return self.cluster.workdir / "node"

    @property
    def socket(self) -> Path:
        return self.folder / "containerd.sock"

    def start(self) -> None:
        missing = missing_node_parts(self.root)
        if missing:
            raise ClusterError(f"a real node needs {', '.join(missing)}: run scripts/bootstrap-kubernetes")
        self.lock = _take_node_lock(str(self.cluster.workdir))
        self.folder.mkdir(parents=True, exist_ok=True)
        self.netns_before = set(_netns())
        self.route_localnet = ROUTE_LOCALNET.read_text().strip()
        self._add_address()
        _forward_pod_traffic()
        self.registry = self._start_registry()
        self._start_containerd()
        self._start_kubelet()
        self._start_kube_proxy()
        self.cluster.wait_for(f"node {NODE_NAME} Ready", self._ready, timeout=120)

    def _spawn(self, name: str, args: list[str], binary: Path, env: dict[str, str] | None = None) -> None:
        """A node process, which holds the node lock too: while any of them runs (even after the
        process that started the node was killed), no second node can start."""
        assert self.lock is not None
        self.cluster.spawn(name, args, binary=binary, env=env, keep_fds=(self.lock.fileno(),))

    def _add_address(self) -> None:
        if NODE_IP not in run_command("ip", "-o", "addr", "show", "dev", "lo").stdout:
            run_command("ip", "addr", "add", f"{NODE_IP}/32", "dev", "lo", check=True)

    def _start_registry(self) -> RegistryCredentials:
        folder = self.folder / "registry"
        folder.mkdir(parents=True, exist_ok=True)
        credentials = RegistryCredentials(
            f"127.0.0.1:{self.cluster.free_port()}", REGISTRY_USER, secrets.token_urlsafe(24)
        )
        # The password goes in on stdin: never on a command line other processes can read.
        hashed = run_command(
            "htpasswd", "-Bin", credentials.username, check=True, input_text=credentials.password
        ).stdout
        (folder / "htpasswd").write_text(hashed)
        config = {
            "version": 0.1,
            "log": {"level": "warn"},
            "storage": {"filesystem": {"rootdirectory": str(REGISTRY_STORAGE)}, "delete": {"enabled": True}},
            "http": {"addr": credentials.address},
            "auth": {"htpasswd": {"realm": "modelplane", "path": str(folder / "htpasswd")}},
        }
        (folder / "config.yml").write_text(json.dumps(config))
        self._spawn("registry", ["serve", str(folder / "config.yml")], binary=Path("/usr/bin/docker-registry"))
        credentials.write(self.cluster.workdir / "registry.json")
        return credentials

    def _start_containerd(self) -> None:
        root = self.folder / "containerd"
        (root / "cni").mkdir(parents=True, exist_ok=True)
        (root / "cni" / "10-modelplane.conflist").write_text(json.dumps(cni_config()))
        if self.registry is not None:
            hosts = root / "certs.d" / self.registry.address
            hosts.mkdir(parents=True, exist_ok=True)
            server = f"http://{self.registry.address}"
            (hosts / "hosts.toml").write_text(
                f'server = "{server}"\n\n[host."{server}"]\n  capabilities = ["pull", "resolve"]\n'
            )
        config = CONTAINERD_CONFIG.format(
            root=root, socket=self.socket, sandbox=SANDBOX_IMAGE, cni_bin=CNI_BIN, runc=RUNC
        )
        (root / "config.toml").write_text(config)
        binaries = self.root / "bin"
        env = {**os.environ, "PATH": f"{binaries}:{os.environ.get('PATH', '')}"}
        self._spawn("containerd", ["--config", str(root / "config.toml")], binary=binaries / "containerd", env=env)
        self.cluster.wait_for("containerd", self.socket.exists)
        self.ctr("images", "import", str(self.root / "pause.tar"))

    def ctr(self, *args: str) -> str:
        ctr = str(self.root / "bin" / "ctr")
        return run_command(ctr, "--address", str(self.socket), "--namespace", "k8s.io", *args, check=True).stdout

    def _start_kubelet(self) -> None:
        ports = (self.cluster.free_port(), self.cluster.free_port())
        config = kubelet_config(self.socket, *ports, client_ca=self.cluster.workdir / "pki" / "ca.crt")
        (self.folder / "kubelet.json").write_text(json.dumps(config))
        self._spawn(
            "kubelet",
            [
                f"--config={self.folder / 'kubelet.json'}",
                f"--kubeconfig={self.cluster.kubeconfig}",
                f"--root-dir={self.folder / 'kubelet'}",
                f"--hostname-override={NODE_NAME}",
                f"--node-ip={NODE_IP}",
            ],
            binary=self.root / "bin" / "kubelet",
        )

    def _start_kube_proxy(self) -> None:
        self._spawn(
            "kube-proxy",
            [
                f"--kubeconfig={self.cluster.kubeconfig}",
                f"--hostname-override={NODE_NAME}",
                "--proxy-mode=iptables",
                f"--cluster-cidr={NODE_POD_CIDR}",
                # NodePorts answer on loopback only: what the CLI and the tests call.
                "--nodeport-addresses=127.0.0.0/8",
                f"--metrics-bind-address=127.0.0.1:{self.cluster.free_port()}",
                f"--healthz-bind-address=127.0.0.1:{self.cluster.free_port()}",
                "--conntrack-max-per-core=0",
            ],
            binary=self.root / "bin" / "kube-proxy",
        )

    def _ready(self) -> bool:
        node = self.cluster.get_json("node", NODE_NAME)
        return any(c["type"] == "Ready" and c["status"] == "True" for c in node["status"].get("conditions", []))

    def stop(self) -> None:
        """Stop the pods' containers, then leave no mount, network namespace, bridge, rule or address behind."""
        if self.lock is None:
            return  # never started: what is there belongs to another cluster
        for container in _our_containers(self.folder):
            run_command(RUNC, "--root", RUNC_ROOT, "kill", container, "KILL")
            run_command(RUNC, "--root", RUNC_ROOT, "delete", "--force", container)

    def clean_up(self) -> None:
        """After the node's processes have stopped."""
        if self.lock is None:
            return
        _kill_shims(self.socket)
        run_command(str(self.root / "bin" / "kube-proxy"), "--cleanup")
        for mount in _mounts_under(self.folder):
            run_command("umount", "-l", mount)
        for name in set(_netns()) - self.netns_before:
            run_command("ip", "netns", "delete", name)
        run_command("ip", "link", "delete", BRIDGE)
        run_command("ip", "addr", "del", f"{NODE_IP}/32", "dev", "lo")
        _drop_kubelet_chains()
        _stop_forwarding_pod_traffic()
        ROUTE_LOCALNET.write_text(self.route_localnet)
        shutil.rmtree(self.folder / "kubelet", ignore_errors=True)
        self.lock.close()
        self.lock = None


def _take_node_lock(owner: str, path: Path = NODE_LOCK) -> IO[str]:
    """The machine's node lock, or a ClusterError naming the cluster that holds it."""
    handle = path.open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        handle.close()
        raise ClusterError(
            f"another local cluster with a real node is running ({holder}); one runs per machine "
            f"(it owns {NODE_IP}, the bridge {BRIDGE} and the NodePorts): stop it first"
        ) from None
    handle.truncate(0)
    handle.write(f"pid {os.getpid()}, {owner}\n")
    handle.flush()
    return handle


def _kill_shims(socket: Path) -> None:
    """The runc shims of this node's containerd (they outlive it by design)."""
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            words = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue
        if words and words[0].endswith(b"containerd-shim-runc-v2") and str(socket).encode() in words:
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(cmdline.parent.name), signal.SIGKILL)


def _drop_kubelet_chains() -> None:
    """The iptables chains the kubelet makes (kube-proxy's `--cleanup` removes its own)."""
    for tool in ("iptables", "ip6tables"):
        for table in ("nat", "filter", "mangle"):
            for chain in KUBELET_CHAINS:
                for hook in ("INPUT", "OUTPUT"):
                    run_command(tool, "-t", table, "-D", hook, "-j", chain)
                run_command(tool, "-t", table, "-F", chain)
                run_command(tool, "-t", table, "-X", chain)


def _forward_pod_traffic() -> None:
    """POD_FORWARD_RULES at the head of FORWARD, in their order (once, however often the node starts)."""
    _stop_forwarding_pod_traffic()
    for position, rule in enumerate(POD_FORWARD_RULES, start=1):
        run_command("iptables", "-I", "FORWARD", str(position), *rule[:-2], *POD_RULE_COMMENT, *rule[-2:], check=True)


def _stop_forwarding_pod_traffic() -> None:
    for rule in POD_FORWARD_RULES:
        while run_command("iptables", "-D", "FORWARD", *rule[:-2], *POD_RULE_COMMENT, *rule[-2:]).returncode == 0:
            pass


def _netns() -> list[str]:
    return [line.split()[0] for line in run_command("ip", "netns", "list").stdout.splitlines() if line.strip()]


def _our_containers(folder: Path) -> list[str]:
    """Containers runc runs from bundles under the node's folder."""
    listed = run_command(RUNC, "--root", RUNC_ROOT, "list", "--format", "json").stdout.strip() or "[]"
    return [entry["id"] for entry in json.loads(listed) or [] if str(entry.get("bundle", "")).startswith(str(folder))]


def _mounts_under(folder: Path) -> list[str]:
    """Mount points under `folder`, deepest first."""
    mounts = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if point.startswith(str(folder)):
            mounts.append(point)
    return sorted(mounts, key=len, reverse=True)
