"""A plan as text, Markdown (a PR comment: details cut at 64,000 characters, the summary never) or
JSON (docs/plan.schema.json). Resources are shown under the component a user declared
("endpoint 'web'"), as a reviewer reads them; secrets are always [secret]."""

from __future__ import annotations

import json
from collections import Counter

from modelplane.plan.model import Plan, ResourcePlan
from modelplane.report import MARKDOWN_LIMIT, short_value, table_cell, within_limit


def _counted(resources: list[ResourcePlan]) -> str:
    """ "2 to create, 1 to update" """
    counts = Counter(r.op for r in resources)
    return ", ".join(f"{n} to {op}" if op != "same" else f"{n} unchanged" for op, n in counts.items())


def render_text(plan: Plan) -> str:
    lines = [f"Plan for stack {plan.stack} ({plan.mode}{', against ' + plan.against if plan.against else ''})"]
    lines.append("  " + _counted(plan.resources) if plan.resources else "  nothing to do")
    lines += [f"  {shift.line}" for shift in plan.traffic_shifts()]
    for component, resources in plan.by_component().items():
        lines.append(f"  {component}: {_counted(resources)}")
        for resource in resources:
            lines.append(f"    {resource.op:8} {resource.type} {resource.name}")
            lines += [f"        {c.path}: {short_value(c.old)} => {short_value(c.new)}" for c in resource.changes]
    lines += [f"warning: {warning}" for warning in plan.warnings]
    if plan.violations:
        lines.append(f"Policy violations ({len(plan.violations)}):")
        lines += [f"  [{v.level}] {v.policy} ({v.resource}): {v.message}" for v in plan.violations]
    else:
        lines.append("No policy violations.")
    return "\n".join(lines) + "\n"


def _markdown_summary(plan: Plan) -> str:
    head = [f"### Modelplane plan: `{plan.stack}` ({plan.mode})", ""]
    if plan.against:
        head += [f"Compared with `{plan.against}`.", ""]
    counts = plan.counts
    head += [
        "| create | update | replace | delete | unchanged |",
        "| ---: | ---: | ---: | ---: | ---: |",
        f"| {counts['create']} | {counts['update']} | {counts['replace']} | {counts['delete']} | {counts['same']} |",
        "",
    ]
    mandatory = len(plan.mandatory_violations)
    head.append(
        f"**Policy: {mandatory} mandatory, {len(plan.violations) - mandatory} advisory violation(s).**"
        if plan.violations
        else "**Policy: no violations.**"
    )
    shifts = plan.traffic_shifts()
    if shifts:
        head += ["", "**Traffic:**", "", *(f"- {table_cell(shift.line)}" for shift in shifts)]
    return "\n".join(head) + "\n\n"


def _markdown_component(component: str, resources: list[ResourcePlan]) -> str:
    body = [f"<details><summary><b>{component}</b>: {_counted(resources)}</summary>", ""]
    for resource in resources:
        body.append(f"- `{resource.op}` {resource.type} `{resource.name}`")
        body += [f"  - `{c.path}`: `{short_value(c.old)}` → `{short_value(c.new)}`" for c in resource.changes]
    return "\n".join([*body, "", "</details>", ""]) + "\n"


def render_markdown(plan: Plan, limit: int = MARKDOWN_LIMIT) -> str:
    parts: list[str] = []
    if plan.warnings:
        parts.append(
            "**Warnings** (settings with no effect here):\n\n"
            + "".join(f"- {table_cell(w)}\n" for w in plan.warnings)
            + "\n"
        )
    if plan.violations:
        table = ["| level | policy | resource | message |", "| --- | --- | --- | --- |"]
        table += [f"| {v.level} | `{v.policy}` | `{v.resource}` | {table_cell(v.message)} |" for v in plan.violations]
        parts.append("\n".join(table) + "\n\n")
    parts += [_markdown_component(c, resources) for c, resources in plan.by_component().items()]
    return within_limit(_markdown_summary(plan), parts, limit, "entries")


def render(plan: Plan, output_format: str) -> str:
    if output_format == "json":
        return json.dumps(plan.to_json(), indent=2, sort_keys=True) + "\n"
    if output_format == "markdown":
        return render_markdown(plan)
    return render_text(plan)
