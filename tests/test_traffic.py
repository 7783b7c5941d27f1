"""Safe model updates on the local target, end to end (real engine, Docker, nginx, the scoring server):
an endpoint with deployments behind its router splits live traffic by weight, mirrors a share to a
deployment whose answers are dropped, shifts traffic and updates models under load without losing a
request, and refuses a deployment that never gets ready while traffic stays where it was.

One stack, changed step by step (the tests run in order): blue 90 / green 10 → blue 100 with a 20%
mirror to green → green 100 under load → a broken deployment refused → green's model updated under load.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import joblib
import pytest
import requests
from sklearn.linear_model import Ridge

from modelplane.engine import PROJECT_ROOT
from tests.conftest import Load, free_port, modelplane, succeeded, tally_answers

pytestmark = [pytest.mark.engine, pytest.mark.docker]

EXAMPLE = PROJECT_ROOT / "examples" / "sklearn-regression"
SAMPLE = {"data": [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]]}
HEADER = "azureml-model-deployment"


@dataclass
class TrafficStack:
    name: str
    folder: Path
    env: dict[str, str]
    port: int
    transcript: list[str] = field(default_factory=list)

    @property
    def file(self) -> Path:
        return self.folder / f"{self.name}.yaml"

    def declare(self, deployments: str, traffic: str, mirror: str = "") -> None:
        """The endpoint's deployments and traffic (YAML flow mappings)."""
        self.file.write_text(
            f"""\
models:
  v1: {{path: example/model/sklearn_regression_model.pkl, framework: scikit-learn}}
  v2: {{path: retrained/sklearn_regression_model.pkl, framework: scikit-learn}}
images:
  scorer-v1: {{inference_config: example/inferenceconfig.json, source_directory: example, models: [v1]}}
  scorer-v2: {{inference_config: example/inferenceconfig.json, source_directory: example, models: [v2]}}
  broken: {{inference_config: broken/inferenceconfig.json, source_directory: broken, models: [v1]}}
endpoints:
  web:
    port: {self.port}
    deployments: {deployments}
    traffic: {traffic}
{f"    mirror_traffic: {mirror}" if mirror else ""}
"""
        )

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = modelplane(args[0], self.file, self.env, *args[1:], transcript=self.transcript)
        return succeeded(result) if check else result

    def key(self) -> str:
        return str(json.loads(self.cli("outputs", "--show-secrets").stdout)["endpoint_keys"]["web"]["primary_key"])

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}/score"

    def container(self, deployment: str) -> Any:
        labels = [f"modelplane.stack={self.name}", "modelplane.endpoint=web", f"modelplane.deployment={deployment}"]
        (found,) = docker.from_env().containers.list(filters={"label": labels})
        return found


def _model(folder: Path, alpha: float, target: float) -> Ridge:
    model = Ridge(alpha=alpha).fit([[float(i == j) for j in range(10)] for i in range(10)], [target] * 10)
    folder.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, folder / "sklearn_regression_model.pkl")
    return model


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TrafficStack]:
    folder = tmp_path_factory.mktemp("traffic")
    shutil.copytree(EXAMPLE, folder / "example", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(EXAMPLE, folder / "broken", ignore=shutil.ignore_patterns("__pycache__"))
    (folder / "broken" / "score.py").write_text(
        "def init():\n    raise RuntimeError('the model file is corrupt (a test)')\n\n\n"
        "def run(data):\n    return data\n"
    )
    _model(folder / "retrained", alpha=0.1, target=100.0)
    workdir = folder / "work"
    (workdir / "state").mkdir(parents=True)
    (workdir / "passphrase").write_text("traffic-passphrase-not-a-secret\n")
    env = {**os.environ, "MODELPLANE_STATE": str(workdir)}
    env.pop("PULUMI_CONFIG_PASSPHRASE", None)
    port = free_port()
    handle = TrafficStack(f"traffic{port}", folder, env, port)
    yield handle
    handle.cli("destroy", "--yes", check=False)
    (PROJECT_ROOT / f"Pulumi.{handle.name}.yaml").unlink(missing_ok=True)


BLUE_GREEN = "{blue: {image: scorer-v1}, green: {image: scorer-v2}}"


def _answers(stack: TrafficStack, key: str, count: int) -> Counter[str]:
    return tally_answers(stack.uri, key, SAMPLE, count)


def _scored(container: Any) -> int:
    """Scoring requests a deployment's container answered, from the AML server's request log."""
    return sum("/score" in line and "POST" in line for line in container.logs().decode(errors="replace").splitlines())


def test_live_traffic_lands_by_weight(stack: TrafficStack) -> None:
    stack.declare(BLUE_GREEN, "{blue: 90, green: 10}")
    stack.cli("up", "--yes")
    tally = _answers(stack, stack.key(), 10_000)
    assert sum(tally.values()) == 10_000 and set(tally) == {"blue", "green"}, tally
    assert 8_800 <= tally["blue"] <= 9_200 and 800 <= tally["green"] <= 1_200, tally
    # Without a key the router passes the request on and the deployment's gate refuses it.
    assert requests.post(stack.uri, json=SAMPLE, timeout=30).status_code == 401


def test_mirrored_requests_reach_the_mirror_and_never_the_caller(stack: TrafficStack) -> None:
    stack.declare(BLUE_GREEN, "{blue: 100, green: 0}", mirror="{green: 20}")
    plan = stack.cli("plan", "--format", "json", "--detailed-exitcode", check=False)
    shifts = json.loads(plan.stdout)["trafficShifts"]
    assert [s["line"] for s in shifts] == ["endpoint web: traffic blue 90→100, green 10→0"], plan.stdout[-2000:]
    assert (
        "endpoint web: traffic blue 90→100, green 10→0" in stack.cli("plan", "--detailed-exitcode", check=False).stdout
    )
    with Load(stack.uri, stack.key(), SAMPLE, concurrency=4) as load:  # a shift back, and a mirror added
        stack.cli("up", "--yes")
    assert load.requests > 50 and load.failures == [], (load.requests, load.failures[:10])
    green = stack.container("green")
    before = _scored(green)
    tally = _answers(stack, stack.key(), 2_000)
    assert tally == Counter({"blue": 2_000}), tally
    mirrored = _scored(green) - before
    assert 300 <= mirrored <= 500, mirrored  # 20% of 2,000


def test_a_traffic_shift_under_load_loses_nothing(stack: TrafficStack) -> None:
    stack.declare(BLUE_GREEN, "{blue: 0, green: 100}")
    markdown = stack.cli("plan", "--format", "markdown", "--detailed-exitcode", check=False).stdout
    assert "- endpoint web: traffic blue 100→0, green 0→100" in markdown, markdown[-2000:]
    with Load(stack.uri, stack.key(), SAMPLE, concurrency=4) as load:
        stack.cli("up", "--yes")
    assert load.requests > 50 and load.failures == [], (load.requests, load.failures[:10])
    assert set(load.answered_by) == {"blue", "green"}, load.answered_by
    assert _answers(stack, stack.key(), 200) == Counter({"green": 200})


def test_a_deployment_that_never_gets_ready_fails_up_and_traffic_stays(stack: TrafficStack) -> None:
    stack.declare("{blue: {image: scorer-v1}, green: {image: scorer-v2}, red: {image: broken}}", "{green: 90, red: 10}")
    failed = stack.cli("up", "--yes", check=False)
    assert failed.returncode != 0
    assert f"container modelplane-{stack.name}-web-red-" in failed.stderr, failed.stderr[-3000:]
    assert "did not become ready: its process exited" in failed.stderr, failed.stderr[-3000:]
    assert "the model file is corrupt (a test)" in failed.stderr, failed.stderr[-3000:]
    assert _answers(stack, stack.key(), 200) == Counter({"green": 200})
    assert not docker.from_env().containers.list(all=True, filters={"label": "modelplane.deployment=red"})


def test_a_model_update_of_the_live_deployment_loses_nothing(stack: TrafficStack) -> None:
    stack.declare(BLUE_GREEN, "{blue: 0, green: 100}")
    newer = _model(stack.folder / "retrained", alpha=0.5, target=250.0)
    old_container = stack.container("green").name
    with Load(stack.uri, stack.key(), SAMPLE, concurrency=4) as load:
        stack.cli("up", "--yes")
    assert load.requests > 50 and load.failures == [], (load.requests, load.failures[:10])
    answer = requests.post(stack.uri, json=SAMPLE, headers={"Authorization": f"Bearer {stack.key()}"}, timeout=30)
    assert answer.json()[0] == pytest.approx(float(newer.predict([SAMPLE["data"][0]])[0]), rel=1e-6)
    assert stack.container("green").name != old_container
    assert stack.cli("preview", "--detailed-exitcode", check=False).returncode == 0
