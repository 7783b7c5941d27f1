"""What every rule family shares: the view of a resource, the rule record and the pack's config."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from modelplane.constants import (
    COMPONENT_LABEL,
    DYNAMIC_TYPES,
    ENVIRONMENT_LABEL,
    KUBE_DEPLOYMENT_TYPE,
    KUBE_ROUTER_CONFIG_TYPE,
    MANAGED_BY_LABEL,
    ROUTER_COMPONENT,
    TRAFFIC_TYPES,
    is_production,
)
from modelplane.traffic import shares_from_entries

Level = Literal["advisory", "mandatory", "disabled"]


@dataclass(frozen=True)
class Resource:
    """A resource as the engine shows it to a policy: type token, name and camelCase inputs."""

    type: str
    name: str
    props: Mapping[str, Any]

    def tags(self) -> Mapping[str, str]:
        tags = self.props.get("tags")
        return tags if isinstance(tags, Mapping) else {}

    def labels(self) -> Mapping[str, str]:
        metadata = self.props.get("metadata")
        labels = metadata.get("labels") if isinstance(metadata, Mapping) else None
        return labels if isinstance(labels, Mapping) else {}

    @property
    def production(self) -> bool:
        """Tagged (Azure) or labelled (Kubernetes) as part of a production stack."""
        environment = self.tags().get("environment") or self.labels().get(ENVIRONMENT_LABEL) or ""
        return is_production(environment)


@dataclass(frozen=True)
class RuleConfig:
    """Per-rule settings from policies/config/<stack>.json (beyond the enforcement level)."""

    values: Mapping[str, Any] = field(default_factory=dict)

    def get(self, key: str, default: Any) -> Any:
        return self.values.get(key, default)


ResourceCheck = Callable[[Resource, RuleConfig], list[str]]
StackCheck = Callable[[Sequence[Resource], RuleConfig], list[tuple[str, str]]]


@dataclass(frozen=True)
class Rule:
    """One policy. `check` returns violation messages for one resource; `stack_check` returns
    (resource name, message) pairs for rules that need to see the whole stack."""

    id: str
    description: str
    level: Level
    check: ResourceCheck | None = None
    stack_check: StackCheck | None = None
    config_schema: Mapping[str, Any] = field(default_factory=dict)


def env_names(container: Mapping[str, Any], kubernetes: bool = False) -> dict[str, Mapping[str, Any]]:
    """A container's environment variables by name (ACI: environmentVariables; Kubernetes: env)."""
    items = container.get("env" if kubernetes else "environmentVariables") or []
    return {str(item.get("name")): item for item in items if isinstance(item, Mapping)}


def is_modelplane_deployment(resource: Resource) -> bool:
    return resource.type == KUBE_DEPLOYMENT_TYPE and resource.labels().get(MANAGED_BY_LABEL) == "modelplane"


def is_scoring_deployment(resource: Resource) -> bool:
    """A Deployment of Modelplane's that runs the scoring server (not an endpoint's router)."""
    return is_modelplane_deployment(resource) and resource.labels().get(COMPONENT_LABEL) != ROUTER_COMPONENT


def is_router_config(resource: Resource) -> bool:
    """An AKS endpoint's router configuration (a ConfigMap holding the endpoint's traffic shares)."""
    return resource.type == KUBE_ROUTER_CONFIG_TYPE and resource.labels().get(COMPONENT_LABEL) == ROUTER_COMPONENT


def traffic_shares(resource: Resource, key: str) -> dict[str, int] | None:
    """`traffic` or `mirror_traffic` of a resource that routes an endpoint's requests; None for others."""
    if resource.type in TRAFFIC_TYPES:
        value: Any = resource.props.get(key)
        return {str(name): int(share) for name, share in value.items()} if isinstance(value, Mapping) else {}
    if is_router_config(resource):
        data: Any = resource.props.get("data")
        return shares_from_entries(data, key) if isinstance(data, Mapping) else {}
    return None


def pod_containers(resource: Resource) -> list[Mapping[str, Any]]:
    spec = resource.props.get("spec") or {}
    template = spec.get("template") or {}
    return list((template.get("spec") or {}).get("containers") or [])


def is_local_container(resource: Resource) -> bool:
    return resource.type == DYNAMIC_TYPES["container"]
