"""Traffic between an endpoint's deployments (local, or AML v2 online): shares that sum to 100 (or 0),
and a bounded mirror to a deployment without live traffic. The rules are modelplane.traffic's, checked
again on the plan: a declaration cannot break them, a program or state edited by hand can."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from modelplane.constants import TRAFFIC_TYPES
from modelplane.traffic import mirror_problems, traffic_problems
from policies.rules import Resource, Rule, RuleConfig


def _shares(resource: Resource, key: str) -> dict[str, int]:
    value: Any = resource.props.get(key)
    return {str(name): int(share) for name, share in value.items()} if isinstance(value, Mapping) else {}


def _deployments(resource: Resource) -> list[str]:
    """Every deployment has a share in `traffic` (0 when it takes none); `routes` is not read: it holds
    container names that are unknown during a preview."""
    return list(_shares(resource, "traffic"))


def _endpoint(resource: Resource) -> str:
    return str(resource.props.get("endpoint") or resource.props.get("endpoint_name") or resource.name)


def traffic_sums(resource: Resource, _config: RuleConfig) -> list[str]:
    if resource.type not in TRAFFIC_TYPES:
        return []
    problems = traffic_problems(_shares(resource, "traffic"), _deployments(resource))
    return [f"Endpoint {_endpoint(resource)}: {problem}." for problem in problems]


def mirror_bounds(resource: Resource, _config: RuleConfig) -> list[str]:
    if resource.type not in TRAFFIC_TYPES:
        return []
    mirror, traffic = _shares(resource, "mirror_traffic"), _shares(resource, "traffic")
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
