"""Endpoint authentication: keys required, and keys only ever as secrets."""

from __future__ import annotations

from collections.abc import Mapping

from modelplane.constants import AUTH_MODE_VARIABLE, KEY_VARIABLES
from policies.rules import (
    Resource,
    Rule,
    RuleConfig,
    env_names,
    is_local_container,
    is_scoring_deployment,
    pod_containers,
)

ACI = "azure-native:containerinstance:ContainerGroup"


def _has_keys(names: Mapping[str, object]) -> bool:
    return all(variable in names for variable in KEY_VARIABLES)


def endpoint_auth(resource: Resource, _config: RuleConfig) -> list[str]:
    if resource.type == ACI:
        for container in resource.props.get("containers") or []:
            if not _has_keys(env_names(container)):
                return [f"Enable auth on ACI endpoint {resource.props.get('containerGroupName')}: it takes no key."]
    if is_scoring_deployment(resource):
        for container in pod_containers(resource):
            if not _has_keys(env_names(container, kubernetes=True)):
                name = resource.labels().get("app.kubernetes.io/name", resource.name)
                return [f"Enable auth on AKS endpoint {name}: it takes no key."]
    return []


def local_endpoint_auth(resource: Resource, _config: RuleConfig) -> list[str]:
    if not is_local_container(resource):
        return []
    # The container's env holds the keys as a secret that is unknown during preview; its `auth`
    # input is known and says whether the gate is on.
    if resource.props.get("auth") == "none":
        endpoint = (resource.props.get("labels") or {}).get("modelplane.endpoint", resource.name)
        return [f"Enable auth on local endpoint {endpoint}: it takes no key."]
    return []


def aks_production_token_auth(resource: Resource, _config: RuleConfig) -> list[str]:
    if not (is_scoring_deployment(resource) and resource.production):
        return []
    for container in pod_containers(resource):
        mode = env_names(container, kubernetes=True).get(AUTH_MODE_VARIABLE, {}).get("value")
        if mode != "token":
            name = resource.labels().get("app.kubernetes.io/name", resource.name)
            return [
                f"Set token_auth_enabled on production AKS endpoint {name}: its callers hold keys ({mode or 'key'})"
                " that never expire; tokens from `modelplane token` last an hour."
            ]
    return []


def keys_as_secrets(resource: Resource, _config: RuleConfig) -> list[str]:
    problems = []
    if resource.type == ACI:
        for container in resource.props.get("containers") or []:
            for variable, item in env_names(container).items():
                if variable in KEY_VARIABLES and "value" in item:
                    problems.append(
                        f"Pass {variable} of ACI endpoint {resource.props.get('containerGroupName')} as a secureValue."
                    )
    if is_scoring_deployment(resource):
        for container in pod_containers(resource):
            for variable, item in env_names(container, kubernetes=True).items():
                if variable in KEY_VARIABLES and "valueFrom" not in item:
                    problems.append(f"Read {variable} of AKS endpoint {resource.name} from a Kubernetes Secret.")
    return problems


RULES = [
    Rule("endpoint-auth", "Every non-local endpoint requires a key.", "mandatory", check=endpoint_auth),
    Rule("local-endpoint-auth", "Local endpoints should require a key too.", "advisory", check=local_endpoint_auth),
    Rule(
        "aks-production-token-auth",
        "Production AKS endpoints authenticate with expiring tokens rather than keys.",
        "advisory",
        check=aks_production_token_auth,
    ),
    Rule(
        "keys-as-secrets",
        "Keys reach containers only as secure values or Kubernetes Secrets.",
        "mandatory",
        check=keys_as_secrets,
    ),
]
