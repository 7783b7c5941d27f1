"""The online plan: a Pulumi preview with the policy pack; each step and every policy verdict read
from the engine's events (`preview --json` leaves the verdicts out)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pulumi import automation as auto
from pulumi.runtime.rpc import UNKNOWN

from modelplane.plan.mocks import KNOWN_AFTER_APPLY
from modelplane.plan.model import Change, Plan, ResourcePlan, Violation
from modelplane.plan.offline import PLUMBING_INPUTS
from modelplane.plan.policy import POLICY_DIR
from modelplane.providers import DYNAMIC_PACKAGE
from modelplane.report import component_label, flatten, is_component, under

# The engine's step operations → the plan's; None: not a step of its own (the old half of a replace).
OP_NAMES = {
    "create": "create",
    "update": "update",
    "replace": "replace",
    "create-replacement": "replace",
    "delete-replaced": None,
    "delete": "delete",
    "same": "same",
    "read": "same",
    "refresh": "same",
    "discard": "delete",
    "import": "create",
}
# Not shown: the stack itself, and the provider of Modelplane's dynamic resources, which is plumbing
# as Pulumi's default one (never shown) was before it. Plans list what is deployed.
HIDDEN_TYPES = frozenset({"pulumi:pulumi:Stack", f"pulumi:providers:{DYNAMIC_PACKAGE}"})


def name_of(urn: str) -> str:
    return urn.rsplit("::", 1)[-1]


QUOTED_KEY = re.compile(r'\["([^"]*)"\]')


def flat_path(path: str) -> str:
    """An engine's property path in `report.flatten`'s form: `data["nginx.conf"]` → `data.nginx.conf`."""
    return QUOTED_KEY.sub(lambda found: "." + found.group(1), path)


def _value_at(values: dict[str, Any], path: str) -> Any:
    """The value at `path` of flattened `values`: a leaf, or the subtree below it (relative paths)."""
    inside = {k: v for k, v in values.items() if under(k, path)}
    if not inside:
        return None
    if list(inside) == [path]:
        return inside[path]
    return {k[len(path) :].lstrip("."): v for k, v in inside.items()}


def _compared_paths(old_inputs: dict[str, Any], new_inputs: dict[str, Any]) -> list[str]:
    """Paths whose input value differs; below a value that is unknown until applied, only that value."""
    unknown = [path for path, value in new_inputs.items() if value == UNKNOWN]
    differing = sorted(p for p in set(old_inputs) | set(new_inputs) if old_inputs.get(p) != new_inputs.get(p))
    return [p for p in differing if not any(under(p, u) and p != u for u in unknown)]


def step_changes(metadata: auto.events.StepEventMetadata) -> tuple[Change, ...]:
    old_inputs = flatten((metadata.old.inputs if metadata.old else None) or {})
    new_inputs = flatten((metadata.new.inputs if metadata.new else None) or {})
    paths = [flat_path(p) for p in (metadata.detailed_diff or {})] or list(metadata.diffs or [])
    if not paths and metadata.old is not None and metadata.new is not None:
        # Dynamic providers report whether something changed, not what: compare the inputs.
        paths = _compared_paths(old_inputs, new_inputs)
    return tuple(
        Change(path, _value_at(old_inputs, path), _shown(_value_at(new_inputs, path)))
        for path in paths
        if path.split(".", 1)[0].split("[", 1)[0] not in PLUMBING_INPUTS
    )


def _shown(value: Any) -> Any:
    return KNOWN_AFTER_APPLY if value == UNKNOWN else value


def step_of(metadata: auto.events.StepEventMetadata) -> ResourcePlan | None:
    """A preview step as a plan entry; None for what plans do not list."""
    op = OP_NAMES.get(str(getattr(metadata.op, "value", metadata.op)).lower(), "update")
    if op is None or metadata.type in HIDDEN_TYPES or is_component(metadata.type):
        return None
    state = metadata.new or metadata.old
    changes = step_changes(metadata) if op != "same" else ()
    return ResourcePlan(
        name_of(metadata.urn), metadata.type, op, changes, component=component_label(state.parent if state else None)
    )


def violation_of(policy: auto.events.PolicyEvent, stack_name: str) -> Violation:
    level = str(getattr(policy.enforcement_level, "value", policy.enforcement_level)).lower()
    resource = name_of(policy.resource_urn) if policy.resource_urn else stack_name
    message = policy.message.strip().splitlines()[-1] if policy.message.strip() else policy.policy_name
    return Violation(policy.policy_name, level, message, resource)


def online_plan(
    stack: auto.Stack, config_file: Path | None, progress: Callable[[str], None] | None = None, refresh: bool = False
) -> Plan:
    """A preview with the policy pack (against what runs when `refresh`); events give each step and
    every policy verdict."""
    plan = Plan(stack=stack.name, mode="online")
    steps: dict[str, ResourcePlan] = {}

    def on_event(event: auto.events.EngineEvent) -> None:
        if event.resource_pre_event is not None:
            metadata = event.resource_pre_event.metadata
            step = step_of(metadata)
            if step is not None and not (metadata.urn in steps and steps[metadata.urn].op == "replace"):
                steps[metadata.urn] = step
        if event.policy_event is not None:
            plan.violations.append(violation_of(event.policy_event, stack.name))

    configs = [str(config_file)] if config_file is not None else None
    try:
        stack.preview(
            on_event=on_event,
            on_output=progress,
            policy_packs=[str(POLICY_DIR)],
            policy_pack_configs=configs,
            diff=True,
            refresh=refresh,
        )
    except auto.CommandError:
        if not plan.mandatory_violations:
            raise
    plan.resources = list(steps.values())
    return plan
