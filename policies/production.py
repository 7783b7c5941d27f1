"""Production stacks and scaling: TLS on AKS, no ACI, ACI limits, sane autoscale, spare replicas."""

from __future__ import annotations

from collections.abc import Sequence

from modelplane.constants import ACI_MAX_CPU, ACI_MAX_MEMORY_GB
from policies.rules import Resource, Rule, RuleConfig, is_modelplane_deployment

ACI = "azure-native:containerinstance:ContainerGroup"
HPA = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"
INGRESS = "kubernetes:networking.k8s.io/v1:Ingress"


def _name(resource: Resource) -> str:
    return str(resource.labels().get("app.kubernetes.io/name") or resource.name)


def no_aci_in_production(resource: Resource, _config: RuleConfig) -> list[str]:
    if resource.type == ACI and resource.production:
        return [f"Move endpoint {resource.props.get('containerGroupName')} from ACI to AKS: ACI is not for production."]
    return []


def aci_limits(resource: Resource, config: RuleConfig) -> list[str]:
    if resource.type != ACI:
        return []
    cpu = memory = 0.0
    for container in resource.props.get("containers") or []:
        requests = (container.get("resources") or {}).get("requests") or {}
        cpu += float(requests.get("cpu") or 0)
        memory += float(requests.get("memoryInGB") or 0)
    max_cpu = float(config.get("maxCpu", ACI_MAX_CPU))
    max_memory = float(config.get("maxMemoryGb", ACI_MAX_MEMORY_GB))
    problems = []
    if cpu > max_cpu:
        problems.append(f"Keep ACI endpoint {resource.props.get('containerGroupName')} within {max_cpu} cores ({cpu}).")
    if memory > max_memory:
        problems.append(
            f"Keep ACI endpoint {resource.props.get('containerGroupName')} within {max_memory} GB ({memory})."
        )
    return problems


def autoscale_bounds(resource: Resource, _config: RuleConfig) -> list[str]:
    if resource.type != HPA:
        return []
    spec = resource.props.get("spec") or {}
    low, high = int(spec.get("minReplicas") or 1), int(spec.get("maxReplicas") or 1)
    if low > high:
        return [f"Give autoscaler of endpoint {_name(resource)} min_replicas ({low}) <= max_replicas ({high})."]
    return []


def replicas_in_production(resource: Resource, _config: RuleConfig) -> list[str]:
    if not resource.production:
        return []
    if resource.type == HPA:
        low = int((resource.props.get("spec") or {}).get("minReplicas") or 1)
        if low < 2:
            return [f"Run endpoint {_name(resource)} with at least 2 replicas in production (min_replicas {low})."]
    if is_modelplane_deployment(resource):
        replicas = (resource.props.get("spec") or {}).get("replicas")
        if replicas is not None and int(replicas) < 2:
            return [f"Run endpoint {_name(resource)} with at least 2 replicas in production ({replicas})."]
    return []


def tls_in_production(resources: Sequence[Resource], _config: RuleConfig) -> list[tuple[str, str]]:
    with_tls = {_name(r) for r in resources if r.type == INGRESS and (r.props.get("spec") or {}).get("tls")}
    return [
        (r.name, f"Serve AKS endpoint {_name(r)} over TLS in production: give its cluster `ssl`.")
        for r in resources
        if is_modelplane_deployment(r) and r.production and _name(r) not in with_tls
    ]


RULES = [
    Rule(
        "no-aci-in-production", "ACI endpoints are not for production stacks.", "mandatory", check=no_aci_in_production
    ),
    Rule(
        "aci-limits",
        "ACI container groups stay within their cores and memory limits.",
        "mandatory",
        check=aci_limits,
        config_schema={"maxCpu": {"type": "number"}, "maxMemoryGb": {"type": "number"}},
    ),
    Rule(
        "autoscale-bounds", "Autoscale min_replicas must not exceed max_replicas.", "mandatory", check=autoscale_bounds
    ),
    Rule(
        "replicas-in-production",
        "Production endpoints keep 2+ replicas for zero-downtime updates.",
        "mandatory",
        check=replicas_in_production,
    ),
    Rule(
        "aks-tls-in-production",
        "AKS endpoints in production stacks are served over TLS.",
        "mandatory",
        stack_check=tls_in_production,
    ),
]
