"""Day-2 operations on the local target, end to end (real engine, Docker, the router, the scoring
server): a key rotated under load without losing a request, token auth, Prometheus metrics, and
`up` failures that name their cause with the container's log lines.

One stack with two endpoints (`web`, key auth; `tok`, token auth), deployed once; the failure
tests use stacks of their own.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import jwt
import pytest
import requests

from modelplane.credentials import mint
from modelplane.engine import PROJECT_ROOT
from modelplane.runtime.ports import METRICS_PORT
from tests.conftest import Load, free_port, modelplane, succeeded

pytestmark = [pytest.mark.engine, pytest.mark.docker]

EXAMPLE = PROJECT_ROOT / "examples" / "sklearn-regression"
SAMPLE = {"data": [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]]}


@dataclass
class Day2Stack:
    name: str
    folder: Path
    env: dict[str, str]
    ports: dict[str, int]
    transcript: list[str] = field(default_factory=list)

    @property
    def file(self) -> Path:
        return self.folder / f"{self.name}.yaml"

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = modelplane(args[0], self.file, self.env, *args[1:], transcript=self.transcript)
        return succeeded(result) if check else result

    def rotate(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """`modelplane keys rotate --file STACK ARGS…`."""
        result = modelplane(
            "keys", None, self.env, "rotate", "--file", str(self.file), *args, transcript=self.transcript
        )
        return succeeded(result) if check else result

    def keys(self, endpoint: str) -> dict[str, str]:
        """The endpoint's keys (printed on request, so kept out of the transcript)."""
        outputs = json.loads(succeeded(modelplane("outputs", self.file, self.env, "--show-secrets")).stdout)
        return dict(outputs["endpoint_keys"][endpoint])

    def uri(self, endpoint: str) -> str:
        return f"http://127.0.0.1:{self.ports[endpoint]}/score"

    def call(self, endpoint: str, credential: str | None) -> requests.Response:
        headers = {"Authorization": f"Bearer {credential}"} if credential is not None else {}
        return requests.post(self.uri(endpoint), json=SAMPLE, headers=headers, timeout=30)


def _copy_example(folder: Path, score: str | None = None, conda: str | None = None) -> None:
    """The regression example in `folder`, its entry script or conda file replaced when given."""
    shutil.copytree(EXAMPLE, folder, ignore=shutil.ignore_patterns("__pycache__"), dirs_exist_ok=True)
    if score is not None:
        (folder / "score.py").write_text(score)
    if conda is not None:
        (folder / "myenv.yml").write_text(conda)


def _project(folder: Path, name: str, endpoints: str, score: str | None = None, conda: str | None = None) -> Path:
    """A stack file in `folder` serving the regression example as image `scorer` (and, when the
    folder has one, the `heavy` copy as image `heavy`)."""
    _copy_example(folder / "example", score, conda)
    heavy = (
        "  heavy: {inference_config: heavy/inferenceconfig.json, source_directory: heavy, models: [regression]}\n"
        if (folder / "heavy").is_dir()
        else ""
    )
    file = folder / f"{name}.yaml"
    file.write_text(
        f"""\
models:
  regression: {{path: example/model/sklearn_regression_model.pkl, framework: scikit-learn}}
images:
  scorer: {{inference_config: example/inferenceconfig.json, source_directory: example, models: [regression]}}
{heavy}endpoints:
{endpoints}"""
    )
    return file


# The regression model made deliberately heavier: 300 MB held by each worker, ~20 ms of CPU per request
# (18 ms here; 200,000 squares, 6 ms, left the latency margin below to a busy machine's noise).
HEAVY_SCORE = (
    (EXAMPLE / "score.py")
    .read_text()
    .replace(
        "def init():\n    global model\n",
        "def init():\n    global model, ballast\n    ballast = bytes(range(256)) * (300 * 1024 * 1024 // 256)\n",
    )
    .replace(
        "        result = model.predict(data)\n",
        "        sum(i * i for i in range(600_000))\n        result = model.predict(data)\n",
    )
)


def _engine_env(folder: Path) -> dict[str, str]:
    workdir = folder / "work"
    (workdir / "state").mkdir(parents=True)
    (workdir / "passphrase").write_text("day2-passphrase-not-a-secret\n")
    env = {**os.environ, "MODELPLANE_STATE": str(workdir)}
    env.pop("PULUMI_CONFIG_PASSPHRASE", None)
    return env


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Day2Stack]:
    folder = tmp_path_factory.mktemp("day2")
    ports = {"web": free_port(), "tok": free_port(), "heavy": free_port()}
    name = f"day2{ports['web']}"
    endpoints = (
        f"  web: {{image: scorer, port: {ports['web']}}}\n"
        f"  tok: {{image: scorer, port: {ports['tok']}, token_auth_enabled: true}}\n"
        f"  heavy: {{image: heavy, port: {ports['heavy']}}}\n"
    )
    _copy_example(folder / "heavy", HEAVY_SCORE)
    _project(folder, name, endpoints)
    handle = Day2Stack(name, folder, _engine_env(folder), ports)
    handle.cli("up", "--yes")
    yield handle
    handle.cli("destroy", "--yes", check=False)
    (PROJECT_ROOT / f"Pulumi.{handle.name}.yaml").unlink(missing_ok=True)


# --- keys ------------------------------------------------------------------------------------------


def test_rotating_the_primary_under_load_on_the_secondary_loses_no_request(stack: Day2Stack) -> None:
    before = stack.keys("web")
    with Load(stack.uri("web"), before["secondary_key"], SAMPLE, concurrency=4) as load:
        rotated = stack.rotate("web", "--key", "primary", "--yes")
    assert "endpoint web: primary key rotated; the secondary key is unchanged" in rotated.stdout
    assert load.requests > 50 and load.failures == [], (load.requests, load.failures[:10])
    after = stack.keys("web")
    assert after["secondary_key"] == before["secondary_key"]
    assert after["primary_key"] != before["primary_key"]
    assert stack.call("web", before["primary_key"]).status_code == 401
    assert stack.call("web", after["primary_key"]).status_code == 200
    assert stack.call("web", after["secondary_key"]).status_code == 200
    # The token endpoint's keys were not touched, a second preview has nothing to do, and the
    # rotation is no drift.
    assert stack.cli("preview", "--detailed-exitcode", check=False).returncode == 0
    assert stack.cli("drift", check=False).returncode == 0


def test_rotation_is_refused_for_an_endpoint_that_is_not_declared(stack: Day2Stack) -> None:
    refused = stack.rotate("nope", "--key", "secondary", "--yes", check=False)
    assert refused.returncode == 1
    assert "no endpoint 'nope' in the stack; it has: web, tok" in refused.stderr


# --- tokens ----------------------------------------------------------------------------------------


def test_a_token_from_modelplane_token_opens_the_token_endpoint(stack: Day2Stack) -> None:
    printed = json.loads(stack.cli("token", "tok").stdout)
    assert printed["tokenType"] == "Bearer"
    assert printed["expiryTimeUtc"] - time.time() == pytest.approx(3600, abs=60)
    assert printed["refreshAfterTimeUtc"] < printed["expiryTimeUtc"]
    answer = stack.call("tok", printed["accessToken"])
    assert answer.status_code == 200 and answer.json()[0] == pytest.approx(6039.66, rel=1e-3)
    invoked = stack.cli("invoke", "tok", "--data", json.dumps(SAMPLE))
    assert json.loads(invoked.stdout)[0] == pytest.approx(6039.66, rel=1e-3)


def test_the_token_endpoint_refuses_keys_expired_and_tampered_tokens(stack: Day2Stack) -> None:
    keys = stack.keys("tok")
    token = mint("tok", keys["primary_key"])["accessToken"]
    header, _claims, signature = token.split(".")
    claims = {**jwt.decode(token, options={"verify_signature": False}), "aud": "web"}
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    expired = mint("tok", keys["primary_key"], lifetime_s=60, now=time.time() - 600)["accessToken"]
    refusals = {
        "key": stack.call("tok", keys["primary_key"]),
        "none": stack.call("tok", None),
        "tampered": stack.call("tok", f"{header}.{forged}.{signature}"),
        "expired": stack.call("tok", expired),
        "other endpoint": stack.call("tok", mint("web", keys["primary_key"])["accessToken"]),
    }
    assert {why: r.status_code for why, r in refusals.items()} == dict.fromkeys(refusals, 401)
    assert "expired" in refusals["expired"].json()["error"]
    assert "a valid token is required" in refusals["tampered"].json()["error"]


def test_a_key_endpoint_gives_no_token(stack: Day2Stack) -> None:
    refused = stack.cli("token", "web", check=False)
    assert refused.returncode == 1 and "takes keys, not tokens" in refused.stderr


# --- metrics ---------------------------------------------------------------------------------------


def _container_address(stack: Day2Stack, endpoint: str) -> str:
    labels = [f"modelplane.stack={stack.name}", f"modelplane.endpoint={endpoint}", "modelplane.deployment=default"]
    (container,) = docker.from_env().containers.list(filters={"label": labels})
    (network,) = container.attrs["NetworkSettings"]["Networks"].values()
    return str(network["IPAddress"])


def _samples(text: str, name: str) -> dict[str, float]:
    """{labels: value} of one metric in Prometheus's text format."""
    found = re.findall(rf"^{name}(\{{[^}}]*\}})? (\S+)$", text, re.MULTILINE)
    return {labels: float(value) for labels, value in found}


def test_scoring_metrics_count_requests_by_status_on_their_own_port(stack: Day2Stack) -> None:
    metrics_uri = f"http://{_container_address(stack, 'web')}:{METRICS_PORT}/metrics"
    before = requests.get(metrics_uri, timeout=10).text  # no key: Prometheus scrapes it as is
    key = stack.keys("web")["primary_key"]
    for _ in range(20):
        assert stack.call("web", key).status_code == 200
    for _ in range(3):
        assert stack.call("web", "wrong").status_code == 401
    after = requests.get(metrics_uri, timeout=10).text
    version = json.loads(stack.cli("outputs").stdout)["models"]["regression"]["version"]
    model = f'model_name="regression",model_version="{version}"'
    ok, refused = f'code="200",{model}', f'code="401",{model}'
    counted = {
        labels: _samples(after, "modelplane_requests_total").get("{" + labels + "}", 0)
        - _samples(before, "modelplane_requests_total").get("{" + labels + "}", 0)
        for labels in (ok, refused)
    }
    assert counted == {ok: 20, refused: 3}
    latency = _samples(after, "modelplane_request_duration_seconds_count")
    assert latency["{" + model + "}"] >= 23
    assert "{" + model + "}" in _samples(after, "modelplane_requests_in_flight")


# --- profile ---------------------------------------------------------------------------------------


def _profiled(stack: Day2Stack, endpoint: str, target_rps: float) -> dict[str, Any]:
    result = stack.cli(
        "profile",
        endpoint,
        "--concurrency",
        "1,4",
        "--seconds",
        "4",
        "--target-rps",
        f"{target_rps:g}",
        "--format",
        "json",
    )
    return dict(json.loads(result.stdout))


def test_profile_recommendation_moves_with_a_heavier_model(stack: Day2Stack) -> None:
    light = _profiled(stack, "web", 100)
    # The rate one replica of the light model serves, measured on this machine (a fixed rate is one that a
    # fast machine serves with one replica of either).
    one_light_replica = max(level["requests_per_second"] for level in light["levels"])
    heavy = _profiled(stack, "heavy", one_light_replica)
    for measured in (light, heavy):
        assert [level["concurrency"] for level in measured["levels"]] == [1, 4]
        assert all(level["errors"] == 0 and level["requests"] > 0 for level in measured["levels"])
        assert all(level["cpu_cores"] > 0 and level["memory_mb"] > 0 for level in measured["levels"])
    advice = {name: measured["recommendation"] for name, measured in (("light", light), ("heavy", heavy))}
    # 300 MB more per worker, and a fifth of headroom on top.
    assert advice["heavy"]["memory_gb"] >= advice["light"]["memory_gb"] + 0.3, advice
    # Slower answers: more replicas for the rate one light replica serves.
    assert heavy["levels"][0]["latency_p50_ms"] > light["levels"][0]["latency_p50_ms"] + 5
    assert advice["heavy"]["replicas"] >= 2, (one_light_replica, advice)


def test_profile_names_what_it_cannot_measure(stack: Day2Stack) -> None:
    refused = stack.cli("profile", "nope", check=False)
    assert refused.returncode == 1 and "no endpoint 'nope'" in refused.stderr


# --- failures that explain themselves --------------------------------------------------------------


def _failing_stack(tmp_path: Path, endpoints: str, **replaced: str) -> tuple[Path, dict[str, str]]:
    name = f"fail{free_port()}"
    file = _project(tmp_path, name, endpoints, **replaced)
    return file, _engine_env(tmp_path)


def _failed_up(file: Path, env: dict[str, str]) -> str:
    """What a failed `up` printed (both streams); the stack is destroyed after."""
    try:
        result = modelplane("up", file, env, "--yes")
        assert result.returncode == 1, result.stdout[-3000:]
        return result.stdout + result.stderr
    finally:
        modelplane("destroy", file, env, "--yes")
        (PROJECT_ROOT / f"Pulumi.{file.stem}.yaml").unlink(missing_ok=True)


def test_a_wrong_model_path_in_the_entry_script_fails_up_with_the_error_and_log_lines(tmp_path: Path) -> None:
    score = (EXAMPLE / "score.py").read_text().replace('"sklearn_regression_model.pkl"', '"no_such_model.pkl"')
    port = free_port()
    file, env = _failing_stack(tmp_path, f"  web: {{image: scorer, port: {port}}}\n", score=score)
    output = _failed_up(file, env)
    assert re.search(r"modelplane-fail\d+-web-default\S* did not become ready: its process exited", output), output
    assert "No such file or directory" in output and "no_such_model.pkl" in output
    assert re.search(r"its last \d+ log lines:", output), output[-3000:]


def test_a_requirement_that_does_not_install_fails_up_with_the_step_and_pips_error(tmp_path: Path) -> None:
    conda = (
        (EXAMPLE / "myenv.yml")
        .read_text()
        .replace("  - pip:\n", "  - pip:\n      - modelplane-no-such-package==9.9.9\n")
    )
    assert "modelplane-no-such-package" in conda
    port = free_port()
    file, env = _failing_stack(tmp_path, f"  web: {{image: scorer, port: {port}}}\n", conda=conda)
    output = _failed_up(file, env)
    assert "pip install -r /opt/modelplane/requirements.txt" in output, output[-3000:]
    assert "No matching distribution found for modelplane-no-such-package==9.9.9" in output, output[-3000:]


def test_a_port_another_process_holds_fails_up_naming_the_endpoint_and_port(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        file, env = _failing_stack(tmp_path, f"  web: {{image: scorer, port: {port}}}\n")
        output = _failed_up(file, env)
    assert re.search(r"router modelplane-fail\d+-web could not start", output), output[-3000:]
    assert f"127.0.0.1:{port}" in output and "address already in use" in output


def test_no_key_is_printed_by_day2_commands(stack: Day2Stack) -> None:
    keys = [*stack.keys("web").values(), *stack.keys("tok").values()]
    printed = "".join(stack.transcript)
    assert "primary key rotated" in printed
    assert [key for key in keys if key in printed] == []
