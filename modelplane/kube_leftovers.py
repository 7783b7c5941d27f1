"""Kubernetes objects a killed run created that the state does not know, and their removal.

A killed `up` leaves pending creates. `pulumi refresh --clear-pending-creates` drops them from the
state, but their objects may exist on the cluster. An object with a declared name is taken over by the
next `up` (pulumi-kubernetes creates by server-side apply, which updates an object that exists); one
Pulumi named itself (the router's ConfigMap: a new name each time) or one the declaration no longer
has is left over. Once the next operation has succeeded, what the state still does not know is
removed, with the kubeconfig of the cluster its provider reached: it was Modelplane's (its label is
checked) and nothing declared refers to it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelplane.constants import MANAGED_BY_LABEL
from modelplane.kube_diagnosis import TIMEOUT, read_kubeconfig, session_for

KUBERNETES_PREFIX = "kubernetes:"
# The kinds of object Modelplane makes for an endpoint, as `kubectl get` names them.
ENDPOINT_KINDS = "deployments,services,configmaps,secrets,horizontalpodautoscalers"


def pulumi_type(api_version: str, kind: str) -> str:
    """pulumi-kubernetes' type of an object (`apps/v1`, `Deployment` → `kubernetes:apps/v1:Deployment`;
    the core group is `core`)."""
    group_version = api_version if "/" in api_version else f"core/{api_version}"
    return f"{KUBERNETES_PREFIX}{group_version}:{kind}"


def endpoint_objects(listed: Mapping[str, Any]) -> set[tuple[str, str]]:
    """The objects of a `kubectl get -o json` list as (Pulumi type, id), to compare with the state."""
    return {
        (pulumi_type(o["apiVersion"], o["kind"]), f"{o['metadata']['namespace']}/{o['metadata']['name']}")
        for o in listed.get("items") or []
    }


@dataclass(frozen=True)
class KubeObject:
    """A Kubernetes object a pending create named (Pulumi's type, its provider, apiVersion, kind, name)."""

    type: str
    provider: str
    api_version: str
    kind: str
    namespace: str | None
    name: str

    @property
    def id(self) -> str:
        """pulumi-kubernetes' resource id: `namespace/name`, or the name of a cluster-wide object."""
        return f"{self.namespace}/{self.name}" if self.namespace else self.name

    def __str__(self) -> str:
        return f"{self.kind} {self.id}"

    def api_path(self) -> str:
        group = "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"
        scope = f"/namespaces/{self.namespace}" if self.namespace else ""
        return f"{group}{scope}/{plural(self.kind)}/{self.name}"


def plural(kind: str) -> str:
    """The resource name of a kind Modelplane creates (ConfigMap → configmaps, Ingress → ingresses)."""
    lower = kind.lower()
    if lower.endswith("s"):
        return f"{lower}es"
    if lower.endswith("y"):
        return f"{lower[:-1]}ies"
    return f"{lower}s"


def kube_object(resource: Mapping[str, Any]) -> KubeObject | None:
    """The object a pending create's resource names (None: not a Kubernetes object, or not named yet)."""
    kind_type = str(resource.get("type", ""))
    inputs = resource.get("inputs") or {}
    metadata = inputs.get("metadata") or {}
    if not kind_type.startswith(KUBERNETES_PREFIX) or not isinstance(metadata.get("name"), str):
        return None
    return KubeObject(
        type=kind_type,
        provider=str(resource.get("provider", "")),
        api_version=str(inputs.get("apiVersion", "")),
        kind=str(inputs.get("kind", "")),
        namespace=metadata.get("namespace") if isinstance(metadata.get("namespace"), str) else None,
        name=metadata["name"],
    )


def provider_name(provider_ref: str) -> str:
    """The resource name of a provider reference (`<urn>::<id>`, the URN ending in `::<name>`)."""
    return provider_ref.rsplit("::", 1)[0].rsplit("::", 1)[-1]


def unknown_to(state: Mapping[str, Any], objects: list[KubeObject]) -> list[KubeObject]:
    """The objects the state has no resource for (same type and id)."""
    known = {(str(r.get("type")), str(r.get("id"))) for r in state.get("resources") or []}
    return [o for o in objects if (o.type, o.id) not in known]


def remove(objects: list[KubeObject], kubeconfig: Path) -> list[str]:
    """Delete the objects that exist and carry Modelplane's label (their dependents with them); what was removed."""
    access = read_kubeconfig(kubeconfig)
    removed = []
    with session_for(access) as session:
        for found in objects:
            url = f"{access.server}{found.api_path()}"
            answer = session.get(url, timeout=TIMEOUT)
            if answer.status_code == 404:
                continue
            answer.raise_for_status()
            labels = (answer.json().get("metadata") or {}).get("labels") or {}
            if labels.get(MANAGED_BY_LABEL) != "modelplane":
                continue
            body = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"}
            deleted = session.delete(url, json=body, timeout=TIMEOUT)
            if deleted.status_code != 404:
                deleted.raise_for_status()
                removed.append(str(found))
    return removed
