"""Names Azure accepts, made from the names a stack declares."""

from __future__ import annotations

import hashlib


def compact_name(prefix: str, name: str, limit: int) -> str:
    """A lowercase alphanumeric name within `limit` characters (storage accounts, registries, vaults),
    unique per `name` through a short hash."""
    suffix = hashlib.sha256(name.encode()).hexdigest()[:6]
    stem = "".join(ch for ch in name.lower() if ch.isalnum())
    return f"{prefix}{stem}"[: limit - len(suffix)] + suffix
