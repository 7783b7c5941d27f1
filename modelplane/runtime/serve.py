"""Start gunicorn on the gated AML server with workers tuned to the container's CPUs."""

from __future__ import annotations

import math
import os
import sys
import tempfile
from pathlib import Path

# The AML inference server's scoring timeout (its own setting); gunicorn's worker timeout follows it.
SCORING_TIMEOUT_VARIABLE = "SCORING_TIMEOUT_MS"
DEFAULT_SCORING_TIMEOUT_MS = 60000


def container_cpus() -> float:
    """CPUs this container may use: its cgroup quota when there is one, else the machine's."""
    cpu_max = Path("/sys/fs/cgroup/cpu.max")  # cgroup v2
    try:
        quota, period = cpu_max.read_text().split()
        if quota != "max":
            return max(float(quota) / float(period), 0.1)
    except (OSError, ValueError):
        pass
    try:  # cgroup v1
        quota_us = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text())
        period_us = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text())
        if quota_us > 0:
            return max(quota_us / period_us, 0.1)
    except (OSError, ValueError):
        pass
    return float(len(os.sched_getaffinity(0)))


def worker_count(cpus: float) -> int:
    """One worker per CPU: scoring is CPU-bound, and more sync workers than cores only contend
    (bench/: serving measured cpus + 1 slower at every concurrency); at least 1."""
    return max(1, math.ceil(cpus))


def worker_timeout(scoring_timeout_ms: int) -> int:
    """Gunicorn's worker timeout: past the server's scoring timeout, so that the server answers first."""
    return max(30, scoring_timeout_ms // 1000 + 5)


def shared_memory() -> str | None:
    """/dev/shm when it is writable (tmpfs: never on the image's filesystem), else the default."""
    return "/dev/shm" if os.access("/dev/shm", os.W_OK) else None


def tls_options(cert_pem: str | None, key_pem: str | None) -> list[str]:
    """Gunicorn's TLS options for a certificate and key given as PEM text (AML's sslCertificate and
    sslKey), written to private files on tmpfs; none when either is missing."""
    if not cert_pem or not key_pem:
        return []
    folder = Path(tempfile.mkdtemp(prefix="tls-", dir=shared_memory()))
    paths = []
    for name, text in (("cert.pem", cert_pem), ("key.pem", key_pem)):
        path = folder / name
        path.touch(mode=0o600)
        path.write_text(text)
        paths.append(str(path))
    return ["--certfile", paths[0], "--keyfile", paths[1]]


def main() -> None:
    port = os.environ.get("MODELPLANE_PORT", "5001")
    workers = os.environ.get("MODELPLANE_WORKERS") or str(worker_count(container_cpus()))
    scoring_timeout_ms = int(os.environ.setdefault(SCORING_TIMEOUT_VARIABLE, str(DEFAULT_SCORING_TIMEOUT_MS)))
    timeout = str(worker_timeout(scoring_timeout_ms))
    tls = tls_options(os.environ.pop("MODELPLANE_TLS_CERT", None), os.environ.pop("MODELPLANE_TLS_KEY", None))
    # --error-logfile /dev/null as azmlinfsrv does: the AML server logs through its own handlers,
    # and gunicorn's error log would write every line a second time. Unlike azmlinfsrv, no gunicorn
    # access log: the AML server already logs each request (method, path, status, duration, size),
    # and the second line per request, carried by the container runtime, cost a quarter of the
    # throughput on 2 cores (bench/: serving). MODELPLANE_ACCESS_LOG=1 brings it back.
    access_log = ["--access-logfile", "-"] if os.environ.get("MODELPLANE_ACCESS_LOG") == "1" else []
    # Gunicorn's advice for containers: the workers' heartbeat files on tmpfs, not the image's
    # overlay filesystem, where a heartbeat can stall a worker.
    heartbeat_dir = ["--worker-tmp-dir", tmpfs] if (tmpfs := shared_memory()) else []
    # The workers' metric samples (metrics.py), fresh for each start: set before prometheus_client loads.
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="metrics-", dir=shared_memory())
    sys.argv = [
        "gunicorn",
        "-b",
        f"0.0.0.0:{port}",
        "-w",
        workers,
        "--timeout",
        timeout,
        *access_log,
        *heartbeat_dir,
        *tls,
        "--error-logfile",
        "/dev/null",
        "-c",
        "python:modelplane_runtime.gunicorn_hooks",
        "modelplane_runtime.app:app",
    ]
    from gunicorn.app.wsgiapp import run

    run()


if __name__ == "__main__":
    main()
