"""Traffic between an endpoint's deployments (local, AKS, or AML v2 online): shares that sum to 100 (or 0),
and a bounded mirror to a deployment without live traffic. The rules are modelplane.traffic's, checked
again on the plan: a declaration cannot break them, a program or state edited by hand can."""

from __future__ import annotations

from modelplane.traffic import mirror_problems, traffic_problems
from policies.rules import Resource, Rule, RuleConfig, traffic_shares


def _deployments(resource: Resource) -> list[str]:
    """Every deployment has a share in `traffic` (0 when it takes none); `routes` is not read: it holds
    container names that are unknown during a preview."""
    return list(traffic_shares(resource, "traffic") or {})


def _endpoint(resource: Resource) -> str:
    return str(
        resource.props.get("endpoint")
        or resource.props.get("endpoint_name")
        or resource.labels().get("app.kubernetes.io/name")
        or resource.name
    )


def traffic_sums(resource: Resource, _config: RuleConfig) -> list[str]:
    traffic = traffic_shares(resource, "traffic")
    if traffic is None:
        return []
    return [
        f"Endpoint {_endpoint(resource)}: {problem}." for problem in traffic_problems(traffic, _deployments(resource))
    ]


def mirror_bounds(resource: Resource, _config: RuleConfig) -> list[str]:
    mirror, traffic = traffic_shares(resource, "mirror_traffic"), traffic_shares(resource, "traffic")
    if mirror is None or traffic is None:
        return []
    return [
        f"Endpoint {_endpoint(resource)}: {problem}."
        for problem in mirror_problems(mirror, traffic, _deployments(resource))
    ]


RULES = [
    Rule("traffic-sums", "Live traffic between deployments sums to 100 (or 0).", "mandatory", check=traffic_sums),
    Rule(
        "mirror-bounds",
        "Mirrored traffic is at most 50% and goes to a deployment without live traffic.",
        "mandatory",
        check=mirror_bounds,
    ),
]
