"""`modelplane plan`: what a change will do and what the policies say, for a pull request.

A package by job: `model` (the plan and its JSON), `policy` (rule levels and verdicts without the
engine), `mocks` and `offline` (the program under Pulumi's mocks), `online` (a preview with the
policy pack, read from the engine's events), `compare` (two offline plans) and `render`.
"""

from modelplane.plan.compare import compare, load_baseline
from modelplane.plan.model import Change, Plan, ResourcePlan, Violation
from modelplane.plan.offline import offline_plan, record
from modelplane.plan.policy import POLICY_DIR, config_file_for, evaluate
from modelplane.plan.render import render, render_markdown, render_text

__all__ = [
    "POLICY_DIR",
    "Change",
    "Plan",
    "ResourcePlan",
    "Violation",
    "compare",
    "config_file_for",
    "evaluate",
    "load_baseline",
    "offline_plan",
    "record",
    "render",
    "render_markdown",
    "render_text",
]
