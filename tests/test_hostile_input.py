"""Hostile input to a local endpoint (router, gate, AML scoring server), under load on loopback: 20,000
requests from 64 clients mixing malformed and invalid JSON, wrong content types, wrong, missing and
oversized keys, path tricks, bodies over the limit (whole and chunked), with connections that send
their headers a byte at a time alongside. Each request gets the status AML's own server (or the
router, for what never reaches it) gives, no 5xx, no worker dies, and valid requests are served at the
same as before afterwards: every container of the endpoint back to the processes, threads, open
descriptors and memory it had (a server the run harmed holds them: leaked sockets, stuck workers)."""

from __future__ import annotations

import http.client
import json
import os
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import pytest

from modelplane.engine import PROJECT_ROOT
from tests.conftest import free_port, modelplane, one_endpoint_stack, succeeded

pytestmark = [pytest.mark.engine, pytest.mark.docker]

VALID = json.dumps({"data": [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]]}).encode()
TOTAL = 20_000
CLIENTS = 64
BIG = 50 * 1024 * 1024


@dataclass(frozen=True)
class Case:
    name: str
    method: str
    path: str
    body: bytes
    headers: dict[str, str]
    expected: int
    weight: int
    """Requests of this case per 100 (bodies over the limit are counted apart)."""


def cases(key: str) -> list[Case]:
    auth = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    return [
        Case("valid", "POST", "/score", VALID, auth, 200, 36),
        Case("malformed JSON", "POST", "/score", b'{"data": [1,', auth, 400, 10),
        Case("invalid UTF-8", "POST", "/score", b'{"data": "\xff\xfe"}', auth, 400, 10),
        Case("text/plain", "POST", "/score", VALID, {**auth, "Content-Type": "text/plain"}, 415, 6),
        Case("wrong key", "POST", "/score", VALID, {**auth, "Authorization": "Bearer not-the-key"}, 401, 8),
        Case("missing key", "POST", "/score", VALID, {"Content-Type": "application/json"}, 401, 8),
        Case("20 KB key", "POST", "/score", VALID, {**auth, "Authorization": "Bearer " + "k" * 20_000}, 400, 4),
        Case("/score/..", "POST", "/score/..", VALID, auth, 404, 6),
        Case("//score", "POST", "//score", VALID, auth, 200, 6),
        Case("/%2Fscore", "POST", "/%2Fscore", VALID, auth, 200, 6),
    ]


@dataclass
class HostileTarget:
    port: int
    key: str
    container: Any
    """The deployment's container (the gate and AML's scoring server)."""
    containers: list[Any]
    """Every container of the endpoint: the router's and the deployment's."""

    def send(self, case: Case) -> int:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            connection.request(case.method, case.path, body=case.body, headers=case.headers)
            return connection.getresponse().status
        except (OSError, http.client.HTTPException) as error:
            return -len(type(error).__name__)  # a connection error: never an expected status
        finally:
            connection.close()

    def send_chunked(self, size: int) -> int:
        """A chunked body of `size` bytes (no Content-Length for the router to refuse it by)."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        chunks = (b"\0" * (1024 * 1024) for _ in range(size // (1024 * 1024)))
        headers = {"Authorization": f"Bearer {self.key}", "Content-Type": "application/json"}
        try:
            connection.request("POST", "/score", body=chunks, headers=headers, encode_chunked=True)
            return connection.getresponse().status
        except (OSError, http.client.HTTPException):
            return -1
        finally:
            connection.close()


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostileTarget]:
    port = free_port()
    stack, env = one_endpoint_stack(tmp_path_factory.mktemp("hostile"), f"hostile{port}", f"port: {port}")
    succeeded(modelplane("up", stack, env, "--yes"))
    outputs = json.loads(succeeded(modelplane("outputs", stack, env, "--show-secrets")).stdout)
    endpoint = [f"modelplane.stack={stack.stem}", "modelplane.endpoint=web"]
    containers = docker.from_env().containers.list(filters={"label": endpoint})
    (container,) = docker.from_env().containers.list(filters={"label": [*endpoint, "modelplane.deployment=default"]})
    assert len(containers) == 2, containers
    yield HostileTarget(port, outputs["endpoint_keys"]["web"]["primary_key"], container, containers)
    modelplane("destroy", stack, env, "--yes")
    (PROJECT_ROOT / f"Pulumi.{stack.stem}.yaml").unlink(missing_ok=True)


def _valid_rate(target: HostileTarget, count: int = 2_000, clients: int = 8) -> float:
    """Valid requests answered per second (all of them 200), each client on one kept-alive connection:
    the hostile run leaves ~20,000 of the test's own loopback ports in TIME_WAIT, which would slow new
    connections, not the endpoint."""
    valid = cases(target.key)[0]

    def client(share: int) -> Counter[int]:
        connection = http.client.HTTPConnection("127.0.0.1", target.port, timeout=60)
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


@dataclass
class SlowClients:
    """Connections that send a request's headers a byte at a time, as a slow-loris client does."""

    port: int
    count: int = 32

    def __post_init__(self) -> None:
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._trickle, daemon=True) for _ in range(self.count)]

    def _trickle(self) -> None:
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as sock:
            for byte in b"POST /score HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 10_000:
                if self.stop.wait(0.2):
                    return
                try:
                    sock.send(bytes([byte]))
                except OSError:
                    return  # the router gave up on it: what it should do

    def __enter__(self) -> SlowClients:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=10)


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


def _workers_booted(container: Any) -> int:
    return int(container.logs().decode(errors="replace").count("Booting worker"))


def test_hostile_input_under_load_gets_the_right_answers_and_breaks_nothing(target: HostileTarget) -> None:
    _valid_rate(target)  # warms the workers up: the first requests of a new server are slower
    before_rate = _valid_rate(target)
    before = _footprint(target.containers)
    booted = _workers_booted(target.container)
    mix = [case for case in cases(target.key) for _ in range(case.weight)]
    plan = [mix[i % len(mix)] for i in range(TOTAL)]
    started = time.monotonic()
    with SlowClients(target.port) as slow, ThreadPoolExecutor(CLIENTS) as pool:
        answered = list(pool.map(lambda case: (case.name, case.expected, target.send(case)), plan))
        elapsed = time.monotonic() - started
        big = _big(target.key)
        oversized = list(pool.map(lambda _: target.send(big), range(8)))
        chunked = list(pool.map(lambda _: target.send_chunked(BIG), range(8)))
        during = _footprint(target.containers)
    # The footprint sees connections: the router holds the slow clients' (nginx waits 60 s for headers).
    assert during.descriptors >= before.descriptors + slow.count, (before, during)
    wrong = Counter((name, expected, got) for name, expected, got in answered if got != expected)
    assert not wrong, wrong.most_common(10)
    assert oversized == [413] * 8 and chunked == [413] * 8, (oversized, chunked)
    # No worker died or was restarted, and the container did not restart.
    target.container.reload()
    assert target.container.attrs["RestartCount"] == 0
    assert _workers_booted(target.container) == booted
    after = _settled_footprint(target.containers, before)
    assert after.within(before), (before, after)
    after_rate = _valid_rate(target)
    by_status = Counter(got for _, _, got in answered)
    print(
        f"\n[hostile] {len(answered)} requests at c={CLIENTS} in {elapsed:.1f} s: {dict(sorted(by_status.items()))}; "
        f"valid requests/s before {before_rate:.0f}, after {after_rate:.0f}; "
        f"footprint before {before}, after {after}"
    )


def _big(key: str) -> Case:
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    return Case("50 MiB body", "POST", "/score", b"\0" * BIG, headers, 413, 0)
