"""Hostile input to a local endpoint (router, gate, AML scoring server), under load on loopback: the
hostile run of bench/hostile.py (20,000 requests from 64 clients mixing malformed and invalid JSON,
wrong content types, wrong, missing and oversized keys, path tricks, bodies over the limit whole and
chunked, with connections that send their headers a byte at a time alongside). Each request gets the
status AML's own server (or the router, for what never reaches it) gives, no 5xx, no worker dies, valid
requests are still served afterwards, and every container of the endpoint is back to the processes,
threads, open descriptors and memory it had (a server the run harmed holds them: leaked sockets, stuck
workers). How fast valid requests are served after, against an untouched twin, is bench section
`hostile` (docs/performance.md)."""

from __future__ import annotations

import http.client
import json
import os
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import pytest

from bench.hostile import Endpoint, cases, hostile_run
from modelplane.engine import PROJECT_ROOT
from tests.conftest import free_port, modelplane, one_endpoint_stack, succeeded

pytestmark = [pytest.mark.engine, pytest.mark.docker]


@dataclass
class HostileTarget:
    endpoint: Endpoint
    container: Any
    """The deployment's container (the gate and AML's scoring server)."""
    router: Any
    containers: list[Any]
    """Every container of the endpoint: the router's and the deployment's."""


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostileTarget]:
    port = free_port()
    stack, env = one_endpoint_stack(tmp_path_factory.mktemp("hostile"), f"hostile{port}", f"port: {port}")
    succeeded(modelplane("up", stack, env, "--yes"))
    outputs = json.loads(succeeded(modelplane("outputs", stack, env, "--show-secrets")).stdout)
    endpoint = [f"modelplane.stack={stack.stem}", "modelplane.endpoint=web"]
    containers = docker.from_env().containers.list(filters={"label": endpoint})
    (container,) = docker.from_env().containers.list(filters={"label": [*endpoint, "modelplane.deployment=default"]})
    (router,) = [found for found in containers if found.id != container.id]
    key = outputs["endpoint_keys"]["web"]["primary_key"]
    yield HostileTarget(Endpoint(port, key), container, router, containers)
    modelplane("destroy", stack, env, "--yes")
    (PROJECT_ROOT / f"Pulumi.{stack.stem}.yaml").unlink(missing_ok=True)


def _valid_rate(endpoint: Endpoint, count: int = 2_000, clients: int = 8) -> float:
    """Valid requests answered per second (all of them 200), each client on one kept-alive connection:
    the hostile run leaves ~20,000 of the test's own loopback ports in TIME_WAIT, which would slow new
    connections, not the endpoint."""
    valid = cases(endpoint.key)[0]

    def client(share: int) -> Counter[int]:
        connection = http.client.HTTPConnection("127.0.0.1", endpoint.port, timeout=60)
        statuses: Counter[int] = Counter()
        for _ in range(share):
            connection.request(valid.method, valid.path, body=valid.body, headers=valid.headers)
            response = connection.getresponse()
            response.read()
            statuses[response.status] += 1
        connection.close()
        return statuses

    started = time.monotonic()
    with ThreadPoolExecutor(clients) as pool:
        statuses = sum(pool.map(client, [count // clients] * clients), Counter())
    assert statuses == Counter({200: count}), statuses
    return count / (time.monotonic() - started)


@dataclass(frozen=True)
class Footprint:
    """What the endpoint's containers (router and deployment) hold, read from /proc on the host."""

    processes: int
    threads: int
    descriptors: int
    resident_mib: float

    def within(self, baseline: Footprint) -> bool:
        """No more than `baseline` with a little slack: an idle server's threads and descriptors come
        and go by a few, and a Python heap keeps some of what a burst of 20,000 requests allocated."""
        return (
            self.processes == baseline.processes
            and self.threads <= baseline.threads + 4
            and self.descriptors <= baseline.descriptors + 8
            and self.resident_mib <= baseline.resident_mib + 64
        )


def _footprint(containers: list[Any]) -> Footprint:
    pids = []
    for container in containers:
        top = container.top()
        pids += [int(row[top["Titles"].index("PID")]) for row in top["Processes"]]
    threads = descriptors = resident_kib = 0
    for pid in pids:
        status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
        threads += int(status["Threads"])
        resident_kib += int(status["VmRSS"].split()[0])
        descriptors += len(os.listdir(f"/proc/{pid}/fd"))
    return Footprint(len(pids), threads, descriptors, resident_kib / 1024)


def _settled_footprint(containers: list[Any], baseline: Footprint, seconds: float = 30) -> Footprint:
    """The footprint once back within `baseline`, or as it is after `seconds` (connections the clients
    closed take the servers a moment to notice)."""
    deadline = time.monotonic() + seconds
    while not (now := _footprint(containers)).within(baseline) and time.monotonic() < deadline:
        time.sleep(1)
    return now


def _kernel_setting(container: Any, name: str) -> str:
    """A sysctl as the processes in `container` see it, whitespace collapsed."""
    result = container.exec_run(["cat", f"/proc/sys/{name.replace('.', '/')}"])
    assert result.exit_code == 0, result.output
    return " ".join(result.output.decode().split())


def test_the_router_has_the_ports_to_proxy_a_burst(target: HostileTarget) -> None:
    """Each proxied request is a new connection to the deployment, whose port waits 60 s in TIME_WAIT:
    with the kernel's default range (28,000 ports) a burst of hostile requests left valid ones at ~40%
    of their speed for a minute (docs/reliability.md). The router's own namespace has the whole range
    and reuses TIME_WAIT ports."""
    assert _kernel_setting(target.router, "net.ipv4.ip_local_port_range") == "1024 65535"
    assert _kernel_setting(target.router, "net.ipv4.tcp_tw_reuse") == "1"
    assert _kernel_setting(target.container, "net.ipv4.ip_local_port_range") != "1024 65535", "only the router's"


def _workers_booted(container: Any) -> int:
    return int(container.logs().decode(errors="replace").count("Booting worker"))


def test_hostile_input_under_load_gets_the_right_answers_and_breaks_nothing(target: HostileTarget) -> None:
    _valid_rate(target.endpoint)  # warms the workers up: the first requests of a new server are slower
    before_rate = _valid_rate(target.endpoint)
    before = _footprint(target.containers)
    booted = _workers_booted(target.container)
    during: list[Footprint] = []
    run = hostile_run(target.endpoint, lambda: during.append(_footprint(target.containers)))
    assert not run.wrong(), run.wrong().most_common(10)
    assert run.oversized == [413] * 8 and run.chunked == [413] * 8, (run.oversized, run.chunked)
    # The footprint sees connections: the router holds the slow clients' (nginx waits 60 s for headers).
    assert during[0].descriptors >= before.descriptors + run.slow_clients, (before, during)
    # No worker died or was restarted, and the container did not restart.
    target.container.reload()
    assert target.container.attrs["RestartCount"] == 0
    assert _workers_booted(target.container) == booted
    after = _settled_footprint(target.containers, before)
    assert after.within(before), (before, after)
    after_rate = _valid_rate(target.endpoint)
    print(
        f"\n[hostile] {len(run.answered)} requests in {run.seconds:.1f} s: {run.statuses()}; "
        f"valid requests/s before {before_rate:.0f}, after {after_rate:.0f}; "
        f"footprint before {before}, during {during[0]}, after {after}"
    )
