"""`modelplane plan`: what a change will do and what the policies say, for a pull request.

Online: a Pulumi preview with the policy pack, through the Automation API; policy verdicts come from
the engine's events (`preview --json` leaves them out). Offline: the program under mocks — no
engine, no credentials — with the same policy functions evaluated over the recorded inputs, and
optionally compared with another offline plan (a git ref or a saved JSON plan).

Rendered as text, Markdown (for a PR comment, at most 64,000 characters: details are cut, the
summary never) or JSON (docs/plan.schema.json). Secret values are always printed as [secret].
"""

from __future__ import annotations

import json
import subprocess
import tarfile
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from io import BytesIO
from pathlib import Path
from typing import Any

import pulumi
from pulumi import automation as auto

from modelplane.engine import PROJECT_ROOT
from modelplane.offline import RecordingMocks, is_secret
from modelplane.providers import DYNAMIC_PACKAGE
from modelplane.spec import StackSpec, load_stack
from policies import ALL_RULES
from policies.rules import Level, Resource, Rule, RuleConfig

SECRET = "[secret]"
MARKDOWN_LIMIT = 64_000
PLAN_SCHEMA_VERSION = 1
POLICY_DIR = PROJECT_ROOT / "policies"
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


@dataclass(frozen=True)
class Violation:
    policy: str
    level: str
    message: str
    resource: str


@dataclass
class Plan:
    stack: str
    mode: str
    resources: list[ResourcePlan] = field(default_factory=list)
    violations: list[Violation] = field(default_factory=list)
    against: str | None = None

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

    def to_json(self) -> dict[str, Any]:
        return {
            "schemaVersion": PLAN_SCHEMA_VERSION,
            "stack": self.stack,
            "mode": self.mode,
            "against": self.against,
            "counts": self.counts,
            "resources": [
                {
                    "name": r.name,
                    "type": r.type,
                    "op": r.op,
                    "changes": [asdict(c) for c in r.changes],
                    **({"inputs": r.inputs} if r.inputs is not None else {}),
                }
                for r in self.resources
            ],
            "violations": [asdict(v) for v in self.violations],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Plan:
        return cls(
            stack=data["stack"],
            mode=data["mode"],
            against=data.get("against"),
            resources=[
                ResourcePlan(
                    name=r["name"],
                    type=r["type"],
                    op=r["op"],
                    changes=tuple(Change(**c) for c in r.get("changes", [])),
                    inputs=r.get("inputs"),
                )
                for r in data["resources"]
            ],
            violations=[Violation(**v) for v in data.get("violations", [])],
        )


# ------------------------------------------------------------------------------------------------
# Policies


def policy_levels(config_file: Path | None) -> tuple[dict[str, Level], dict[str, dict[str, Any]]]:
    """Enforcement level and settings of every rule: the rule's default, then the stack's config
    file (Pulumi's policy-config format: "rule": "level" or {"enforcementLevel": ..., ...})."""
    levels: dict[str, Level] = {rule.id: rule.level for rule in ALL_RULES}
    settings: dict[str, dict[str, Any]] = {rule.id: {} for rule in ALL_RULES}
    if config_file is not None and config_file.is_file():
        for rule_id, value in json.loads(config_file.read_text()).items():
            if rule_id == "all" and isinstance(value, str):
                levels = dict.fromkeys(levels, value)  # type: ignore[arg-type]
            elif isinstance(value, str):
                levels[rule_id] = value  # type: ignore[assignment]
            elif isinstance(value, dict):
                if "enforcementLevel" in value:
                    levels[rule_id] = value["enforcementLevel"]
                settings[rule_id] = {k: v for k, v in value.items() if k != "enforcementLevel"}
    return levels, settings


def evaluate(
    resources: Sequence[Resource], config_file: Path | None, rules: Iterable[Rule] = ALL_RULES
) -> list[Violation]:
    """The policy pack's verdicts, computed from the same rule functions without the engine."""
    levels, settings = policy_levels(config_file)
    violations: list[Violation] = []
    for rule in rules:
        level = levels.get(rule.id, rule.level)
        if level == "disabled":
            continue
        config = RuleConfig(settings.get(rule.id, {}))
        if rule.check is not None:
            for resource in resources:
                violations += [Violation(rule.id, level, m, resource.name) for m in rule.check(resource, config)]
        if rule.stack_check is not None:
            violations += [Violation(rule.id, level, m, name) for name, m in rule.stack_check(resources, config)]
    return violations


def config_file_for(stack: str) -> Path | None:
    path = POLICY_DIR / "config" / f"{stack}.json"
    return path if path.is_file() else None


# ------------------------------------------------------------------------------------------------
# Offline


def masked(value: Any) -> Any:
    """Recorded inputs with every secret replaced by [secret]."""
    if is_secret(value):
        return SECRET
    if isinstance(value, dict):
        return {k: masked(v) for k, v in value.items()}
    if isinstance(value, list):
        return [masked(v) for v in value]
    return value


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

    mocks = RecordingMocks()
    pulumi.runtime.set_mocks(mocks, project="modelplane", stack=stack_name, preview=True)
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


def offline_plan(spec: StackSpec, stack_name: str, config_file: Path | None, project_root: Path = PROJECT_ROOT) -> Plan:
    mocks = record(spec, stack_name, project_root)
    resources = [Resource(r.typ, r.name, r.inputs) for r in mocks.resources]
    plan = Plan(stack=stack_name, mode="offline")
    plan.resources = []
    for r in mocks.resources:
        inputs = masked(r.raw)
        changes = tuple(Change(path, None, value) for path, value in flatten(inputs).items() if path)
        plan.resources.append(ResourcePlan(r.name, r.typ, "create", changes, inputs=inputs))
    plan.violations = evaluate(resources, config_file)
    return plan


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": [1]}} → {"a.b[0]": 1}."""
    if isinstance(value, dict) and value:
        out: dict[str, Any] = {}
        for key, inner in value.items():
            out.update(flatten(inner, f"{prefix}.{key}" if prefix else str(key)))
        return out
    if isinstance(value, list) and value:
        out = {}
        for index, inner in enumerate(value):
            out.update(flatten(inner, f"{prefix}[{index}]"))
        return out
    return {prefix: value}


def compare(base: Plan, head: Plan) -> Plan:
    """What changes from `base` to `head` (both offline): added, removed and changed inputs."""
    before = {(r.type, r.name): r for r in base.resources}
    after = {(r.type, r.name): r for r in head.resources}
    result = Plan(stack=head.stack, mode="offline", violations=head.violations, against=base.stack)
    for key, resource in after.items():
        if key not in before:
            result.resources.append(ResourcePlan(resource.name, resource.type, "create", inputs=resource.inputs))
            continue
        old, new = flatten(before[key].inputs or {}), flatten(resource.inputs or {})
        changes = tuple(
            Change(path, old.get(path), new.get(path))
            for path in sorted(set(old) | set(new))
            if old.get(path) != new.get(path)
        )
        result.resources.append(ResourcePlan(resource.name, resource.type, "update" if changes else "same", changes))
    for key, resource in before.items():
        if key not in after:
            result.resources.append(ResourcePlan(resource.name, resource.type, "delete"))
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


# ------------------------------------------------------------------------------------------------
# Online


def _name_of(urn: str) -> str:
    return urn.rsplit("::", 1)[-1]


def _changes(metadata: auto.events.StepEventMetadata) -> tuple[Change, ...]:
    old_inputs = flatten((metadata.old.inputs if metadata.old else None) or {})
    new_inputs = flatten((metadata.new.inputs if metadata.new else None) or {})
    paths = list((metadata.detailed_diff or {}).keys()) or list(metadata.diffs or [])
    found = []
    for path in paths:
        old = {k: v for k, v in old_inputs.items() if k == path or k.startswith((f"{path}.", f"{path}["))}
        new = {k: v for k, v in new_inputs.items() if k == path or k.startswith((f"{path}.", f"{path}["))}
        found.append(Change(path, _single(old, path), _single(new, path)))
    return tuple(found)


def _single(values: dict[str, Any], path: str) -> Any:
    if not values:
        return None
    if list(values) == [path]:
        return values[path]
    return {k[len(path) :].lstrip("."): v for k, v in values.items()}


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


def online_plan(stack: auto.Stack, config_file: Path | None, progress: Callable[[str], None] | None = None) -> Plan:
    """A preview with the policy pack; events give each step and every policy verdict."""
    plan = Plan(stack=stack.name, mode="online")
    steps: dict[str, ResourcePlan] = {}
    urn_names: dict[str, str] = {}

    def on_event(event: auto.events.EngineEvent) -> None:
        if event.resource_pre_event is not None:
            metadata = event.resource_pre_event.metadata
            op = OP_NAMES.get(str(getattr(metadata.op, "value", metadata.op)).lower(), "update")
            # The provider of Modelplane's dynamic resources is plumbing, as Pulumi's default one
            # (never shown) was before it: plans list what is deployed, like the offline plan.
            if op is None or metadata.type in ("pulumi:pulumi:Stack", f"pulumi:providers:{DYNAMIC_PACKAGE}"):
                return
            name = _name_of(metadata.urn)
            urn_names[metadata.urn] = name
            if metadata.urn in steps and steps[metadata.urn].op == "replace":
                return
            steps[metadata.urn] = ResourcePlan(name, metadata.type, op, _changes(metadata) if op != "same" else ())
        if event.policy_event is not None:
            policy = event.policy_event
            level = str(getattr(policy.enforcement_level, "value", policy.enforcement_level)).lower()
            resource = _name_of(policy.resource_urn) if policy.resource_urn else stack.name
            message = policy.message.strip().splitlines()[-1] if policy.message.strip() else policy.policy_name
            plan.violations.append(Violation(policy.policy_name, level, message, resource))

    packs = [str(POLICY_DIR)]
    configs = [str(config_file)] if config_file is not None else None
    try:
        stack.preview(on_event=on_event, on_output=progress, policy_packs=packs, policy_pack_configs=configs, diff=True)
    except auto.CommandError:
        if not plan.mandatory_violations:
            raise
    plan.resources = list(steps.values())
    return plan


# ------------------------------------------------------------------------------------------------
# Rendering


def short_value(value: Any) -> str:
    text = json.dumps(value, sort_keys=True) if not isinstance(value, str) else value
    return text if len(text) <= 120 else text[:117] + "..."


def render_text(plan: Plan) -> str:
    lines = [f"Plan for stack {plan.stack} ({plan.mode}{', against ' + plan.against if plan.against else ''})"]
    lines.append(
        "  " + ", ".join(f"{n} to {op}" if op != "same" else f"{n} unchanged" for op, n in plan.counts.items() if n)
    )
    for resource in plan.resources:
        if resource.op == "same":
            continue
        lines.append(f"  {resource.op:8} {resource.type} {resource.name}")
        for change in resource.changes:
            lines.append(f"      {change.path}: {short_value(change.old)} => {short_value(change.new)}")
    if plan.violations:
        lines.append(f"Policy violations ({len(plan.violations)}):")
        lines += [f"  [{v.level}] {v.policy} ({v.resource}): {v.message}" for v in plan.violations]
    else:
        lines.append("No policy violations.")
    return "\n".join(lines) + "\n"


def table_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(plan: Plan, limit: int = MARKDOWN_LIMIT) -> str:
    head = [f"### Modelplane plan: `{plan.stack}` ({plan.mode})", ""]
    if plan.against:
        head += [f"Compared with `{plan.against}`.", ""]
    head += ["| create | update | replace | delete | unchanged |", "| ---: | ---: | ---: | ---: | ---: |"]
    counts = plan.counts
    head.append(
        f"| {counts['create']} | {counts['update']} | {counts['replace']} | {counts['delete']} | {counts['same']} |"
    )
    head.append("")
    mandatory = len(plan.mandatory_violations)
    head.append(
        f"**Policy: {mandatory} mandatory, {len(plan.violations) - mandatory} advisory violation(s).**"
        if plan.violations
        else "**Policy: no violations.**"
    )
    head.append("")
    summary = "\n".join(head) + "\n"

    detail_parts: list[str] = []
    if plan.violations:
        table = ["| level | policy | resource | message |", "| --- | --- | --- | --- |"]
        table += [f"| {v.level} | `{v.policy}` | `{v.resource}` | {table_cell(v.message)} |" for v in plan.violations]
        detail_parts.append("\n".join(table) + "\n\n")
    for resource in plan.resources:
        if resource.op == "same":
            continue
        body = [
            f"<details><summary><code>{resource.op}</code> {resource.type} <code>{resource.name}</code></summary>",
            "",
        ]
        body += [f"- `{c.path}`: `{short_value(c.old)}` → `{short_value(c.new)}`" for c in resource.changes]
        body += ["", "</details>", ""]
        detail_parts.append("\n".join(body) + "\n")

    budget = limit - len(summary) - 200
    kept: list[str] = []
    used = 0
    for index, part in enumerate(detail_parts):
        if used + len(part) > budget:
            kept.append(
                f"\n_… {len(detail_parts) - index} more entries not shown (the plan exceeds {limit:,} characters)._\n"
            )
            break
        kept.append(part)
        used += len(part)
    return summary + "".join(kept)


def render(plan: Plan, output_format: str) -> str:
    if output_format == "json":
        return json.dumps(plan.to_json(), indent=2, sort_keys=True) + "\n"
    if output_format == "markdown":
        return render_markdown(plan)
    return render_text(plan)
