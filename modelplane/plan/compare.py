"""Two offline plans compared: what a pull request changes, input by input; the baseline from a
git ref (planned from `git archive`) or a saved JSON plan."""

from __future__ import annotations

import json
import subprocess
import tarfile
import tempfile
from io import BytesIO
from pathlib import Path

from modelplane.engine import PROJECT_ROOT
from modelplane.plan.model import Change, Plan, ResourcePlan
from modelplane.plan.offline import offline_plan
from modelplane.report import flatten
from modelplane.spec import load_stack


def _changes(before: ResourcePlan, after: ResourcePlan) -> tuple[Change, ...]:
    old, new = flatten(before.inputs or {}), flatten(after.inputs or {})
    return tuple(
        Change(path, old.get(path), new.get(path))
        for path in sorted(set(old) | set(new))
        if old.get(path) != new.get(path)
    )


def compare(base: Plan, head: Plan) -> Plan:
    """What changes from `base` to `head` (both offline): added, removed and changed inputs."""
    before = {(r.type, r.name): r for r in base.resources}
    after = {(r.type, r.name): r for r in head.resources}
    result = Plan(stack=head.stack, mode="offline", violations=head.violations, against=base.stack)
    for key, resource in after.items():
        if key not in before:
            result.resources.append(
                ResourcePlan(
                    resource.name, resource.type, "create", inputs=resource.inputs, component=resource.component
                )
            )
            continue
        changes = _changes(before[key], resource)
        op = "update" if changes else "same"
        result.resources.append(ResourcePlan(resource.name, resource.type, op, changes, component=resource.component))
    for key, resource in before.items():
        if key not in after:
            result.resources.append(ResourcePlan(resource.name, resource.type, "delete", component=resource.component))
    return result


def plan_at_ref(ref: str, stack_file: Path, stack_name: str, config_file: Path | None) -> Plan:
    """The offline plan of the same stack file as it was at git `ref`."""
    relative = stack_file.resolve().relative_to(PROJECT_ROOT)
    archive = subprocess.run(["git", "archive", "--format=tar", ref], cwd=PROJECT_ROOT, capture_output=True)
    if archive.returncode != 0:
        raise ValueError(f"git cannot read {ref}: {archive.stderr.decode().strip()}")
    with tempfile.TemporaryDirectory(prefix="modelplane-ref-") as folder:
        with tarfile.open(fileobj=BytesIO(archive.stdout)) as tar:
            tar.extractall(folder, filter="data")
        root = Path(folder)
        spec = load_stack(root / relative, name=stack_name)
        plan = offline_plan(spec, stack_name, config_file, project_root=root)
    plan.stack = f"{stack_name}@{ref}"
    return plan


def load_baseline(against: str, stack_file: Path, stack_name: str, config_file: Path | None) -> Plan:
    if against.endswith(".json") and Path(against).is_file():
        return Plan.from_json(json.loads(Path(against).read_text()))
    return plan_at_ref(against, stack_file, stack_name, config_file)
