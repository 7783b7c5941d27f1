"""The offline plan: the program under mocks (no engine, no credentials), every registration listed
as a create with its inputs, and the policy rules evaluated over them."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pulumi

from modelplane.engine import PROJECT_ROOT
from modelplane.plan.mocks import RecordingMocks, Registered, is_secret, set_recording_mocks
from modelplane.plan.model import Change, Plan, ResourcePlan
from modelplane.plan.policy import evaluate
from modelplane.report import component_label, flatten, is_component, mask
from modelplane.spec import StackSpec
from policies.rules import Resource

# Inputs that are the engine's plumbing, not what a reviewer reads: the pickled dynamic provider.
PLUMBING_INPUTS = frozenset({"__provider"})


def _relocated(value: Any, replacements: Sequence[tuple[str, str]]) -> Any:
    """Machine-specific paths replaced by placeholders, so plans compare across checkouts; assets
    and archives as the file they name (plans are JSON)."""
    if isinstance(value, pulumi.asset.FileAsset | pulumi.asset.FileArchive):
        value = f"file:{value.path}"
    if isinstance(value, float) and value.is_integer():
        return int(value)  # the engine hands numbers over as floats; 3, not 3.0
    if isinstance(value, str):
        for old, new in replacements:
            value = value.replace(old, new)
        return value
    if isinstance(value, dict):
        return {k: _relocated(v, replacements) for k, v in value.items()}
    if isinstance(value, list):
        return [_relocated(v, replacements) for v in value]
    return value


def record(spec: StackSpec, stack_name: str, project_root: Path = PROJECT_ROOT) -> RecordingMocks:
    """Run the program for `spec` under mocks and return what it registered."""
    from modelplane.program import ProgramOptions, build_stack, export

    mocks = set_recording_mocks(stack_name, preview=True)
    with tempfile.TemporaryDirectory(prefix="modelplane-plan-") as state:

        @pulumi.runtime.test  # type: ignore[untyped-decorator]
        def program() -> None:
            export(build_stack(spec, stack_name, ProgramOptions(state_dir=Path(state))))

        program()
        replacements = [(state, "<state>"), (str(project_root), "<project>")]
        mocks.resources = [
            replace(r, raw=_relocated(r.raw, replacements), inputs=_relocated(r.inputs, replacements))
            for r in mocks.resources
        ]
    return mocks


def planned(registered: Registered) -> ResourcePlan:
    """One registration as a create: its inputs (secrets masked, plumbing left out) as changes."""
    inputs = {k: v for k, v in mask(registered.raw, is_secret).items() if k not in PLUMBING_INPUTS}
    changes = tuple(Change(path, None, value) for path, value in flatten(inputs).items() if path)
    return ResourcePlan(
        registered.name, registered.typ, "create", changes, inputs=inputs, component=component_label(registered.parent)
    )


def offline_plan(spec: StackSpec, stack_name: str, config_file: Path | None, project_root: Path = PROJECT_ROOT) -> Plan:
    mocks = record(spec, stack_name, project_root)
    plan = Plan(stack=stack_name, mode="offline")
    plan.resources = [planned(r) for r in mocks.resources if not is_component(r.typ)]
    plan.violations = evaluate([Resource(r.typ, r.name, r.inputs) for r in mocks.resources], config_file)
    return plan
