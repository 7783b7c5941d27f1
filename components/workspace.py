"""Workspace: the Azure ML workspace and what it needs, created or looked up."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

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

from modelplane.spec import AzureSpec


@dataclass(frozen=True)
class WorkspaceArgs:
    azure: AzureSpec
    """Location, resource group and workspace settings from the stack's `azure:` section."""
    tags: dict[str, str] = field(default_factory=dict)
    """Tags put on every resource."""


def compact_name(prefix: str, name: str, limit: int) -> str:
    """A lowercase alphanumeric name within `limit` characters (storage accounts, registries, vaults),
    unique per `name` through a short hash."""
    suffix = hashlib.sha256(name.encode()).hexdigest()[:6]
    stem = "".join(ch for ch in name.lower() if ch.isalnum())
    return f"{prefix}{stem}"[: limit - len(suffix)] + suffix


def check_workspace_args(args: WorkspaceArgs) -> None:
    """Raise ValueError for arguments Azure would reject only after minutes."""
    if not args.azure.resource_group:
        raise ValueError("azure.resource_group is required")
    if len(args.azure.resource_group) > 90:
        raise ValueError("azure.resource_group must be at most 90 characters")


class Workspace(pulumi.ComponentResource):
    """Resource group, storage account, key vault, container registry, Application Insights and the
    ML workspace — or an existing workspace and its registry looked up by name."""

    resource_group_name: pulumi.Output[str]
    workspace_name: pulumi.Output[str]
    location: pulumi.Output[str]
    storage_account_name: pulumi.Output[str]
    registry_name: pulumi.Output[str]
    registry_server: pulumi.Output[str]
    registry_username: pulumi.Output[str]
    registry_password: pulumi.Output[str]

    def __init__(self, name: str, args: WorkspaceArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("modelplane:index:Workspace", name, None, opts)
        check_workspace_args(args)
        child = pulumi.ResourceOptions(parent=self)
        azure = args.azure
        existing = azure.workspace.existing
        if existing is not None:
            found = machinelearningservices.get_workspace_output(
                resource_group_name=existing.resource_group, workspace_name=existing.name
            )
            self.resource_group_name = pulumi.Output.from_input(existing.resource_group)
            self.workspace_name = found.name
            self.location = found.location.apply(lambda loc: loc or azure.location)
            self.storage_account_name = found.storage_account.apply(lambda sid: (sid or "").rsplit("/", 1)[-1])
            registry_name = found.container_registry.apply(lambda rid: (rid or "").rsplit("/", 1)[-1])
            self.registry_name = registry_name
        else:
            group = resources.ResourceGroup(
                f"{name}-rg",
                resource_group_name=azure.resource_group,
                location=azure.location,
                tags=args.tags,
                opts=child,
            )
            account = storage.StorageAccount(
                f"{name}-storage",
                account_name=compact_name("st", name, 24),
                resource_group_name=group.name,
                location=azure.location,
                kind=storage.Kind.STORAGE_V2,
                sku={"name": storage.SkuName.STANDARD_LRS},
                allow_blob_public_access=False,
                minimum_tls_version=storage.MinimumTlsVersion.TLS1_2,
                tags=args.tags,
                opts=child,
            )
            client = authorization.get_client_config_output()
            vault = keyvault.Vault(
                f"{name}-kv",
                vault_name=compact_name("kv", name, 24),
                resource_group_name=group.name,
                location=azure.location,
                properties={
                    "tenant_id": client.tenant_id,
                    "sku": {"family": keyvault.SkuFamily.A, "name": keyvault.SkuName.STANDARD},
                    "enable_rbac_authorization": True,
                    "enable_soft_delete": True,
                },
                tags=args.tags,
                opts=child,
            )
            registry = containerregistry.Registry(
                f"{name}-acr",
                registry_name=compact_name("acr", name, 50),
                resource_group_name=group.name,
                location=azure.location,
                sku={"name": containerregistry.SkuName.STANDARD},
                admin_user_enabled=True,
                tags=args.tags,
                opts=child,
            )
            insights = applicationinsights.Component(
                f"{name}-appi",
                resource_name_=f"{name}-appi",
                resource_group_name=group.name,
                location=azure.location,
                kind="web",
                application_type=applicationinsights.ApplicationType.WEB,
                tags=args.tags,
                opts=child,
            )
            workspace = machinelearningservices.Workspace(
                f"{name}-mlw",
                workspace_name=azure.workspace.name or f"{name}-ws",
                resource_group_name=group.name,
                location=azure.location,
                identity={"type": machinelearningservices.ManagedServiceIdentityType.SYSTEM_ASSIGNED},
                storage_account=account.id,
                key_vault=vault.id,
                container_registry=registry.id,
                application_insights=insights.id,
                sku={"name": azure.workspace.sku.capitalize(), "tier": azure.workspace.sku.capitalize()},
                tags=args.tags,
                opts=child,
            )
            self.resource_group_name = group.name
            self.workspace_name = workspace.name
            self.location = pulumi.Output.from_input(azure.location)
            self.storage_account_name = account.name
            self.registry_name = registry.name
        credentials = containerregistry.list_registry_credentials_output(
            resource_group_name=self.resource_group_name
            if existing is None
            else pulumi.Output.from_input(existing.resource_group),
            registry_name=self.registry_name,
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
