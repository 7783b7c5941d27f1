"""The local default end to end: real engine, real Docker, the real scoring server, the CLI.

One stack (a copy of the seed's regression example on ports of its own) goes through the whole
workflow: up → call with and without the key → preview shows nothing → new model → preview lists
exactly the model, the image and the endpoint → up rebuilds only the last layer and serves the new
model → destroy leaves nothing. Keys must never show up in plain text along the way.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import joblib
import pytest
import requests
from docker.errors import NotFound
from sklearn.linear_model import Ridge

from modelplane.engine import PROJECT_ROOT
from tests.conftest import free_port, modelplane, succeeded, wait_ready

pytestmark = [pytest.mark.engine, pytest.mark.docker]

EXAMPLE = PROJECT_ROOT / "examples" / "sklearn-regression"
SAMPLE = {"data": [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]]}


@dataclass
class LocalStack:
    name: str
    file: Path
    workdir: Path
    env: dict[str, str]
    port: int
    transcript: list[str]

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        stack_file = self.file if args[0] != "validate" else None
        result = modelplane(args[0], stack_file, self.env, *args[1:], transcript=self.transcript)
        return succeeded(result) if check else result

    def outputs(self, show_secrets: bool = False) -> dict[str, Any]:
        flags = ["--show-secrets"] if show_secrets else []
        return json.loads(self.cli("outputs", *flags).stdout)  # type: ignore[no-any-return]

    def state_files(self) -> list[Path]:
        return [p for p in (self.workdir / "state").rglob("*") if p.is_file()]


@pytest.fixture
def local_stack(tmp_path: Path) -> Iterator[LocalStack]:
    workdir = tmp_path / "work"
    example = tmp_path / "example"
    shutil.copytree(EXAMPLE, example, ignore=shutil.ignore_patterns("__pycache__"))
    port = free_port()
    name = f"e2e{port}"
    stack = tmp_path / f"{name}.yaml"
    stack.write_text(
        f"""\
models:
  ridge:
    path: example/model/sklearn_regression_model.pkl
    framework: scikit-learn
images:
  scorer:
    inference_config: example/inferenceconfig.json
    source_directory: example
    models: [ridge]
endpoints:
  web:
    image: scorer
    port: {port}
"""
    )
    (workdir / "state").mkdir(parents=True)
    (workdir / "passphrase").write_text("e2e-passphrase-not-a-secret\n")
    env = {**os.environ, "MODELPLANE_STATE": str(workdir)}
    env.pop("PULUMI_CONFIG_PASSPHRASE", None)
    handle = LocalStack(name, stack, workdir, env, port, [])
    yield handle
    handle.cli("destroy", "--yes", check=False)
    (PROJECT_ROOT / f"Pulumi.{name}.yaml").unlink(missing_ok=True)  # the engine's stack settings


def _score(port: int, key: str | None, body: Any = SAMPLE) -> requests.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return requests.post(f"http://127.0.0.1:{port}/score", json=body, headers=headers, timeout=30)


def _layers(image: str) -> list[str]:
    return list(docker.from_env().images.get(image).attrs["RootFS"]["Layers"])


def test_local_workflow_end_to_end(local_stack: LocalStack) -> None:
    stack = local_stack
    stack.cli("up", "--yes")
    outputs = stack.outputs()
    assert outputs["endpoint_keys"] == "[secret]"
    endpoint = outputs["endpoints"]["web"]
    assert endpoint["scoring_uri"] == f"http://127.0.0.1:{stack.port}/score"
    keys = stack.outputs(show_secrets=True)["endpoint_keys"]["web"]
    wait_ready(stack.port)

    # With a key (either one) the model answers; without one, 401.
    first = _score(stack.port, keys["primary_key"])
    assert first.status_code == 200, first.text
    assert first.json()[0] == pytest.approx(6039.66, rel=1e-3)
    assert _score(stack.port, keys["secondary_key"]).status_code == 200
    assert _score(stack.port, None).status_code == 401
    assert _score(stack.port, "not-the-key").status_code == 401
    swagger = requests.get(endpoint["swagger_uri"], timeout=10).json()
    assert swagger["definitions"]["ServiceInput"]["example"] == {"data": [[10, 9, 8, 7, 6, 5, 4, 3, 2, 1]]}
    invoked = stack.cli("invoke", "web", "--data", json.dumps(SAMPLE))
    assert json.loads(invoked.stdout) == first.json()

    # No perpetual diffs; the plan (online, with policies) agrees.
    clean = stack.cli("preview", "--detailed-exitcode", check=False)
    assert clean.returncode == 0, clean.stdout[-2000:]
    for output_format in ("json", "markdown", "text"):
        planned = stack.cli("plan", "--format", output_format, "--detailed-exitcode")
        if output_format == "json":
            resources = json.loads(planned.stdout)["resources"]
            assert {r["op"] for r in resources} == {"same"}
            assert "pulumi:providers:pulumi-python" not in {r["type"] for r in resources}, "plumbing, not listed"

    # A retrained model: the preview names exactly the model, the image and the endpoint.
    image_before = stack.outputs()["images"]["scorer"]
    layers_before = _layers(image_before)
    model_file = stack.file.parent / "example" / "model" / "sklearn_regression_model.pkl"
    retrained = Ridge(alpha=0.1).fit([[float(i == j) for j in range(10)] for i in range(10)], [100.0] * 10)
    joblib.dump(retrained, model_file)
    plan = stack.cli("preview", "--detailed-exitcode", check=False)
    assert plan.returncode == 2
    replaced = {
        name
        for line in plan.stdout.splitlines()
        if line.lstrip().startswith("+-")
        for name in line.split()
        if name.startswith(("model-", "image-", "endpoint-"))
    }
    assert replaced == {"model-ridge-store", "image-scorer-image", "endpoint-web-default"}, plan.stdout[-3000:]

    stack.cli("up", "--yes")
    image_after = stack.outputs()["images"]["scorer"]
    assert image_after != image_before
    layers_after = _layers(image_after)
    # Only the model layer is new; the environment, runtime and source layers are reused.
    assert layers_after[:-1] == layers_before[:-1]
    assert layers_after[-1] != layers_before[-1]
    with pytest.raises(docker.errors.ImageNotFound):
        docker.from_env().images.get(image_before)
    keys_after = stack.outputs(show_secrets=True)["endpoint_keys"]["web"]
    assert keys_after == keys, "a new model keeps the endpoint's keys"
    wait_ready(stack.port)
    answer = _score(stack.port, keys["primary_key"])
    assert answer.status_code == 200
    assert answer.json()[0] == pytest.approx(float(retrained.predict([SAMPLE["data"][0]])[0]), rel=1e-6)

    # Keys never in plain text: not in anything the CLI printed, not in the state files.
    for key in keys.values():
        printed = [text for text in stack.transcript if key in text]
        # Only `outputs --show-secrets` may print them.
        assert all('"primary_key"' in text for text in printed)
        for path in stack.state_files():
            assert key not in path.read_text(errors="ignore"), path

    # destroy leaves no container, no image of the stack and no resources in state.
    stack.cli("destroy", "--yes")
    client = docker.from_env()
    with pytest.raises(NotFound):
        client.containers.get(f"modelplane-{stack.name}-web")
    assert not client.containers.list(all=True, filters={"label": f"modelplane.stack={stack.name}"})
    assert not client.networks.list(names=[f"modelplane-{stack.name}-web"])
    assert not [image for image in client.images.list() if any(stack.name in tag for tag in image.tags)]
    state = next(p for p in stack.state_files() if p.name == f"{stack.name}.json")
    resources = json.loads(state.read_text())["checkpoint"].get("latest", {}).get("resources") or []
    assert resources == []
