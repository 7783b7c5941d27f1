"""The ports a scoring container listens on: read by the runtime inside the image and by the
components that route to it (no import beyond the standard library's)."""

METRICS_PORT = 5002
"""Prometheus metrics (metrics.py), outside the key gate."""
