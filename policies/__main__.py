"""The policy pack program: wraps each rule of `policies` in a CrossGuard policy and serves them."""

from __future__ import annotations

from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    PolicyPack,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

from policies import ALL_RULES
from policies.rules import Resource, Rule, RuleConfig

LEVELS = {
    "advisory": EnforcementLevel.ADVISORY,
    "mandatory": EnforcementLevel.MANDATORY,
    "disabled": EnforcementLevel.DISABLED,
}


def _schema(rule: Rule) -> PolicyConfigSchema | None:
    return PolicyConfigSchema(properties=dict(rule.config_schema)) if rule.config_schema else None


def _described(rule: Rule) -> dict[str, Any]:
    """What CrossGuard shows of a policy: name, description, default level and config schema."""
    return {
        "name": rule.id,
        "description": rule.description,
        "enforcement_level": LEVELS[rule.level],
        "config_schema": _schema(rule),
    }


def resource_policy(rule: Rule) -> ResourceValidationPolicy:
    check = rule.check
    assert check is not None

    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        resource = Resource(args.resource_type, args.name, args.props)
        for message in check(resource, RuleConfig(args.get_config() or {})):
            report_violation(message, None)

    return ResourceValidationPolicy(validate=validate, **_described(rule))


def stack_policy(rule: Rule) -> StackValidationPolicy:
    stack_check = rule.stack_check
    assert stack_check is not None

    def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
        resources = [Resource(r.resource_type, r.name, r.props) for r in args.resources]
        urns: dict[str, Any] = {r.name: r.urn for r in args.resources}
        for name, message in stack_check(resources, RuleConfig(args.get_config() or {})):
            report_violation(message, urns.get(name))

    return StackValidationPolicy(validate=validate, **_described(rule))


PolicyPack(
    name="modelplane-guardrails",
    policies=[resource_policy(rule) if rule.check else stack_policy(rule) for rule in ALL_RULES],
)
