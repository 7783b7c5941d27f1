"""The scoring runtime: the real AML inference server with the seed's score.py behind our key gate."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from modelplane.dockerfile import conda_to_requirements
from modelplane.engine import PROJECT_ROOT
from modelplane.runtime.gate import KeyGate
from modelplane.runtime.serve import worker_count
from tests.conftest import free_port

EXAMPLE = PROJECT_ROOT / "examples" / "sklearn-regression"
PRIMARY, SECONDARY = "primary-test-key", "secondary-test-key"


SERVER_LOGS: dict[str, Path] = {}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """gunicorn + azureml-inference-server-http + KeyGate, as the image runs them."""
    runtime_path = tmp_path_factory.mktemp("runtime")
    (runtime_path / "modelplane_runtime").symlink_to(PROJECT_ROOT / "modelplane" / "runtime")
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(runtime_path),
        "AZUREML_ENTRY_SCRIPT": str(EXAMPLE / "score.py"),
        "AZUREML_MODEL_DIR": str(EXAMPLE / "model"),
        "MODELPLANE_PORT": str(port),
        "MODELPLANE_PRIMARY_KEY": PRIMARY,
        "MODELPLANE_SECONDARY_KEY": SECONDARY,
        "MODELPLANE_MAX_BODY_BYTES": "4096",
        "MODELPLANE_PATH_PREFIX": "/api/v1/service/web",
        "MODELPLANE_WORKERS": "2",
    }
    log = runtime_path / "server.log"
    SERVER_LOGS[f"http://127.0.0.1:{port}"] = log
    with log.open("w") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "modelplane_runtime.serve"], env=env, stdout=sink, stderr=subprocess.STDOUT
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{base}/ready", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                time.sleep(0.2)
        else:
            raise AssertionError(f"server did not start:\n{log.read_text()[-3000:]}")
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)


def score(base: str, body: bytes | str, key: str | None = PRIMARY, path: str = "/score") -> requests.Response:
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    return requests.post(f"{base}{path}", data=body, headers=headers, timeout=30)


def test_each_request_is_logged_once(server: str) -> None:
    # The AML server's own line ("POST /score 200 1.234ms 20"); gunicorn's access log would be a second.
    def scored_lines() -> int:
        return sum("POST /score" in line for line in SERVER_LOGS[server].read_text().splitlines())

    before = scored_lines()
    for _ in range(3):
        assert score(server, '{"data": [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]]}').status_code == 200
    deadline = time.monotonic() + 5
    while scored_lines() < before + 3 and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.3)
    assert scored_lines() - before == 3, SERVER_LOGS[server].read_text()[-2000:]


def test_scores_with_either_key(server: str) -> None:
    for key in (PRIMARY, SECONDARY):
        response = score(server, '{"data": [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]]}', key)
        assert response.status_code == 200
        assert response.json()[0] == pytest.approx(6039.66, rel=1e-3)


@pytest.mark.parametrize("header", [None, "wrong-key", f"{PRIMARY}x", PRIMARY[:-1]])
def test_without_a_valid_key_401(server: str, header: str | None) -> None:
    response = score(server, '{"data": [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]]}', header)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_basic_scheme_is_not_accepted(server: str) -> None:
    response = requests.post(f"{server}/score", data="{}", headers={"Authorization": f"Basic {PRIMARY}"}, timeout=10)
    assert response.status_code == 401


def test_health_ready_and_swagger_need_no_key(server: str) -> None:
    assert requests.get(f"{server}/", timeout=10).status_code == 200
    assert requests.get(f"{server}/ready", timeout=10).status_code == 200
    assert requests.get(f"{server}/healthz", timeout=10).status_code == 200
    swagger = requests.get(f"{server}/swagger.json", timeout=10).json()
    assert swagger["definitions"]["ServiceInput"]["example"] == {"data": [[10, 9, 8, 7, 6, 5, 4, 3, 2, 1]]}


def test_malformed_json_400(server: str) -> None:
    response = score(server, '{"data": [[1, 2')
    assert response.status_code == 400
    assert "could not be decoded as JSON" in response.text


def test_oversized_chunked_body_413(server: str) -> None:
    chunks = (b'{"data": [' + b"[1,2,3,4,5,6,7,8,9,10]," * 20 for _ in range(20))
    response = requests.post(
        f"{server}/score",
        data=chunks,
        timeout=30,
        headers={"Authorization": f"Bearer {PRIMARY}", "Content-Type": "application/json"},
    )
    assert response.status_code == 413


def test_oversized_body_413(server: str) -> None:
    response = score(server, '{"data": [' + ",".join(["[1,2,3,4,5,6,7,8,9,10]"] * 300) + "]}")
    assert response.status_code == 413


def test_ingress_path_prefix_is_stripped(server: str) -> None:
    response = score(server, '{"data": [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]]}', path="/api/v1/service/web/score")
    assert response.status_code == 200


def test_gate_compares_every_key_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    compared: list[tuple[bytes, bytes]] = []

    def recording_compare(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return a == b

    monkeypatch.setattr("modelplane.runtime.gate.hmac.compare_digest", recording_compare)
    gate = KeyGate(lambda environ, start: [b""], [PRIMARY, SECONDARY])
    assert gate.authorised(f"Bearer {PRIMARY}")
    # Both keys are compared even though the first matched.
    assert [b for _, b in compared] == [PRIMARY.encode(), SECONDARY.encode()]


def test_gate_without_keys_lets_requests_through() -> None:
    seen: list[str] = []

    def app(environ: dict[str, Any], start: Any) -> list[bytes]:
        seen.append(environ["PATH_INFO"])
        start("200 OK", [])
        return [b"ok"]

    gate = KeyGate(app, ["", ""])
    body = gate(
        {"PATH_INFO": "/score", "REQUEST_METHOD": "POST", "CONTENT_LENGTH": "2", "wsgi.input": io.BytesIO(b"{}")},
        lambda *a: None,
    )
    assert list(body) == [b"ok"] and seen == ["/score"]


@pytest.mark.parametrize(("cpus", "workers"), [(0.5, 1), (1, 1), (2, 2), (3.5, 4)])
def test_workers_follow_the_cpu_quota(cpus: float, workers: int) -> None:
    assert worker_count(cpus) == workers


def test_conda_environment_becomes_pip_requirements(tmp_path: Path) -> None:
    conda = tmp_path / "env.yml"
    conda.write_text(
        "dependencies:\n  - python=3.11\n  - pip\n  - scikit-learn=1.7.2\n  - conda-forge::numpy\n"
        "  - pip:\n      - joblib==1.5.2\n"
    )
    assert conda_to_requirements(conda) == ["scikit-learn==1.7.2", "numpy", "joblib==1.5.2"]
    assert conda_to_requirements(EXAMPLE / "myenv.yml")[0] == "scikit-learn==1.7.2"
