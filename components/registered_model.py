"""RegisteredModel: a model registered under a version derived from its content."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import pulumi

from modelplane.content import content_digest, files_under, text_digest, version_of
from modelplane.naming import compact_name
from modelplane.providers.model_store import StoredModel
from modelplane.spec import ModelSpec

BLOB_CONTAINER_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]{1,61}[a-z0-9])$")


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
class LocalModelStore:
    """Where a local model is registered."""

    folder: Path
    """Folder of the local model store (.modelplane/models/<stack>)."""


@dataclass(frozen=True)
class RegisteredModelArgs:
    model_name: str
    """The model's name in the registry (the key under `models:`)."""
    spec: ModelSpec
    """Path, description, tags and framework from the stack (the path exists and holds files)."""
    target: AzureModelTarget | LocalModelStore
    """The Azure ML workspace, or the local store, it is registered in."""
    tags: dict[str, str] = field(default_factory=dict)
    """Stack-wide tags, merged under the model's own."""


def blob_container_name(model_name: str) -> str:
    """`model-<name>` when that is a valid blob container name (lowercase letters, digits, single
    hyphens, 3-63 characters); AML's model names allow more (`sklearn_model.pkl`), which get a
    compact name instead."""
    name = f"model-{model_name}"
    if BLOB_CONTAINER_NAME.match(name) and "--" not in name:
        return name
    return compact_name("model", model_name, 63)


class RegisteredModel(pulumi.ComponentResource):
    """Uploads the model's files and registers a version named after their sha256, so an unchanged
    model never shows a diff and a changed one always does. A model already on Azure (an azureml://
    URI) is registered where it is, versioned by its URI."""

    model_name: pulumi.Output[str]
    version: pulumi.Output[str]
    sha256: pulumi.Output[str]
    uri: pulumi.Output[str]

    def __init__(self, name: str, args: RegisteredModelArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("modelplane:index:RegisteredModel", name, None, opts)
        spec = args.spec
        digest = content_digest(spec.path) if isinstance(spec.path, Path) else text_digest(spec.path)
        version = version_of(digest)
        self.version_value = version
        # The model version's resource ID in the workspace (AML v2 deployments name their model by it).
        self.asset_id: pulumi.Output[str] | None = None
        if isinstance(args.target, LocalModelStore):
            self.uri = self._store_locally(name, args, args.target, version, digest)
        else:
            self.uri = self._register_in_azure(name, args, args.target, version, digest)
        self.model_name = pulumi.Output.from_input(args.model_name)
        self.version = pulumi.Output.from_input(version)
        self.sha256 = pulumi.Output.from_input(digest)
        self.register_outputs(
            {"model_name": self.model_name, "version": self.version, "sha256": self.sha256, "uri": self.uri}
        )

    def _store_locally(
        self, name: str, args: RegisteredModelArgs, store: LocalModelStore, version: str, digest: str
    ) -> pulumi.Output[str]:
        stored = StoredModel(
            f"{name}-store",
            {
                "name": args.model_name,
                "version": version,
                "sha256": digest,
                "source": str(args.spec.local_path),
                "store": str(store.folder),
            },
            opts=pulumi.ResourceOptions(parent=self),
        )
        return stored.path

    def _register_in_azure(
        self, name: str, args: RegisteredModelArgs, target: AzureModelTarget, version: str, digest: str
    ) -> pulumi.Output[str]:
        # Imported here: the Azure SDK costs a local stack's every preview (bench/: engine overhead).
        from pulumi_azure_native import machinelearningservices

        child = pulumi.ResourceOptions(parent=self)
        tags = {**args.tags, **args.spec.tags}
        if isinstance(args.spec.path, Path):
            container_name, blobs = self._upload(name, args, target, version)
            uri: pulumi.Output[str] = blob_uri(target, container_name, version)
        else:
            uri, blobs = pulumi.Output.from_input(args.spec.path), []
        model_container = machinelearningservices.ModelContainer(
            f"{name}-container",
            name=args.model_name,
            resource_group_name=target.resource_group_name,
            workspace_name=target.workspace_name,
            properties={"description": args.spec.description, "tags": tags},
            opts=child,
        )
        model_version = machinelearningservices.ModelVersion(
            f"{name}-version",
            name=model_container.name,
            version=version,
            resource_group_name=target.resource_group_name,
            workspace_name=target.workspace_name,
            properties={
                "model_uri": uri,
                "model_type": "custom_model",
                "description": args.spec.description,
                "tags": tags,
                "properties": {"sha256": digest, "framework": args.spec.framework or "custom"},
            },
            opts=pulumi.ResourceOptions(parent=self, depends_on=blobs),
        )
        self.asset_id = model_version.id
        return uri

    def _upload(
        self, name: str, args: RegisteredModelArgs, target: AzureModelTarget, version: str
    ) -> tuple[pulumi.Output[str], list[pulumi.Resource]]:
        # A folder keeps its name under the version, as AML registers it (and the image lays it out).
        path = args.spec.local_path
        upload = BlobFiles(blob_container_name(args.model_name), path.parent, files_under(path), version)
        return upload_files(name, upload, target, self)


@dataclass(frozen=True)
class BlobFiles:
    """Files uploaded to a blob container of the workspace's storage account, under `prefix/`."""

    container_name: str
    root: Path
    """Blob names are the files' paths relative to this folder."""
    files: list[Path]
    prefix: str


def upload_files(
    name: str, upload: BlobFiles, target: AzureModelTarget, parent: pulumi.Resource
) -> tuple[pulumi.Output[str], list[pulumi.Resource]]:
    """A blob container and one blob per file; the container's name and the blobs (an asset that
    points at them waits for them)."""
    from pulumi_azure_native import storage

    child = pulumi.ResourceOptions(parent=parent)
    placed = {"account_name": target.storage_account_name, "resource_group_name": target.resource_group_name}
    container = storage.BlobContainer(f"{name}-blobs", container_name=upload.container_name, opts=child, **placed)
    blobs: list[pulumi.Resource] = [
        storage.Blob(
            f"{name}-blob-{index}",
            blob_name=f"{upload.prefix}/{file.relative_to(upload.root).as_posix()}",
            container_name=container.name,
            source=pulumi.FileAsset(str(file)),
            type=storage.BlobType.BLOCK,
            opts=child,
            **placed,
        )
        for index, file in enumerate(upload.files)
    ]
    return container.name, blobs


def blob_uri(target: AzureModelTarget, container_name: pulumi.Input[str], prefix: str) -> pulumi.Output[str]:
    """The https URI of a folder of blobs in the workspace's storage account."""
    return pulumi.Output.concat(
        "https://",
        pulumi.Output.from_input(target.storage_account_name),
        ".blob.core.windows.net/",
        container_name,
        f"/{prefix}",
    )
