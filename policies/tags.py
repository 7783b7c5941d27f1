"""Required tags on Azure resources (the list is configurable)."""

from __future__ import annotations

from policies.rules import Resource, Rule, RuleConfig

DEFAULT_REQUIRED = ("owner", "environment")
# Azure resource types that take tags in Modelplane's stacks.
TAGGED_TYPES = frozenset(
    {
        "azure-native:resources:ResourceGroup",
        "azure-native:storage:StorageAccount",
        "azure-native:keyvault:Vault",
        "azure-native:containerregistry:Registry",
        "azure-native:applicationinsights:Component",
        "azure-native:machinelearningservices:Workspace",
        "azure-native:machinelearningservices:Compute",
        "azure-native:containerinstance:ContainerGroup",
        "azure-native:containerservice:ManagedCluster",
        "azure-native:containerservice:AgentPool",
        "azure-native:iothub:IotHubResource",
    }
)


def required_tags(resource: Resource, config: RuleConfig) -> list[str]:
    if resource.type not in TAGGED_TYPES:
        return []
    required = tuple(config.get("tags", DEFAULT_REQUIRED))
    missing = [tag for tag in required if tag not in resource.tags()]
    if missing:
        return [f"Tag {resource.type.split(':')[-1]} {resource.name} with {', '.join(missing)}."]
    return []


RULES = [
    Rule(
        "required-tags",
        "Azure resources carry the required tags.",
        "advisory",
        check=required_tags,
        config_schema={"tags": {"type": "array", "items": {"type": "string"}}},
    ),
]
