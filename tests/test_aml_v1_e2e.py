"""AML v1 files on the real engine and Docker: an inference config with an inline environment, whose
score.py reads the environment's variable and a folder model where AML puts it; and a conda file pinned
to Python 3.9, served by Debian bullseye's Python (its base image made on first use)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from modelplane.engine import PROJECT_ROOT
from tests.conftest import free_port, modelplane, succeeded, wait_ready

pytestmark = [pytest.mark.engine, pytest.mark.docker]

# No package to install: the image is the base, the runtime and these files.
SCORE = """\
import json
import os
import sys


def init():
    global weights
    # A folder model keeps its folder name under AZUREML_MODEL_DIR, as on Azure ML.
    with open(os.path.join(os.environ["AZUREML_MODEL_DIR"], "linear", "weights.json")) as handle:
        weights = json.load(handle)


def run(data):
    values = json.loads(data)["data"]
    score = sum(w * x for w, x in zip(weights["w"], values))
    return {"greeting": os.environ.get("GREETING"), "score": score, "python": sys.version.split()[0]}
"""
INFERENCE_CONFIG = {
    "entryScript": "score.py",
    "runtime": "python",
    "environment": {
        "name": "greeter-env",
        "environmentVariables": {"GREETING": "hello from the environment"},
        "python": {"userManagedDependencies": False, "condaDependencies": {"dependencies": ["python=3.11"]}},
        "docker": {"enabled": False, "baseImage": None, "sharedVolumes": True},
    },
}


@pytest.fixture
def project(tmp_path: Path) -> Iterator[tuple[Path, dict[str, str], list[int]]]:
    (tmp_path / "score.py").write_text(SCORE)
    (tmp_path / "linear").mkdir()
    (tmp_path / "linear" / "weights.json").write_text(json.dumps({"w": [1, 2, 3]}))
    (tmp_path / "inferenceconfig.json").write_text(json.dumps(INFERENCE_CONFIG, indent=2))
    (tmp_path / "pinned.yml").write_text("name: old\ndependencies:\n  - python=3.9\n  - pip\n")
    (tmp_path / "pinned.json").write_text('{"entryScript": "score.py", "condaFile": "pinned.yml",}\n')
    ports = [free_port(), free_port()]
    name = f"amlv1{ports[0]}"
    endpoints = "".join(
        f"  {image}:\n    image: {image}\n    port: {port}\n"
        for image, port in zip(("greeter", "pinned"), ports, strict=True)
    )
    stack = tmp_path / f"{name}.yaml"
    stack.write_text(
        "models:\n  linear_model:\n    path: linear\nimages:\n"
        "  greeter:\n    inference_config: inferenceconfig.json\n    models: [linear_model]\n"
        "  pinned:\n    inference_config: pinned.json\n    models: [linear_model]\n"
        f"endpoints:\n{endpoints}"
    )
    (tmp_path / "state").mkdir()
    (tmp_path / "passphrase").write_text("aml-v1-e2e-not-a-secret\n")
    env = {**os.environ, "MODELPLANE_STATE": str(tmp_path)}
    env.pop("PULUMI_CONFIG_PASSPHRASE", None)
    yield stack, env, ports
    modelplane("destroy", stack, env, "--yes")
    (PROJECT_ROOT / f"Pulumi.{name}.yaml").unlink(missing_ok=True)


def test_inline_environment_folder_model_and_a_python_pin(project: tuple[Path, dict[str, str], list[int]]) -> None:
    stack, env, ports = project
    validated = succeeded(modelplane("validate", None, env, str(stack)))
    assert "warning" not in validated.stderr, validated.stderr
    succeeded(modelplane("up", stack, env, "--yes"))
    keys = json.loads(succeeded(modelplane("outputs", stack, env, "--show-secrets")).stdout)["endpoint_keys"]
    pythons = {"greeter": "3.11.2", "pinned": "3.9.2"}
    for endpoint, port in zip(("greeter", "pinned"), ports, strict=True):
        wait_ready(port)
        answer = requests.post(
            f"http://127.0.0.1:{port}/score",
            json={"data": [1, 1, 1]},
            headers={"Authorization": f"Bearer {keys[endpoint]['primary_key']}"},
            timeout=60,
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["score"] == 6
        assert answer.json()["python"] == pythons[endpoint]
    greeting = requests.post(
        f"http://127.0.0.1:{ports[0]}/score",
        json={"data": [0, 0, 0]},
        headers={"Authorization": f"Bearer {keys['greeter']['primary_key']}"},
        timeout=60,
    )
    assert greeting.json()["greeting"] == "hello from the environment"
