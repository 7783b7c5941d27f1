"""Prometheus metrics of the scoring server, on a port of their own (MODELPLANE_METRICS_PORT,
default runtime/ports.py), outside the key gate: what Prometheus scrapes needs no key.

Gunicorn runs several worker processes, so the metrics use prometheus_client's multiprocess mode:
each worker writes its samples to memory-mapped files in PROMETHEUS_MULTIPROC_DIR (set by serve.py
before any import of prometheus_client), and the master serves their sum (gunicorn_hooks.py).

Counted are scoring requests (paths ending in /score, behind any path prefix); probes and swagger
are not. Labels: the image's models (MODELPLANE_MODELS, "name:version,…") and the status code.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable

from prometheus_client import Counter, Gauge, Histogram
from werkzeug.wsgi import ClosingIterator

from .gate import Environ, StartResponse, WsgiApp

METRICS_PORT_VARIABLE = "MODELPLANE_METRICS_PORT"
# Scoring latencies run from a millisecond (a linear model) to the AML server's 60 s timeout.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
MODEL_LABELS = ("model_name", "model_version")

REQUESTS = Counter("modelplane_requests", "Scoring requests answered, by status code.", [*MODEL_LABELS, "code"])
LATENCY = Histogram(
    "modelplane_request_duration_seconds", "Time to answer a scoring request.", MODEL_LABELS, buckets=LATENCY_BUCKETS
)
IN_FLIGHT = Gauge(
    "modelplane_requests_in_flight", "Scoring requests being answered.", MODEL_LABELS, multiprocess_mode="livesum"
)
SCORING_ERRORS = Counter(
    "modelplane_scoring_errors", "Scoring requests the model failed to answer (status 500 and above).", MODEL_LABELS
)


def model_labels(models: str) -> tuple[str, str]:
    """("name", "version") of the image's model; several models' names and versions joined by commas."""
    pairs = [item.partition(":") for item in models.split(",") if item]
    return ",".join(name for name, _, _ in pairs), ",".join(version for _, _, version in pairs)


class ScoringMetrics:
    """Wraps a WSGI app (the gated server) and records each scoring request."""

    def __init__(self, app: WsgiApp, models: str) -> None:
        self.app = app
        self.labels = model_labels(models)

    @classmethod
    def wrap(cls, app: WsgiApp) -> WsgiApp:
        """The app with metrics, unless MODELPLANE_METRICS_PORT is 0 (no metrics at all)."""
        if os.environ.get(METRICS_PORT_VARIABLE) == "0":
            return app
        return cls(app, os.environ.get("MODELPLANE_MODELS", ""))

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        if not (environ.get("PATH_INFO") or "").endswith("/score"):
            return self.app(environ, start_response)
        started = time.perf_counter()
        status = ["500"]

        def recording_start(code: str, headers: list[tuple[str, str]], *rest: object) -> object:
            status[0] = code[:3]
            return start_response(code, headers, *rest)

        def finished() -> None:
            LATENCY.labels(*self.labels).observe(time.perf_counter() - started)
            REQUESTS.labels(*self.labels, status[0]).inc()
            if status[0] >= "500":
                SCORING_ERRORS.labels(*self.labels).inc()
            IN_FLIGHT.labels(*self.labels).dec()

        IN_FLIGHT.labels(*self.labels).inc()
        try:
            body = self.app(environ, recording_start)
        except BaseException:
            finished()
            raise
        return ClosingIterator(body, [finished])
