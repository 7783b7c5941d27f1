"""The ports a scoring container listens on, and the largest body it takes: read by the runtime inside
the image and by what routes to it (no import beyond the standard library's)."""

METRICS_PORT = 5002
"""Prometheus metrics (metrics.py), outside the key gate."""

MAX_BODY_BYTES = 10 * 1024 * 1024
"""The largest request body (MODELPLANE_MAX_BODY_BYTES overrides it in a container): the gate answers 413
above it, and a router refuses it first, so that no body over it is streamed to a server that has
already answered."""
