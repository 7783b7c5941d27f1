"""Hostile input to a local endpoint, and bench section `hostile`.

The hostile run (tests/test_hostile_input.py checks its every answer): 20,000 requests from 64
clients mixing malformed and invalid JSON, wrong content types, wrong, missing and oversized keys and
path tricks with valid requests, then bodies over the limit (whole and chunked), while connections
send their headers a byte at a time alongside.

The section: does an endpoint serve valid requests as fast after a hostile run as before? Two local
endpoints of one stack on the same image, `attacked` (which gets the hostile run) and `untouched`
(which gets nothing), measured in turn with wrk before and after: the machine's noise falls on both,
so attacked/untouched after, over the same ratio before, is what the run cost (1.0: nothing).
"""

from __future__ import annotations

import http.client
import json
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from statistics import median
from typing import Any

from bench.wrk import SAMPLE, wrk

ROOT = Path(__file__).resolve().parent.parent

VALID = json.dumps(SAMPLE).encode()
TOTAL = 20_000
CLIENTS = 64
BIG = 50 * 1024 * 1024
ROUNDS = 3
"""wrk runs per endpoint before and after, taken in turn (the median is kept)."""
WRK_CONCURRENCY = 16
TARGET_KEPT = 0.9


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
    """The mix, each case with the status AML's own server (or the router, for what never reaches it) gives."""
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


def oversized(key: str) -> Case:
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    return Case("50 MiB body", "POST", "/score", b"\0" * BIG, headers, 413, 0)


@dataclass(frozen=True)
class Endpoint:
    """A local endpoint on 127.0.0.1:`port` and its key."""

    port: int
    key: str

    def send(self, case: Case) -> int:
        """The status of one request on a new connection; a negative number for a connection error."""
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


def _trickle(port: int, stop: threading.Event) -> None:
    """A request's headers a byte every 0.2 s, as a slow-loris client sends them, until `stop`."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        for byte in b"POST /score HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 10_000:
            if stop.wait(0.2):
                return
            try:
                sock.send(bytes([byte]))
            except OSError:
                return  # the router gave up on it: what it should do


@contextmanager
def slow_clients(port: int, count: int = 32) -> Iterator[int]:
    """`count` slow-loris connections to `port` while the block runs; yields their number."""
    stop = threading.Event()
    threads = [threading.Thread(target=_trickle, args=(port, stop), daemon=True) for _ in range(count)]
    for thread in threads:
        thread.start()
    try:
        yield count
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=10)


@dataclass(frozen=True)
class HostileRun:
    answered: list[tuple[str, int, int]]
    """(case, expected status, status got) for each of the mix's requests."""
    oversized: list[int]
    """The statuses of eight 50 MiB bodies sent whole."""
    chunked: list[int]
    """The statuses of eight 50 MiB bodies sent chunked."""
    seconds: float
    """How long the mix took."""
    slow_clients: int
    """How many slow-header connections ran alongside."""

    def wrong(self) -> Counter[tuple[str, int, int]]:
        return Counter(answer for answer in self.answered if answer[2] != answer[1])

    def statuses(self) -> dict[int, int]:
        return dict(sorted(Counter(got for _, _, got in self.answered).items()))


def hostile_run(endpoint: Endpoint, while_slow_clients_connected: Callable[[], None] = lambda: None) -> HostileRun:
    """The hostile run against `endpoint`; `while_slow_clients_connected` is called after the last
    request, before the slow clients hang up."""
    mix = [case for case in cases(endpoint.key) for _ in range(case.weight)]
    plan = [mix[i % len(mix)] for i in range(TOTAL)]
    started = time.monotonic()
    with slow_clients(endpoint.port) as slow, ThreadPoolExecutor(CLIENTS) as pool:
        answered = list(pool.map(lambda case: (case.name, case.expected, endpoint.send(case)), plan))
        seconds = time.monotonic() - started
        big = oversized(endpoint.key)
        whole = list(pool.map(lambda _: endpoint.send(big), range(8)))
        chunked = list(pool.map(lambda _: endpoint.send_chunked(BIG), range(8)))
        while_slow_clients_connected()
    return HostileRun(answered, whole, chunked, seconds, slow)


# --- the bench section ----------------------------------------------------------------------------

ENDPOINTS = ("attacked", "untouched")


def _declare(folder: Path, ports: dict[str, int]) -> Path:
    shutil.copytree(ROOT / "examples" / "sklearn-regression", folder / "example")
    stack = folder / f"hostilebench{ports['attacked']}.yaml"
    endpoints = "".join(f"  {name}: {{image: scorer, port: {port}}}\n" for name, port in ports.items())
    stack.write_text(
        "models:\n  ridge: {path: example/model/sklearn_regression_model.pkl, framework: scikit-learn}\n"
        "images:\n  scorer: {inference_config: example/inferenceconfig.json, source_directory: example, "
        f"models: [ridge]}}\nendpoints:\n{endpoints}"
    )
    (folder / "state").mkdir()
    (folder / "passphrase").write_text("bench\n")
    return stack


def _modelplane(stack: Path, *args: str, check: bool = True) -> str:
    from bench.updates import state_env

    command = [str(ROOT / ".venv" / "bin" / "modelplane"), args[0], "--file", str(stack), *args[1:]]
    result = subprocess.run(command, capture_output=True, text=True, env=state_env(stack.parent))
    if check and result.returncode != 0:
        raise RuntimeError(f"modelplane {args[0]} failed: {(result.stdout + result.stderr)[-3000:]}")
    return result.stdout


def _rates(endpoints: dict[str, Endpoint], seconds: int) -> dict[str, list[float]]:
    """Valid requests/s of each endpoint, measured in turn, ROUNDS times."""
    runs: dict[str, list[float]] = {name: [] for name in endpoints}
    for _ in range(ROUNDS):
        for name, endpoint in endpoints.items():
            result = wrk(f"http://127.0.0.1:{endpoint.port}/score", WRK_CONCURRENCY, seconds, endpoint.key)
            if result["non_2xx"]:
                raise RuntimeError(f"{name}: {result['non_2xx']:.0f} valid requests not answered 200")
            runs[name].append(round(result["rps"]))
    return runs


def _measured(runs: dict[str, list[float]]) -> dict[str, Any]:
    rps = {name: median(values) for name, values in runs.items()}
    return {"runs_rps": runs, "rps": rps, "ratio": round(rps["attacked"] / rps["untouched"], 3)}


def hostile(seconds: int) -> dict[str, Any]:
    from bench.updates import free_port  # scikit-learn and joblib: not for the test that imports the run

    with tempfile.TemporaryDirectory(dir=ROOT / ".modelplane", prefix="bench-hostile-") as folder:
        ports = {endpoint: free_port() for endpoint in ENDPOINTS}
        stack = _declare(Path(folder), ports)
        try:
            _modelplane(stack, "up", "--yes")
            keys = json.loads(_modelplane(stack, "outputs", "--show-secrets"))["endpoint_keys"]
            endpoints = {name: Endpoint(ports[name], keys[name]["primary_key"]) for name in ENDPOINTS}
            _rates(endpoints, 1)  # warms the workers up: a new server's first requests are slower
            before = _measured(_rates(endpoints, seconds))
            run = hostile_run(endpoints["attacked"])
            after = _measured(_rates(endpoints, seconds))
        finally:
            _modelplane(stack, "destroy", "--yes", check=False)
            (ROOT / f"Pulumi.{stack.stem}.yaml").unlink(missing_ok=True)
    return {
        "requests": len(run.answered),
        "clients": CLIENTS,
        "slow_clients": run.slow_clients,
        "seconds": round(run.seconds, 1),
        "statuses": {str(status): count for status, count in run.statuses().items()},
        "wrong_answers": sum(run.wrong().values()),
        "over_the_limit": {"whole": run.oversized, "chunked": run.chunked},
        "before": before,
        "after": after,
        "kept": round(after["ratio"] / before["ratio"], 3),
    }


def _tally(statuses: dict[str, int]) -> str:
    """{"200": 9600, "400": 4800} as "9,600 x 200, 4,800 x 400"."""
    return ", ".join(f"{count:,} x {status}" for status, count in statuses.items())


def markdown_lines(section: dict[str, Any]) -> list[str]:
    before, after = section["before"], section["after"]

    def row(label: str, measured: dict[str, Any]) -> str:
        runs = ", ".join(f"{a:.0f}/{u:.0f}" for a, u in zip(*measured["runs_rps"].values(), strict=True))
        rps = measured["rps"]
        return f"| {label} | {rps['attacked']:.0f} | {rps['untouched']:.0f} | {measured['ratio']} | {runs} |"

    return [
        f"### Hostile input (two local endpoints in turn, wrk c={WRK_CONCURRENCY}, valid requests/s,"
        f" median of {ROUNDS})",
        "",
        f"Between the two measurements `attacked` got {section['requests']:,} hostile requests at"
        f" c={section['clients']} in {section['seconds']} s, with {section['slow_clients']} slow-header clients"
        f" alongside ({_tally(section['statuses'])}; {section['wrong_answers']} answered wrong), then 50 MiB"
        f" bodies ({_tally(Counter(str(status) for status in section['over_the_limit']['whole']))} whole,"
        f" {_tally(Counter(str(status) for status in section['over_the_limit']['chunked']))} chunked);"
        " `untouched` got nothing.",
        "",
        "| | attacked | untouched | attacked / untouched | runs (attacked/untouched) |",
        "| --- | ---: | ---: | ---: | --- |",
        row("before", before),
        row("after", after),
        "",
        f"Speed kept after the hostile run: **{section['kept']}x** (the ratio after over the ratio before).",
        "",
    ]


def target_checks(section: dict[str, Any]) -> list[tuple[str, str, bool | None]]:
    kept = section["kept"]
    return [
        (f"valid req/s after hostile input >= {TARGET_KEPT}x before (untouched twin)", f"{kept}x", kept >= TARGET_KEPT),
        ("hostile requests answered wrong", str(section["wrong_answers"]), section["wrong_answers"] == 0),
    ]
