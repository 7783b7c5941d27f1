"""RegisteredModel: a model registered under a version derived from its content."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pulumi

from modelplane.content import content_digest, files_under, version_of
from modelplane.providers.model_store import StoredModel
from modelplane.spec import ModelSpec


@dataclass(frozen=True)
class AzureModelTarget:
    """Where an Azure model is registered."""

    resource_group_name: pulumi.Input[str]
    """Resource group of the workspace."""
    workspace_name: pulumi.Input[str]
    """The ML workspace."""
    storage_account_name: pulumi.Input[str]
    """The workspace's storage account, which holds the model's files."""


@dataclass(frozen=True)
class RegisteredModelArgs:
    model_name: str
    """The model's name in the registry (the key under `models:`)."""
    spec: ModelSpec
    """Path, description, tags and framework from the stack."""
    azure: AzureModelTarget | None = None
    """Register in this Azure ML workspace; None registers in the local store."""
    local_store: Path | None = None
    """Folder of the local model store (used when `azure` is None)."""
    tags: dict[str, str] = field(default_factory=dict)
    """Stack-wide tags, merged under the model's own."""


def check_model_args(args: RegisteredModelArgs) -> None:
    if not args.spec.path.exists():
        raise ValueError(f"model {args.model_name}: {args.spec.path} does not exist")
    if not files_under(args.spec.path):
        raise ValueError(f"model {args.model_name}: {args.spec.path} holds no files")
    if args.azure is None and args.local_store is None:
        raise ValueError(f"model {args.model_name}: give an Azure workspace or a local store")


class RegisteredModel(pulumi.ComponentResource):
    """Uploads the model's files and registers a version named after their sha256, so an unchanged
    model never shows a diff and a changed one always does."""

    model_name: pulumi.Output[str]
    version: pulumi.Output[str]
    sha256: pulumi.Output[str]
    uri: pulumi.Output[str]

    def __init__(self, name: str, args: RegisteredModelArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("modelplane:index:RegisteredModel", name, None, opts)
        check_model_args(args)
        child = pulumi.ResourceOptions(parent=self)
        digest = content_digest(args.spec.path)
        version = version_of(digest)
        self.files_path = args.spec.path
        self.version_value = version
        tags = {**args.tags, **args.spec.tags}
        if args.azure is None:
            assert args.local_store is not None
            stored = StoredModel(
                f"{name}-store",
                {
                    "name": args.model_name,
                    "version": version,
                    "sha256": digest,
                    "source": str(args.spec.path),
                    "store": str(args.local_store),
                },
                opts=child,
            )
            self.uri = stored.path
        else:
            # Imported here: the Azure SDK costs a local stack's every preview (bench/: engine overhead).
            from pulumi_azure_native import machinelearningservices, storage

            target = args.azure
            container = storage.BlobContainer(
                f"{name}-blobs",
                container_name=f"model-{args.model_name}",
                account_name=target.storage_account_name,
                resource_group_name=target.resource_group_name,
                opts=child,
            )
            root = args.spec.path if args.spec.path.is_dir() else args.spec.path.parent
            blobs = []
            for index, file in enumerate(files_under(args.spec.path)):
                blobs.append(
                    storage.Blob(
                        f"{name}-blob-{index}",
                        blob_name=f"{version}/{file.relative_to(root).as_posix()}",
                        container_name=container.name,
                        account_name=target.storage_account_name,
                        resource_group_name=target.resource_group_name,
                        source=pulumi.FileAsset(str(file)),
                        type=storage.BlobType.BLOCK,
                        opts=child,
                    )
                )
            model_container = machinelearningservices.ModelContainer(
                f"{name}-container",
                name=args.model_name,
                resource_group_name=target.resource_group_name,
                workspace_name=target.workspace_name,
                properties={"description": args.spec.description, "tags": tags},
                opts=child,
            )
            self.uri = pulumi.Output.concat(
                "https://",
                pulumi.Output.from_input(target.storage_account_name),
                ".blob.core.windows.net/",
                container.name,
                f"/{version}",
            )
            machinelearningservices.ModelVersion(
                f"{name}-version",
                name=model_container.name,
                version=version,
                resource_group_name=target.resource_group_name,
                workspace_name=target.workspace_name,
                properties={
                    "model_uri": self.uri,
                    "model_type": "custom_model",
                    "description": args.spec.description,
                    "tags": tags,
                    "properties": {"sha256": digest, "framework": args.spec.framework or "custom"},
                },
                opts=pulumi.ResourceOptions(parent=self, depends_on=blobs),
            )
        self.model_name = pulumi.Output.from_input(args.model_name)
        self.version = pulumi.Output.from_input(version)
        self.sha256 = pulumi.Output.from_input(digest)
        self.register_outputs(
            {"model_name": self.model_name, "version": self.version, "sha256": self.sha256, "uri": self.uri}
        )
