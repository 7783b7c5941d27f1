"""Workspace: the Azure ML workspace and what it needs, created or looked up."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pulumi
from pulumi_azure_native import (
    applicationinsights,
    authorization,
    containerregistry,
    keyvault,
    machinelearningservices,
    resources,
    storage,
)

from modelplane.naming import compact_name
from modelplane.spec import AzureSpec
from modelplane.spec.schema import ExistingWorkspace


@dataclass(frozen=True)
class WorkspaceArgs:
    azure: AzureSpec
    """Location, resource group and workspace settings from the stack's `azure:` section."""
    tags: dict[str, str] = field(default_factory=dict)
    """Tags put on every resource."""


@dataclass(frozen=True)
class WorkspaceFacts:
    """What endpoints and models need to know of a workspace, created or found."""

    resource_group_name: pulumi.Output[str]
    workspace_name: pulumi.Output[str]
    location: pulumi.Output[str]
    storage_account_name: pulumi.Output[str]
    registry_name: pulumi.Output[str]
    insights_key: pulumi.Output[str]
    """The instrumentation key of the workspace's Application Insights (a secret)."""


class Workspace(pulumi.ComponentResource):
    """Resource group, storage account, key vault, container registry, Application Insights and the
    ML workspace — or an existing workspace and its registry looked up by name."""

    resource_group_name: pulumi.Output[str]
    workspace_name: pulumi.Output[str]
    location: pulumi.Output[str]
    storage_account_name: pulumi.Output[str]
    registry_name: pulumi.Output[str]
    insights_key: pulumi.Output[str]
    registry_server: pulumi.Output[str]
    registry_username: pulumi.Output[str]
    registry_password: pulumi.Output[str]

    def __init__(self, name: str, args: WorkspaceArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("modelplane:index:Workspace", name, None, opts)
        existing = args.azure.workspace.existing
        facts = existing_workspace(existing, args.azure.location) if existing else self._created(name, args)
        self.resource_group_name = facts.resource_group_name
        self.workspace_name = facts.workspace_name
        self.location = facts.location
        self.storage_account_name = facts.storage_account_name
        self.registry_name = facts.registry_name
        self.insights_key = facts.insights_key
        credentials = containerregistry.list_registry_credentials_output(
            resource_group_name=self.resource_group_name, registry_name=self.registry_name
        )
        self.registry_server = self.registry_name.apply(lambda n: f"{n}.azurecr.io")
        self.registry_username = pulumi.Output.from_input(credentials.username).apply(lambda u: u or "")
        self.registry_password = pulumi.Output.secret(
            credentials.passwords.apply(lambda ps: (ps[0].value if ps else "") or "")
        )
        self.register_outputs(
            {
                "resource_group_name": self.resource_group_name,
                "workspace_name": self.workspace_name,
                "registry_server": self.registry_server,
            }
        )

    def _created(self, name: str, args: WorkspaceArgs) -> WorkspaceFacts:
        azure = args.azure
        child = pulumi.ResourceOptions(parent=self)
        group = resources.ResourceGroup(
            f"{name}-rg", resource_group_name=azure.resource_group, location=azure.location, tags=args.tags, opts=child
        )
        placed = {"resource_group_name": group.name, "location": azure.location, "tags": args.tags, "opts": child}
        account = storage.StorageAccount(
            f"{name}-storage",
            account_name=compact_name("st", name, 24),
            kind=storage.Kind.STORAGE_V2,
            sku={"name": storage.SkuName.STANDARD_LRS},
            allow_blob_public_access=False,
            minimum_tls_version=storage.MinimumTlsVersion.TLS1_2,
            **placed,
        )
        vault = _key_vault(name, placed)
        registry = containerregistry.Registry(
            f"{name}-acr",
            registry_name=compact_name("acr", name, 50),
            sku={"name": containerregistry.SkuName.STANDARD},
            admin_user_enabled=True,
            **placed,
        )
        insights = _insights(name, placed)
        workspace = machinelearningservices.Workspace(
            f"{name}-mlw",
            workspace_name=azure.workspace.name or f"{name}-ws",
            identity={"type": machinelearningservices.ManagedServiceIdentityType.SYSTEM_ASSIGNED},
            storage_account=account.id,
            key_vault=vault.id,
            container_registry=registry.id,
            application_insights=insights.id,
            sku={"name": azure.workspace.sku.capitalize(), "tier": azure.workspace.sku.capitalize()},
            **placed,
        )
        return WorkspaceFacts(
            resource_group_name=group.name,
            workspace_name=workspace.name,
            location=pulumi.Output.from_input(azure.location),
            storage_account_name=account.name,
            registry_name=registry.name,
            insights_key=pulumi.Output.secret(insights.instrumentation_key),
        )


def existing_workspace(existing: ExistingWorkspace, default_location: str) -> WorkspaceFacts:
    """A workspace made elsewhere, and its storage account and registry, looked up by name."""
    found = machinelearningservices.get_workspace_output(
        resource_group_name=existing.resource_group, workspace_name=existing.name
    )
    return WorkspaceFacts(
        resource_group_name=pulumi.Output.from_input(existing.resource_group),
        workspace_name=found.name,
        location=found.location.apply(lambda loc: loc or default_location),
        storage_account_name=found.storage_account.apply(lambda sid: (sid or "").rsplit("/", 1)[-1]),
        registry_name=found.container_registry.apply(lambda rid: (rid or "").rsplit("/", 1)[-1]),
        insights_key=found.application_insights.apply(_insights_key),
    )


def _insights_key(component_id: str | None) -> pulumi.Output[str]:
    """The instrumentation key of the Application Insights component with this resource ID."""
    parts = (component_id or "").split("/")
    if len(parts) < 9:
        return pulumi.Output.secret("")
    component = applicationinsights.get_component_output(resource_group_name=parts[4], resource_name=parts[8])
    return pulumi.Output.secret(component.instrumentation_key)


def _key_vault(name: str, placed: dict[str, Any]) -> keyvault.Vault:
    client = authorization.get_client_config_output()
    return keyvault.Vault(
        f"{name}-kv",
        vault_name=compact_name("kv", name, 24),
        properties={
            "tenant_id": client.tenant_id,
            "sku": {"family": keyvault.SkuFamily.A, "name": keyvault.SkuName.STANDARD},
            "enable_rbac_authorization": True,
            "enable_soft_delete": True,
        },
        **placed,
    )


def _insights(name: str, placed: dict[str, Any]) -> applicationinsights.Component:
    return applicationinsights.Component(
        f"{name}-appi",
        resource_name_=f"{name}-appi",
        kind="web",
        application_type=applicationinsights.ApplicationType.WEB,
        **placed,
    )
