"""A plan: each resource's operation and changed inputs, under the component that owns it, and the
policy pack's verdicts; as JSON in the shape of docs/plan.schema.json."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from modelplane.constants import KUBE_ROUTER_CONFIG_TYPE, TRAFFIC_TYPES
from modelplane.traffic import shift_line

PLAN_SCHEMA_VERSION = 1
OPERATIONS = ("create", "update", "replace", "delete", "same")


@dataclass(frozen=True)
class Change:
    """One property path that changes, with its old and new values (secrets masked)."""

    path: str
    old: Any
    new: Any


@dataclass(frozen=True)
class ResourcePlan:
    name: str
    type: str
    op: str
    changes: tuple[Change, ...] = ()
    inputs: Mapping[str, Any] | None = None
    component: str = "stack"
    """What the user declared that owns it, e.g. "endpoint 'web'" (report.component_label)."""


@dataclass(frozen=True)
class Violation:
    policy: str
    level: str
    message: str
    resource: str


# Where a deployment's share of live traffic is in a changed resource: `traffic.<deployment>` (a local
# router, AML v2's traffic), `data.traffic.<deployment>` or `data["traffic.<deployment>"]` (an AKS
# endpoint's router ConfigMap, as a preview under mocks and the engine write it).
TRAFFIC_PATH = re.compile(r'^(?:data\.)?traffic\.(?P<plain>[^.\[\]"]+)$|^data\["traffic\.(?P<quoted>[^"]+)"\]$')


def traffic_deployment(path: str) -> str | None:
    """The deployment whose live share a change's path is, or None."""
    found = TRAFFIC_PATH.match(path)
    return (found.group("plain") or found.group("quoted")) if found else None


@dataclass(frozen=True)
class TrafficShift:
    """Live traffic that moves between the deployments of one endpoint."""

    endpoint: str
    before: dict[str, int]
    after: dict[str, int]
    line: str
    """`endpoint web: traffic blue 90→0, green 10→100`."""


@dataclass
class Plan:
    stack: str
    mode: str
    resources: list[ResourcePlan] = field(default_factory=list)
    violations: list[Violation] = field(default_factory=list)
    against: str | None = None
    warnings: list[str] = field(default_factory=list)
    """Settings of the declaration that have no effect here, as `FILE:LINE:COL: field: why`."""

    @property
    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(OPERATIONS, 0)
        for resource in self.resources:
            counts[resource.op] = counts.get(resource.op, 0) + 1
        return counts

    @property
    def has_changes(self) -> bool:
        return any(n for op, n in self.counts.items() if op != "same")

    @property
    def mandatory_violations(self) -> list[Violation]:
        return [v for v in self.violations if v.level == "mandatory"]

    def by_component(self) -> dict[str, list[ResourcePlan]]:
        """The resources that change, grouped by their component, in the plan's order."""
        groups: dict[str, list[ResourcePlan]] = {}
        for resource in self.resources:
            if resource.op != "same":
                groups.setdefault(resource.component, []).append(resource)
        return groups

    def traffic_shifts(self) -> list[TrafficShift]:
        """Traffic that moves between the deployments of an endpoint, one entry per endpoint."""
        shifts = []
        for resource in self.resources:
            if resource.type not in (*TRAFFIC_TYPES, KUBE_ROUTER_CONFIG_TYPE) or resource.op not in (
                "update",
                "replace",
            ):
                continue
            moved = {name: c for c in resource.changes if (name := traffic_deployment(c.path)) is not None}
            before = {name: int(c.old or 0) for name, c in moved.items()}
            after = {name: int(c.new or 0) for name, c in moved.items()}
            endpoint = resource.component.removeprefix("endpoint ").strip("'")
            line = shift_line(endpoint, before, after)
            if line is not None:
                shifts.append(TrafficShift(endpoint, before, after, line))
        return shifts

    def to_json(self) -> dict[str, Any]:
        return {
            "schemaVersion": PLAN_SCHEMA_VERSION,
            "stack": self.stack,
            "mode": self.mode,
            "against": self.against,
            "counts": self.counts,
            "resources": [_resource_json(r) for r in self.resources],
            "violations": [asdict(v) for v in self.violations],
            "warnings": list(self.warnings),
            "trafficShifts": [asdict(shift) for shift in self.traffic_shifts()],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Plan:
        return cls(
            stack=data["stack"],
            mode=data["mode"],
            against=data.get("against"),
            resources=[_resource_from_json(r) for r in data["resources"]],
            violations=[Violation(**v) for v in data.get("violations", [])],
            warnings=list(data.get("warnings", [])),
        )


def _resource_json(resource: ResourcePlan) -> dict[str, Any]:
    return {
        "name": resource.name,
        "type": resource.type,
        "op": resource.op,
        "component": resource.component,
        "changes": [asdict(c) for c in resource.changes],
        **({"inputs": resource.inputs} if resource.inputs is not None else {}),
    }


def _resource_from_json(data: Mapping[str, Any]) -> ResourcePlan:
    return ResourcePlan(
        name=data["name"],
        type=data["type"],
        op=data["op"],
        changes=tuple(Change(**c) for c in data.get("changes", [])),
        inputs=data.get("inputs"),
        component=data.get("component", "stack"),
    )
