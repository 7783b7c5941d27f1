"""A scoring process killed by the kernel for memory (the container's own limit, `memory_gb`): the
request that asked too much fails, the scoring server boots a new worker, the endpoint answers again
within seconds, and `drift` reports nothing (what runs is what was declared). Through the real CLI,
engine, Docker and AML inference server; an entry script that allocates what the request asks."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import pytest
import requests

from modelplane.engine import PROJECT_ROOT
from tests.conftest import free_port, modelplane, one_endpoint_stack, succeeded

pytestmark = [pytest.mark.engine, pytest.mark.docker]

HUNGRY_SCORE = """import json


def init():
    pass


def run(raw_data):
    wanted = json.loads(raw_data).get("allocate_mb", 0)
    return len(b"x" * (wanted * 1024 * 1024))  # written, so the pages count against the limit
"""
LIMIT_GB = 0.5
RECOVERY_S = 60


@dataclass
class Hungry:
    uri: str
    key: str = field(repr=False)
    container: Any

    def ask(self, megabytes: int) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.key}"}
        return requests.post(self.uri, json={"allocate_mb": megabytes}, headers=headers, timeout=60)


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Hungry, Path, dict[str, str]]]:
    port = free_port()
    folder = tmp_path_factory.mktemp("oom")
    stack, env = one_endpoint_stack(folder, f"oom{port}", f"port: {port}, memory_gb: {LIMIT_GB}")
    (folder / "example" / "score.py").write_text(HUNGRY_SCORE)
    succeeded(modelplane("up", stack, env, "--yes"))
    outputs = json.loads(succeeded(modelplane("outputs", stack, env, "--show-secrets")).stdout)
    labels = [f"modelplane.stack={stack.stem}", "modelplane.endpoint=web", "modelplane.deployment=default"]
    (container,) = docker.from_env().containers.list(filters={"label": labels})
    uri = f"http://127.0.0.1:{port}/score"
    yield Hungry(uri, outputs["endpoint_keys"]["web"]["primary_key"], container), stack, env
    modelplane("destroy", stack, env, "--yes")
    (PROJECT_ROOT / f"Pulumi.{stack.stem}.yaml").unlink(missing_ok=True)


def test_a_scoring_process_killed_for_memory_is_replaced_and_drift_stays_quiet(
    deployed: tuple[Hungry, Path, dict[str, str]],
) -> None:
    hungry, stack, env = deployed
    assert hungry.ask(16).status_code == 200
    assert hungry.container.attrs["HostConfig"]["Memory"] == int(LIMIT_GB * 1024) * 2**20

    too_much = hungry.ask(int(LIMIT_GB * 1024 * 3))  # over the limit and its equal share of swap
    assert too_much.status_code >= 500, too_much.text
    killed_at = time.monotonic()
    while hungry.ask(16).status_code != 200:
        assert time.monotonic() - killed_at < RECOVERY_S, f"not answering {RECOVERY_S} s after the kill"
        time.sleep(0.5)
    recovered_s = time.monotonic() - killed_at
    hungry.container.reload()
    assert hungry.container.attrs["RestartCount"] == 0, "the container restarted: the server itself replaces its worker"
    log = hungry.container.logs().decode(errors="replace")
    assert "was sent SIGKILL! Perhaps out of memory?" in log, log[-3000:]
    told = [line for line in log.splitlines() if "gunicorn -" in line]
    print(f"answering again {recovered_s:.1f} s after the kill; the log says: {told}")

    drift = modelplane("drift", stack, env)
    assert drift.returncode == 0, drift.stdout[-2000:] + drift.stderr[-2000:]
