"""Azure ML v2 online endpoints: enough instances and big enough ones in production, and tokens
rather than keys for production callers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from modelplane.constants import PRODUCTION_MIN_INSTANCES, PRODUCTION_MIN_VCPUS
from policies.rules import Resource, Rule, RuleConfig
from policies.sizing import VCPUS

ONLINE_ENDPOINT = "azure-native:machinelearningservices:OnlineEndpoint"
ONLINE_DEPLOYMENT = "azure-native:machinelearningservices:OnlineDeployment"
TOKEN_AUTH_MODES = ("AMLToken", "AADToken")


def _properties(resource: Resource) -> Mapping[str, Any]:
    properties = resource.props.get("properties")
    return properties if isinstance(properties, Mapping) else {}


def _deployment_name(resource: Resource) -> str:
    return f"{resource.props.get('endpointName')}/{resource.props.get('deploymentName')}"


def _fewest_instances(resource: Resource) -> int:
    """The instances a deployment can drop to: its count, or its autoscaler's minimum."""
    scale = _properties(resource).get("scaleSettings") or {}
    if scale.get("scaleType") == "TargetUtilization" and scale.get("minInstances") is not None:
        return int(scale["minInstances"])
    return int((resource.props.get("sku") or {}).get("capacity") or 1)


def production_instances(resource: Resource, config: RuleConfig) -> list[str]:
    if resource.type != ONLINE_DEPLOYMENT or not resource.production:
        return []
    wanted = int(config.get("minInstances", PRODUCTION_MIN_INSTANCES))
    fewest = _fewest_instances(resource)
    if fewest < wanted:
        return [
            f"Give production deployment {_deployment_name(resource)} at least {wanted} instances: it can run on"
            f" {fewest}, and Azure ML needs spare capacity to upgrade and heal without dropping requests."
        ]
    return []


def production_instance_size(resource: Resource, config: RuleConfig) -> list[str]:
    properties = _properties(resource)
    managed = properties.get("endpointComputeType") == "Managed"
    if resource.type != ONLINE_DEPLOYMENT or not resource.production or not managed:
        return []
    size = str(properties.get("instanceType"))
    wanted = int(config.get("minVcpus", PRODUCTION_MIN_VCPUS))
    if size not in VCPUS:
        name = _deployment_name(resource)
        return [f"Give production deployment {name} a known instance type: {size} is not in the vCPU table."]
    if VCPUS[size] < wanted:
        return [
            f"Give production deployment {_deployment_name(resource)} an instance type with at least {wanted} vCPUs:"
            f" {size} has {VCPUS[size]} (Azure ML calls the small sizes fit for testing only)."
        ]
    return []


def production_token_auth(resource: Resource, _config: RuleConfig) -> list[str]:
    if resource.type != ONLINE_ENDPOINT or not resource.production:
        return []
    mode = _properties(resource).get("authMode")
    if mode not in TOKEN_AUTH_MODES:
        return [
            f"Use auth_mode aml_token or aad_token on production endpoint {resource.props.get('endpointName')}:"
            f" its callers hold keys ({mode}) that never expire."
        ]
    return []


RULES = [
    Rule(
        "online-production-instances",
        "Production online deployments run at least 3 instances (or autoscale from 3).",
        "mandatory",
        check=production_instances,
        config_schema={"minInstances": {"type": "integer", "minimum": 1}},
    ),
    Rule(
        "online-production-instance-size",
        "Production managed deployments use instance types with at least 4 vCPUs.",
        "mandatory",
        check=production_instance_size,
        config_schema={"minVcpus": {"type": "integer", "minimum": 1}},
    ),
    Rule(
        "online-production-token-auth",
        "Production online endpoints authenticate with expiring tokens rather than keys.",
        "advisory",
        check=production_token_auth,
    ),
]
