"""The policy pack without the engine: each rule's level and settings from the stack's policy
config, and the rules' verdicts over recorded resources (the same functions CrossGuard runs)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from modelplane.engine import PROJECT_ROOT
from modelplane.plan.model import Violation
from policies import ALL_RULES
from policies.rules import Level, Resource, Rule, RuleConfig

POLICY_DIR = PROJECT_ROOT / "policies"


def config_file_for(stack: str) -> Path | None:
    """policies/config/<stack>.json when there is one."""
    path = POLICY_DIR / "config" / f"{stack}.json"
    return path if path.is_file() else None


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
