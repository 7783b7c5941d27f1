"""The Docker providers' diff decisions, without an engine (what recreates a container, rebuilds an image)."""

from __future__ import annotations

from typing import Any

from modelplane.providers.docker import ContainerProvider, ImageProvider

DEPLOYED_CONTAINER: dict[str, Any] = {
    "name": "modelplane-local-web",
    "image": "modelplane/local-scorer:abc",
    "env": {"MODELPLANE_PORT": "5001"},
    "ports": [{"internal": 5001, "external": 8890, "host_ip": "127.0.0.1"}],
    "labels": {"modelplane.stack": "local", "modelplane.endpoint": "web", "modelplane.auth": "key"},
    "restart": "unless-stopped",
    "status": "running",
}


def declared(**changes: Any) -> dict[str, Any]:
    return {**{k: v for k, v in DEPLOYED_CONTAINER.items() if k != "status"}, **changes}


def test_a_container_deployed_with_a_retired_label_is_not_recreated() -> None:
    # The auth label is now the `auth` input: a container that still carries the label is current.
    labels = {"modelplane.stack": "local", "modelplane.endpoint": "web"}
    diff = ContainerProvider().diff("id", DEPLOYED_CONTAINER, declared(labels=labels, auth="key"))
    assert not diff.changes, diff.replaces


def test_a_changed_label_still_recreates_the_container() -> None:
    labels = {"modelplane.stack": "local", "modelplane.endpoint": "api"}
    diff = ContainerProvider().diff("id", DEPLOYED_CONTAINER, declared(labels=labels))
    assert diff.changes and diff.replaces == ["labels"]


def test_an_image_built_with_retired_gpu_labels_is_not_rebuilt() -> None:
    built = {"tag": "t:1", "dockerfile": "Dockerfile", "image_id": "sha256:1", "labels": {"modelplane.gpu": "true"}}
    diff = ImageProvider().diff("t:1", built, {"tag": "t:1", "dockerfile": "Dockerfile", "labels": {}})
    assert not diff.changes, diff.replaces
