"""`modelplane drift`: what changed behind the stack's back, found without changing anything.

A refresh in preview-only mode (`preview_refresh`; a plain refresh would rewrite state) asks every
provider for the real state; each resource whose reported outputs differ from the recorded ones is
drift, and one the provider no longer finds has disappeared. The report names the endpoint, model
or image a user declared, not only URNs, and prints secrets as [secret] (a change to the secret
environment shows through its fingerprint, never its value).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from pulumi import automation as auto

from modelplane.constants import KUBE_DEPLOYMENT_TYPE
from modelplane.plan.model import Change
from modelplane.report import (
    MARKDOWN_LIMIT,
    SECRET,
    component_label,
    flatten,
    is_component,
    mask,
    short_value,
    table_cell,
    under,
    under_any,
    within_limit,
)

# Outputs that are bookkeeping, not state a person declared or cares about.
# `__inputs`: pulumi-kubernetes keeps the inputs among the outputs; the live object says it all.
IGNORED_OUTPUTS = frozenset({"__provider", "__inputs", "__fieldManager", "__initialApiVersion"})
# Kubernetes objects report what controllers keep rewriting (status, bookkeeping metadata): a
# change there is the cluster working, not drift. Paths are prefixes of flattened outputs.
KUBERNETES_VOLATILE = (
    "status",
    "metadata.resourceVersion",
    "metadata.managedFields",
    "metadata.generation",
    "metadata.annotations.deployment.kubernetes.io/revision",
)
# A Deployment that declares no replica count has an autoscaler that owns it.
AUTOSCALED_REPLICAS = "spec.replicas"
# Output → (path shown, why): secret values that drift is detected through.
FINGERPRINTS = {"env_fingerprint": "env"}


@dataclass(frozen=True)
class DriftedResource:
    name: str
    type: str
    component: str
    """What the user declared, e.g. "endpoint 'web'"."""
    status: str
    """"changed" or "disappeared"."""
    changes: tuple[Change, ...] = ()


@dataclass
class DriftReport:
    stack: str
    checked: int = 0
    resources: list[DriftedResource] = field(default_factory=list)

    @property
    def drifted(self) -> bool:
        return bool(self.resources)

    def to_json(self) -> dict[str, Any]:
        return {
            "schemaVersion": 1,
            "stack": self.stack,
            "checked": self.checked,
            "drifted": self.drifted,
            "resources": [{**asdict(r), "changes": [asdict(c) for c in r.changes]} for r in self.resources],
        }


def _is_secret(value: Any) -> bool:
    """The engine's events carry secret outputs as {"ciphertext": "[secret]"}."""
    return isinstance(value, Mapping) and value.get("ciphertext") == SECRET


def _volatile_paths(recorded: Mapping[str, Any], resource_type: str) -> tuple[str, ...]:
    """Paths that controllers rewrite: Kubernetes status and bookkeeping, and the replica count of a
    Deployment whose inputs leave it to a HorizontalPodAutoscaler."""
    if not resource_type.startswith("kubernetes:"):
        return ()
    declared_spec = (recorded.get("__inputs") or {}).get("spec") or {}
    if resource_type == KUBE_DEPLOYMENT_TYPE and "replicas" not in declared_spec:
        return (*KUBERNETES_VOLATILE, AUTOSCALED_REPLICAS)
    return KUBERNETES_VOLATILE


def differences(
    recorded: Mapping[str, Any],
    actual: Mapping[str, Any],
    resource_type: str = "",
    changed_paths: Iterable[str] = (),
) -> tuple[Change, ...]:
    """Property paths whose value the provider reports differently from the state.

    Secret outputs arrive masked; one changed if the engine's detailed diff (`changed_paths`, which
    it computes on the real values) names a path inside it, or if its fingerprint output changed.
    """
    volatile = _volatile_paths(recorded, resource_type)
    changes: list[Change] = []
    fingerprinted = {FINGERPRINTS[k] for k in recorded if k in FINGERPRINTS}
    for key in sorted(set(recorded) | set(actual)):
        if key in IGNORED_OUTPUTS or key not in recorded:
            # Not recorded at deploy time (an output added later): nothing to compare with.
            continue
        if key in FINGERPRINTS:
            if recorded.get(key) != actual.get(key):
                changes.append(Change(FINGERPRINTS[key], SECRET, f"{SECRET} (changed)"))
            continue
        old, new = recorded.get(key), actual.get(key)
        if _is_secret(old) or _is_secret(new):
            if key in fingerprinted:
                continue  # reported through its fingerprint
            inside = sorted(p for p in changed_paths if under(p, key))
            changes += [Change(path, SECRET, f"{SECRET} (changed)") for path in inside]
            continue
        flat_old, flat_new = flatten(mask(old, _is_secret), key), flatten(mask(new, _is_secret), key)
        for path in sorted(set(flat_old) | set(flat_new)):
            if flat_old.get(path) != flat_new.get(path) and not under_any(path, volatile):
                changes.append(Change(path, flat_old.get(path), flat_new.get(path)))
    return tuple(changes)


def detect(stack: auto.Stack, progress: Callable[[str], None] | None = None) -> DriftReport:
    report = DriftReport(stack=stack.name)

    def on_event(event: auto.events.EngineEvent) -> None:
        outputs_event = event.res_outputs_event
        if outputs_event is None:
            return
        metadata = outputs_event.metadata
        if metadata.type.startswith(("pulumi:pulumi:Stack", "pulumi:providers:")) or is_component(metadata.type):
            return
        report.checked += 1
        op = str(getattr(metadata.op, "value", metadata.op)).lower()
        name = metadata.urn.rsplit("::", 1)[-1]
        state = metadata.old or metadata.new
        parent = state.parent if state is not None else None
        if op == "delete":
            report.resources.append(DriftedResource(name, metadata.type, component_label(parent), "disappeared"))
        elif op == "update" and metadata.old is not None and metadata.new is not None:
            changes = differences(
                metadata.old.outputs or {},
                metadata.new.outputs or {},
                metadata.type,
                (metadata.detailed_diff or {}).keys(),
            )
            if changes:
                report.resources.append(
                    DriftedResource(name, metadata.type, component_label(parent), "changed", changes)
                )

    stack.preview_refresh(on_event=on_event, on_output=progress)
    report.resources.sort(key=lambda r: (r.component, r.name))
    return report


def render_text(report: DriftReport) -> str:
    if not report.drifted:
        return f"No drift in stack {report.stack} ({report.checked} resources checked).\n"
    lines = [f"Drift in stack {report.stack}: {len(report.resources)} of {report.checked} resources"]
    for resource in report.resources:
        lines.append(f"  {resource.component}: {resource.name} ({resource.type}) {resource.status}")
        lines += [f"      {c.path}: {short_value(c.old)} => {short_value(c.new)}" for c in resource.changes]
    return "\n".join(lines) + "\n"


def render_markdown(report: DriftReport, limit: int = MARKDOWN_LIMIT) -> str:
    head = f"### Modelplane drift: `{report.stack}`\n\n"
    if not report.drifted:
        return head + f"**No drift** ({report.checked} resources checked).\n"
    head += f"**{len(report.resources)} of {report.checked} resources drifted.**\n\n"
    rows = ["| declared | resource | status | property | recorded | actual |\n| --- | --- | --- | --- | --- | --- |\n"]
    for resource in report.resources:
        for change in resource.changes or (Change("", None, None),):
            rows.append(
                f"| {resource.component} | `{resource.name}` | {resource.status} | `{change.path}` "
                f"| {table_cell(short_value(change.old))} | {table_cell(short_value(change.new))} |\n"
            )
    return within_limit(head, rows, limit, "rows")


def render(report: DriftReport, output_format: str) -> str:
    if output_format == "json":
        return json.dumps(report.to_json(), indent=2, sort_keys=True) + "\n"
    if output_format == "markdown":
        return render_markdown(report)
    return render_text(report)
