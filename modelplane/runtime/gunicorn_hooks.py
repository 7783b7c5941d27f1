"""Gunicorn hooks (`-c python:modelplane_runtime.gunicorn_hooks`): the master serves the workers'
summed Prometheus metrics on their own port, forgets a worker's live gauges when it exits, and says
on stderr when a worker dies (killed for memory, timed out), which its error log, kept off, would not."""

from __future__ import annotations

import logging
import os
import re
import sys
from typing import Any

from prometheus_client import CollectorRegistry, multiprocess, start_http_server

from .metrics import METRICS_PORT_VARIABLE
from .ports import METRICS_PORT

# The master's own lines about a worker killed from outside: `Worker (pid:N) was sent SIGKILL! Perhaps
# out of memory?` and `WORKER TIMEOUT (pid:N)`. A worker that exits by itself (`exited with code 3`:
# its init() raised) has already logged why, and gunicorn's halt follows.
WORKER_KILLED = re.compile(r"Worker \(pid:%s\) was sent |WORKER TIMEOUT")


def is_worker_death(record: logging.LogRecord) -> bool:
    return record.levelno >= logging.ERROR and WORKER_KILLED.match(str(record.msg)) is not None


def on_starting(server: Any) -> None:
    """The error log goes to /dev/null (serve.py: the AML server logs for itself); its lines about
    dying workers go to stderr, so a worker killed for memory leaves a trace in the container log."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(is_worker_death)
    handler.setFormatter(logging.Formatter("%(asctime)s E [%(process)d] gunicorn - %(message)s"))
    server.log.error_log.addHandler(handler)


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
