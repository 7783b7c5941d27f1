"""Production stacks and scaling: TLS on AKS, no ACI, ACI limits, sane autoscale, spare replicas."""

from __future__ import annotations

from collections.abc import Sequence

from modelplane.constants import ACI_MAX_CPU, ACI_MAX_MEMORY_GB, DEPLOYMENT_LABEL
from policies.rules import Resource, Rule, RuleConfig, is_modelplane_deployment, is_router_config, traffic_shares

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


def _serving(resource: Resource) -> str:
    """`endpoint web`, or `deployment blue of endpoint web` for one of its named deployments."""
    deployment = resource.labels().get(DEPLOYMENT_LABEL)
    return f"deployment {deployment} of endpoint {_name(resource)}" if deployment else f"endpoint {_name(resource)}"


def _too_few_replicas(resource: Resource) -> list[str]:
    if resource.type == HPA:
        low = int((resource.props.get("spec") or {}).get("minReplicas") or 1)
        if low < 2:
            return [f"Run {_serving(resource)} with at least 2 replicas in production (min_replicas {low})."]
    if is_modelplane_deployment(resource):
        replicas = (resource.props.get("spec") or {}).get("replicas")
        if replicas is not None and int(replicas) < 2:
            return [f"Run {_serving(resource)} with at least 2 replicas in production ({replicas})."]
    return []


def _idle_deployments(resources: Sequence[Resource]) -> set[tuple[str, str]]:
    """(endpoint, deployment) of the named deployments that take no live traffic, from their routers."""
    idle = set()
    for router in (r for r in resources if is_router_config(r)):
        endpoint = _name(router)
        idle |= {(endpoint, d) for d, share in (traffic_shares(router, "traffic") or {}).items() if share == 0}
    return idle


def replicas_in_production(resources: Sequence[Resource], _config: RuleConfig) -> list[tuple[str, str]]:
    """Every Deployment that takes live traffic (and every router) keeps a spare replica in production;
    a deployment with no live traffic (a green waiting for its share, a mirror) may run one."""
    idle = _idle_deployments(resources)
    return [
        (resource.name, message)
        for resource in resources
        if resource.production and (_name(resource), resource.labels().get(DEPLOYMENT_LABEL, "")) not in idle
        for message in _too_few_replicas(resource)
    ]


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
        "Production endpoints keep 2+ replicas behind every deployment with live traffic.",
        "mandatory",
        stack_check=replicas_in_production,
    ),
    Rule(
        "aks-tls-in-production",
        "AKS endpoints in production stacks are served over TLS.",
        "mandatory",
        stack_check=tls_in_production,
    ),
]
