"""The local model registry: content-addressed copies under `.modelplane/models/<name>/<version>/`."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ReadResult, Resource, ResourceProvider

from modelplane.content import content_digest, files_under
from modelplane.providers import typed_resource_options


class ModelStoreProvider(ResourceProvider):
    def create(self, props: dict[str, Any]) -> CreateResult:
        source = Path(props["source"])
        target = Path(props["store"]) / props["name"] / props["version"]
        if target.exists():
            shutil.rmtree(target)
        root = source if source.is_dir() else source.parent
        for file in files_under(source):
            destination = target / file.relative_to(root)
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(file, destination)
        sha256 = content_digest(target)
        if sha256 != props["sha256"]:
            raise RuntimeError(f"model {props['name']} changed while it was being registered; run again")
        return CreateResult(id_=f"{props['name']}/{props['version']}", outs={**props, "path": str(target)})

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changed = [k for k in ("name", "version", "sha256", "store") if olds.get(k) != news.get(k)]
        return DiffResult(changes=bool(changed), replaces=changed, delete_before_replace=False)

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        path = Path(props.get("path") or "")
        if not path.is_dir():
            return ReadResult(id_="", outs={})
        return ReadResult(id_=id_, outs={**props, "sha256": content_digest(path)})

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        target = Path(props["store"]) / props["name"] / props["version"]
        shutil.rmtree(target, ignore_errors=True)
        # Leave no empty model folder behind.
        if target.parent.is_dir() and not any(target.parent.iterdir()):
            target.parent.rmdir()


class StoredModel(Resource, module="models", name="StoredModel"):
    """One model version in the local store; `path` is where its files are."""

    path: pulumi.Output[str]
    sha256: pulumi.Output[str]

    def __init__(self, resource_name: str, props: dict[str, Any], opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(
            ModelStoreProvider(), resource_name, {"path": None, **props}, typed_resource_options(None, opts)
        )
