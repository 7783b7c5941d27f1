"""`modelplane profile ENDPOINT`: AML v1's `Model.profile` for a running local endpoint.

The endpoint is driven at rising concurrency (each level for a few seconds, every request a new
connection, as most clients do) while its scoring containers' CPU and memory are sampled from the
Docker engine. From what was measured:
- `cpu_cores`: the cores the containers used at the level with the best throughput (where more
  concurrency stopped paying), plus 20% headroom, in steps of 0.1;
- `memory_gb`: the peak memory, plus 20% headroom, in steps of 0.1 GB;
- `replicas` for a target request rate: how many replicas of that size serve it, at the best
  throughput measured.
Kubernetes and Azure endpoints are not profiled here: the Docker engine's per-second samples are
what makes short levels possible (the metrics API of a cluster has a 15 s resolution).
"""

from __future__ import annotations

import json
import math
import statistics
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

import requests

from modelplane.spec import LocalEndpointSpec, StackSpec

HEADROOM = 1.2
"""Recommendations leave a fifth above what was measured, as AML's did."""
DEFAULT_LEVELS = (1, 2, 4, 8)
DEFAULT_SECONDS = 5.0
GIB = 1024**3


class ProfileError(RuntimeError):
    """The endpoint cannot be profiled, and why."""


@dataclass(frozen=True)
class Level:
    """What one concurrency level measured."""

    concurrency: int
    requests: int
    errors: int
    requests_per_second: float
    latency_p50_ms: float
    latency_p95_ms: float
    cpu_cores: float
    """Cores the scoring containers used together (the mean of the level's samples)."""
    memory_mb: float
    """The containers' memory together (the level's peak)."""


@dataclass(frozen=True)
class Recommendation:
    cpu_cores: float
    memory_gb: float
    replicas: int | None
    """Replicas for `target_rps`, when one was given."""
    target_rps: float | None


@dataclass(frozen=True)
class Profile:
    endpoint: str
    levels: list[Level]
    recommendation: Recommendation
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def round_up(value: float, step: float) -> float:
    return round(max(step, math.ceil(value / step - 1e-9) * step), 3)


def recommend(levels: Sequence[Level], target_rps: float | None) -> Recommendation:
    """Size from the level with the best throughput (see the module docstring)."""
    best = max(levels, key=lambda level: level.requests_per_second)
    peak_memory_mb = max(level.memory_mb for level in levels)
    replicas = None
    if target_rps is not None and best.requests_per_second > 0:
        replicas = max(1, math.ceil(target_rps / best.requests_per_second))
    return Recommendation(
        cpu_cores=round_up(best.cpu_cores * HEADROOM, 0.1),
        memory_gb=round_up(peak_memory_mb * HEADROOM / 1024, 0.1),
        replicas=replicas,
        target_rps=target_rps,
    )


def local_containers(stack: str, endpoint: str) -> list[Any]:
    """The endpoint's scoring containers (its deployments, not its router)."""
    from modelplane.providers.docker import engine_client

    labels = [f"modelplane.stack={stack}", f"modelplane.endpoint={endpoint}", "modelplane.deployment"]
    found = engine_client().containers.list(filters={"label": labels})
    if not found:
        raise ProfileError(f"endpoint {endpoint} of stack {stack} has no running container here (run `modelplane up`)")
    return list(found)


def container_usage(stats: dict[str, Any]) -> tuple[float, float]:
    """(cores, memory in MB) from one Docker stats sample; memory without the page cache, as `docker stats`."""
    cpu, previous = stats.get("cpu_stats") or {}, stats.get("precpu_stats") or {}
    cpu_delta = (cpu.get("cpu_usage") or {}).get("total_usage", 0) - (previous.get("cpu_usage") or {}).get(
        "total_usage", 0
    )
    system_delta = cpu.get("system_cpu_usage", 0) - previous.get("system_cpu_usage", 0)
    cores = cpu_delta / system_delta * cpu.get("online_cpus", 1) if system_delta > 0 and cpu_delta > 0 else 0.0
    memory = stats.get("memory_stats") or {}
    cache = (memory.get("stats") or {}).get("inactive_file", 0)
    return cores, max(0, memory.get("usage", 0) - cache) / 1024**2


class UsageSampler:
    """Samples the containers' CPU and memory (one Docker stats call per container per second)."""

    def __init__(self, containers: Sequence[Any]) -> None:
        self.containers = containers
        self.samples: list[tuple[float, float]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            usages = [container_usage(c.stats(stream=False)) for c in self.containers]
            self.samples.append((sum(u[0] for u in usages), sum(u[1] for u in usages)))

    @contextmanager
    def sampling(self) -> Iterator[UsageSampler]:
        thread = threading.Thread(target=self.run, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self.stop.set()
            thread.join(timeout=30)


def drive(call: Callable[[], int], concurrency: int, seconds: float) -> tuple[list[float], int]:
    """Call back to back from `concurrency` threads for `seconds`: (latencies in ms, errors)."""
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def worker() -> None:
        while time.monotonic() < deadline:
            started = time.perf_counter()
            try:
                ok = call() == 200
            except requests.RequestException:
                ok = False
            with lock:
                if ok:
                    latencies.append((time.perf_counter() - started) * 1000)
                else:
                    errors[0] += 1

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies, errors[0]


def measure_level(call: Callable[[], int], containers: Sequence[Any], concurrency: int, seconds: float) -> Level:
    with UsageSampler(containers).sampling() as sampler:
        latencies, errors = drive(call, concurrency, seconds)
    cores = [s[0] for s in sampler.samples] or [0.0]
    memory = [s[1] for s in sampler.samples] or [0.0]
    ordered = sorted(latencies) or [0.0]
    return Level(
        concurrency=concurrency,
        requests=len(latencies) + errors,
        errors=errors,
        requests_per_second=round(len(latencies) / seconds, 1),
        latency_p50_ms=round(statistics.median(ordered), 1),
        latency_p95_ms=round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))], 1),
        cpu_cores=round(statistics.fmean(cores), 3),
        memory_mb=round(max(memory), 1),
    )


@dataclass(frozen=True)
class ProfileRequest:
    """What `modelplane profile` was asked."""

    endpoint: str
    scoring_uri: str
    credential: str | None
    payload: Any
    levels: Sequence[int] = DEFAULT_LEVELS
    seconds: float = DEFAULT_SECONDS
    target_rps: float | None = None


def profile(spec: StackSpec, request: ProfileRequest, progress: Callable[[str], None] | None = None) -> Profile:
    declared = spec.endpoints.get(request.endpoint)
    if declared is None:
        raise ProfileError(f"no endpoint '{request.endpoint}' in the stack; it has: {', '.join(spec.endpoints)}")
    if not isinstance(declared, LocalEndpointSpec):
        raise ProfileError(
            f"endpoint {request.endpoint} runs on {declared.compute_type}: profile measures local endpoints "
            "(deploy the same image locally, profile it there, and size the cluster from the result)"
        )
    containers = local_containers(spec.name, request.endpoint)
    headers = {"Content-Type": "application/json"}
    if request.credential:
        headers["Authorization"] = f"Bearer {request.credential}"
    body = json.dumps(request.payload)

    def call() -> int:
        return requests.post(request.scoring_uri, data=body, headers=headers, timeout=60).status_code

    levels = []
    for concurrency in request.levels:
        level = measure_level(call, containers, concurrency, request.seconds)
        if progress is not None:
            progress(render_level(level))
        levels.append(level)
    notes = [f"{len(containers)} deployment container(s) measured together"]
    if any(level.errors for level in levels):
        notes.append("some requests failed: the recommendation is from the ones that succeeded")
    return Profile(request.endpoint, levels, recommend(levels, request.target_rps), notes)


def render_level(level: Level) -> str:
    return (
        f"c={level.concurrency:<3} {level.requests_per_second:>8.1f} req/s  p50 {level.latency_p50_ms:>7.1f} ms  "
        f"p95 {level.latency_p95_ms:>7.1f} ms  cpu {level.cpu_cores:>5.2f} cores  memory {level.memory_mb:>7.1f} MB"
        f"  errors {level.errors}"
    )


def render_text(result: Profile) -> str:
    advice = result.recommendation
    lines = [f"endpoint {result.endpoint}:", *(f"  {render_level(level)}" for level in result.levels)]
    lines.append(f"recommended: cpu_cores: {advice.cpu_cores}, memory_gb: {advice.memory_gb}")
    if advice.replicas is not None:
        lines.append(f"replicas for {advice.target_rps:g} req/s: {advice.replicas}")
    lines += [f"note: {note}" for note in result.notes]
    return "\n".join(lines) + "\n"
