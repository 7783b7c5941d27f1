"""Gunicorn hooks (`-c python:modelplane_runtime.gunicorn_hooks`): the master serves the workers'
summed Prometheus metrics on their own port, and forgets a worker's live gauges when it exits."""

from __future__ import annotations

import os
import sys
from typing import Any

from prometheus_client import CollectorRegistry, multiprocess, start_http_server

from .metrics import METRICS_PORT_VARIABLE
from .ports import METRICS_PORT


def when_ready(_server: Any) -> None:
    port = int(os.environ.get(METRICS_PORT_VARIABLE) or METRICS_PORT)
    if port == 0:
        return
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    try:
        start_http_server(port, registry=registry)
    except OSError as error:
        # Scoring goes on without metrics; the log says why they are missing.
        print(f"modelplane: metrics port {port} could not be opened: {error}", file=sys.stderr, flush=True)


def child_exit(_server: Any, worker: Any) -> None:
    multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]
