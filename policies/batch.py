"""Batch scoring clusters: bounded in size, and low-priority VMs (which Azure may take back mid-job)
only outside production."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from policies.rules import Resource, Rule, RuleConfig

COMPUTE = "azure-native:machinelearningservices:Compute"
MAX_NODES = 10


def _aml_compute(resource: Resource) -> Mapping[str, Any] | None:
    if resource.type != COMPUTE:
        return None
    properties = resource.props.get("properties") or {}
    if properties.get("computeType") != "AmlCompute":
        return None
    inner = properties.get("properties")
    return inner if isinstance(inner, Mapping) else {}


def max_nodes(resource: Resource, config: RuleConfig) -> list[str]:
    compute = _aml_compute(resource)
    if compute is None:
        return []
    allowed = int(config.get("maxNodes", MAX_NODES))
    nodes = int((compute.get("scaleSettings") or {}).get("maxNodeCount") or 0)
    if nodes > allowed:
        return [
            f"Bound batch cluster {resource.props.get('computeName')} to at most {allowed} nodes: it may scale to"
            f" {nodes}."
        ]
    return []


def low_priority_outside_production(resource: Resource, _config: RuleConfig) -> list[str]:
    compute = _aml_compute(resource)
    if compute is None or not resource.production or compute.get("vmPriority") != "LowPriority":
        return []
    return [
        f"Run production batch cluster {resource.props.get('computeName')} on dedicated VMs: Azure can take"
        " low-priority ones back in the middle of a job."
    ]


RULES = [
    Rule(
        "batch-max-nodes",
        "Batch clusters scale to at most 10 nodes (maxNodes).",
        "mandatory",
        check=max_nodes,
        config_schema={"maxNodes": {"type": "integer", "minimum": 1}},
    ),
    Rule(
        "batch-low-priority-outside-production",
        "Low-priority VMs only outside production.",
        "advisory",
        check=low_priority_outside_production,
    ),
]
