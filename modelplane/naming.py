"""Names Azure accepts, made from the names a stack declares; the names of a cluster's resources in the state."""

from __future__ import annotations

import hashlib


def compact_name(prefix: str, name: str, limit: int) -> str:
    """A lowercase alphanumeric name within `limit` characters (storage accounts, registries, vaults),
    unique per `name` through a short hash."""
    suffix = hashlib.sha256(name.encode()).hexdigest()[:6]
    stem = "".join(ch for ch in name.lower() if ch.isalnum())
    return f"{prefix}{stem}"[: limit - len(suffix)] + suffix


def cluster_resource_name(cluster: str) -> str:
    """The AksCluster component of a declared cluster."""
    return f"cluster-{cluster}"


def kubernetes_provider_name(cluster_resource: str) -> str:
    """The Kubernetes provider of an AksCluster component (its resource name in the state)."""
    return f"{cluster_resource}-k8s"
