"""What the commands do, apart from parsing and printing: the CLI and the tests both call these.

`up` previews with the policy pack first, applies nothing when a mandatory rule fails, and runs the
engine a second time only when the preview found something to change. `remediate` refreshes the
state from what runs and applies the declaration, then checks again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pulumi import automation as auto

from modelplane.automation import StackRef, on_stack
from modelplane.plan.model import Plan
from modelplane.plan.policy import POLICY_DIR, config_file_for

# Exit codes, by what they mean (several share a number, as Pulumi's and Terraform's do).
EXIT_OK = 0
EXIT_FAILED = 1
"""An error, or a mandatory policy violation."""
EXIT_INVALID = 2
"""The declaration or the command line is invalid."""
EXIT_HAS_CHANGES = 2
"""`--detailed-exitcode`: the plan or preview has changes."""
EXIT_DRIFTED = 2
"""`drift`: something changed outside Modelplane (and stays so after remediation)."""

Progress = Callable[[str], None] | None


class OperationError(Exception):
    """An operation stopped with a reason to report in one line; `plan` when a policy stopped it."""

    def __init__(self, message: str, plan: Plan | None = None) -> None:
        super().__init__(message)
        self.plan = plan


@dataclass(frozen=True)
class Policies:
    """The policy pack and the stack's config for it: every preview and update is checked."""

    config_file: Path | None

    @classmethod
    def for_stack(cls, ref: StackRef, override: str | None = None) -> Policies:
        return cls(Path(override) if override else config_file_for(ref.name))

    def engine_options(self) -> dict[str, Any]:
        configs = [str(self.config_file)] if self.config_file is not None else None
        return {"policy_packs": [str(POLICY_DIR)], "policy_pack_configs": configs}


@dataclass(frozen=True)
class UpOutcome:
    plan: Plan
    applied: bool
    summary: str


def change_summary(changes: Mapping[Any, int] | None) -> str:
    """ "2 create, 1 update" (Pulumi's resource changes), or "no changes"."""
    ordered = sorted((changes or {}).items(), key=lambda item: str(item[0]))
    return ", ".join(f"{n} {op}" for op, n in ordered) or "no changes"


def preview(stack: auto.Stack, policies: Policies, diff: bool, progress: Progress) -> bool:
    """Pulumi's preview with the policy pack; whether anything would change."""
    result = on_stack(stack, lambda s: s.preview(on_output=progress, diff=diff, **policies.engine_options()))
    return any(n for op, n in result.change_summary.items() if op != "same")


def checked_plan(stack: auto.Stack, policies: Policies, progress: Progress, refresh: bool = False) -> Plan:
    """The online plan (against what runs when `refresh`); raises OperationError when a mandatory
    policy fails (nothing applied)."""
    from modelplane.plan.online import online_plan

    plan = on_stack(stack, lambda s: online_plan(s, policies.config_file, progress, refresh))
    if plan.mandatory_violations:
        count = len(plan.mandatory_violations)
        raise OperationError(f"{count} mandatory policy violation(s): nothing was applied", plan)
    return plan


def up(
    stack: auto.Stack,
    policies: Policies,
    confirm: Callable[[Plan], bool],
    progress: Progress,
    refresh: bool = False,
) -> UpOutcome:
    """Preview with the policy pack, then apply what it found (after `confirm`); a preview that
    finds nothing to change is the whole run. With `refresh`, both first read what runs, so what was
    removed or changed outside Modelplane is put back."""
    plan = checked_plan(stack, policies, progress, refresh)
    if not plan.has_changes:
        return UpOutcome(plan, applied=False, summary="no changes")
    if not confirm(plan):
        return UpOutcome(plan, applied=False, summary="nothing applied")
    result = stack.up(on_output=progress, refresh=refresh, **policies.engine_options())
    return UpOutcome(
        plan, applied=True, summary=f"update {result.summary.result}: {change_summary(result.summary.resource_changes)}"
    )


def destroy(stack: auto.Stack, progress: Progress) -> str:
    result = stack.destroy(on_output=progress)
    return f"destroy {result.summary.result}: {change_summary(result.summary.resource_changes)}"


def remediate(stack: auto.Stack, ref: StackRef, policies: Policies, progress: Progress) -> Any:
    """Refresh the state from what runs, apply the declaration, and report drift again."""
    from modelplane import drift

    ref.load()  # a declaration that became invalid stops here, before the engine
    stack.up(on_output=progress, refresh=True, **policies.engine_options())
    return drift.detect(stack)
