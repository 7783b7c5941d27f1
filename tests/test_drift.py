"""Drift on the real engine and Docker: each kind of hand-made change is found (exit 2, naming the
endpoint or image and the property), the state is untouched by the check, and --remediate (or an
`up --refresh`) repairs it."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import pytest
import requests

from modelplane.engine import PROJECT_ROOT, venv_bin
from tests.conftest import free_port, modelplane

pytestmark = [pytest.mark.engine, pytest.mark.docker]

BASE_IMAGE = "modelplane/base:bookworm-py3"


@dataclass
class Deployed:
    file: Path
    env: dict[str, str]
    state: Path
    port: int
    router: str
    """The endpoint's router container (on its port); the scoring container is `container`."""

    @property
    def container(self) -> str:
        """The name of the endpoint's scoring container (deployment `default`, behind the router)."""
        labels = [f"modelplane.stack={self.file.stem}", "modelplane.deployment=default"]
        (found,) = docker.from_env().containers.list(all=True, filters={"label": labels})
        return str(found.name)

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return modelplane(args[0], self.file, self.env, *args[1:])

    def drift(self) -> tuple[int, dict[str, Any]]:
        result = self.cli("drift", "--format", "json")
        assert result.returncode in (0, 2), result.stderr[-3000:]
        return result.returncode, json.loads(result.stdout)

    def state_digest(self) -> str:
        files = sorted(p for p in self.state.rglob("*") if p.is_file())
        return hashlib.sha256(b"".join(p.name.encode() + p.read_bytes() for p in files)).hexdigest()

    def image(self) -> str:
        outputs = json.loads(self.cli("outputs").stdout)
        return str(outputs["images"]["scorer"])

    def remediate(self) -> None:
        result = self.cli("drift", "--remediate", "--yes")
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        assert "No drift" in result.stdout.splitlines()[-1]
        self.assert_restored()

    def assert_restored(self) -> None:
        """No drift left, and the endpoint answers with its key."""
        code, report = self.drift()
        assert code == 0, report
        key = json.loads(self.cli("outputs", "--show-secrets").stdout)["endpoint_keys"]["web"]["primary_key"]
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                answer = requests.post(
                    f"http://127.0.0.1:{self.port}/score",
                    json={"data": [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]]},
                    headers={"Authorization": f"Bearer {key}"},
                    timeout=5,
                )
                if answer.status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.5)
        raise AssertionError("the endpoint did not answer once restored")


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployed]:
    root = tmp_path_factory.mktemp("drift")
    shutil.copytree(PROJECT_ROOT / "examples" / "sklearn-regression", root / "example")
    port = free_port()
    name = f"drift{port}"
    stack = root / f"{name}.yaml"
    stack.write_text(
        f"models:\n  ridge: {{path: example/model/sklearn_regression_model.pkl}}\nimages:\n  scorer:\n"
        f"    inference_config: example/inferenceconfig.json\n    source_directory: example\n    models: [ridge]\n"
        f"endpoints:\n  web:\n    image: scorer\n    port: {port}\n"
    )
    (root / "state").mkdir()
    (root / "passphrase").write_text("drift-test\n")
    env = {**os.environ, "MODELPLANE_STATE": str(root)}
    handle = Deployed(stack, env, root / "state", port, f"modelplane-{name}-web")
    assert handle.router
    up = handle.cli("up", "--yes")
    assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
    yield handle
    handle.cli("destroy", "--yes")
    (PROJECT_ROOT / f"Pulumi.{name}.yaml").unlink(missing_ok=True)  # the engine's stack settings


def only(report: dict[str, Any]) -> dict[str, Any]:
    assert report["drifted"] is True
    assert len(report["resources"]) == 1, report["resources"]
    return report["resources"][0]  # type: ignore[no-any-return]


def test_untouched_stack_never_reports_drift(deployed: Deployed) -> None:
    before = deployed.state_digest()
    for _ in range(10):
        code, report = deployed.drift()
        assert (code, report["drifted"]) == (0, False), report
    assert deployed.state_digest() == before, "a drift check must not write the state"


def test_removed_container(deployed: Deployed) -> None:
    docker.from_env().containers.get(deployed.container).remove(force=True)
    before = deployed.state_digest()
    code, report = deployed.drift()
    assert deployed.state_digest() == before
    assert code == 2
    drifted = only(report)
    assert (drifted["component"], drifted["status"], drifted["name"]) == (
        "endpoint 'web'",
        "disappeared",
        "endpoint-web-default",
    )
    deployed.remediate()


def test_up_with_refresh_puts_back_a_removed_container(deployed: Deployed) -> None:
    docker.from_env().containers.get(deployed.container).remove(force=True)
    plain = deployed.cli("up", "--yes")
    assert plain.returncode == 0 and plain.stdout.strip().endswith("no changes"), plain.stdout[-2000:]
    refreshed = deployed.cli("up", "--yes", "--refresh")
    assert refreshed.returncode == 0, refreshed.stdout[-3000:] + refreshed.stderr[-3000:]
    assert "update succeeded: 1 create" in refreshed.stdout, refreshed.stdout[-2000:]
    deployed.assert_restored()


def test_removed_router(deployed: Deployed) -> None:
    docker.from_env().containers.get(deployed.router).remove(force=True)
    code, report = deployed.drift()
    assert code == 2
    drifted = only(report)
    assert (drifted["component"], drifted["status"], drifted["name"]) == (
        "endpoint 'web'",
        "disappeared",
        "endpoint-web-router",
    )
    deployed.remediate()


def test_router_configuration_changed_by_hand(deployed: Deployed) -> None:
    router = docker.from_env().containers.get(deployed.router)
    config = "/etc/modelplane/nginx.conf"
    assert router.exec_run(["sed", "-i", 's/return 200 "/return 200 "x/', config]).exit_code == 0
    assert router.exec_run(["nginx", "-c", config, "-s", "reload"]).exit_code == 0
    time.sleep(1)
    code, report = deployed.drift()
    assert code == 2
    drifted = only(report)
    assert drifted["name"] == "endpoint-web-router"
    assert [c["path"] for c in drifted["changes"]] == ["config_digest"], drifted["changes"]
    deployed.remediate()


def test_stopped_container(deployed: Deployed) -> None:
    docker.from_env().containers.get(deployed.container).stop(timeout=2)
    code, report = deployed.drift()
    assert code == 2
    drifted = only(report)
    assert drifted["component"] == "endpoint 'web'"
    assert {"path": "status", "old": "running", "new": "exited"} in drifted["changes"]
    deployed.remediate()


def test_container_recreated_with_another_key(deployed: Deployed) -> None:
    client = docker.from_env()
    original = client.containers.get(deployed.container)
    env = dict(item.split("=", 1) for item in original.attrs["Config"]["Env"])
    env["MODELPLANE_PRIMARY_KEY"] = "a-key-set-by-hand"
    image, labels, name = original.attrs["Config"]["Image"], original.labels, original.name
    network = next(iter(original.attrs["NetworkSettings"]["Networks"]))
    original.remove(force=True)
    client.containers.run(image, name=name, detach=True, environment=env, labels=labels, network=network)
    code, report = deployed.drift()
    assert code == 2
    drifted = only(report)
    assert drifted["component"] == "endpoint 'web'"
    paths = {change["path"]: change for change in drifted["changes"]}
    assert paths["env"] == {"path": "env", "old": "[secret]", "new": "[secret] (changed)"}
    assert "container_id" in paths
    assert "a-key-set-by-hand" not in json.dumps(report)
    deployed.remediate()


def test_image_retagged(deployed: Deployed) -> None:
    client = docker.from_env()
    repository, tag = deployed.image().rsplit(":", 1)
    client.images.get(BASE_IMAGE).tag(repository, tag)
    code, report = deployed.drift()
    assert code == 2
    drifted = only(report)
    assert (drifted["component"], drifted["name"]) == ("image 'scorer'", "image-scorer-image")
    paths = {change["path"] for change in drifted["changes"]}
    assert {"image_id", "labels.modelplane.digest"} <= paths, drifted["changes"]
    deployed.remediate()
    assert client.images.get(deployed.image()).labels.get("modelplane.image") == "scorer"
    client.images.get(BASE_IMAGE)  # the image that was retagged by hand is left alone


def test_image_removed(deployed: Deployed) -> None:
    docker.from_env().images.remove(deployed.image(), force=True)
    code, report = deployed.drift()
    assert code == 2
    drifted = only(report)
    assert (drifted["component"], drifted["status"]) == ("image 'scorer'", "disappeared")
    deployed.remediate()


def test_markdown_and_text_reports_name_the_endpoint(deployed: Deployed) -> None:
    docker.from_env().containers.get(deployed.container).stop(timeout=2)
    markdown = deployed.cli("drift", "--format", "markdown")
    assert markdown.returncode == 2
    assert "| endpoint 'web' | `endpoint-web-default` | changed | `status` | running | exited |" in markdown.stdout
    text = deployed.cli("drift")
    assert "endpoint 'web': endpoint-web-default" in text.stdout
    deployed.remediate()


def test_missing_stack_is_an_error(tmp_path: Path, deployed: Deployed) -> None:
    other = tmp_path / "never-deployed.yaml"
    other.write_text(deployed.file.read_text().replace("example/", f"{deployed.file.parent}/example/"))
    result = subprocess.run(
        [str(venv_bin() / "modelplane"), "drift", "--file", str(other)],
        capture_output=True,
        text=True,
        env=deployed.env,
        timeout=300,
    )
    assert result.returncode == 1
    assert "has not been deployed" in result.stderr
