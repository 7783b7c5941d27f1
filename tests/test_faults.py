"""Faults under a deployed one-endpoint local stack, through the real CLI, engine, Docker and AML
inference server, in this order:

- a scoring process killed by the kernel for memory (the container's own limit, `memory_gb`; an entry
  script that allocates what the request asks): the request fails, the server boots a new worker, the
  endpoint keeps answering, the container log says why, and `drift` reports nothing;
- `up` and `destroy` killed with SIGKILL (the whole process group: CLI, engine, language host and
  providers, as a cancelled CI job or the OOM killer leaves them), then run again: the next run removes
  the dead run's lock, clears its pending operations, removes what it created that the state does not
  know, and converges, with no orphan containers, images or networks. The kill points are the ones
  that leave most behind (a scoring container being created, a stack half destroyed);
  `make bench BENCH_ARGS="--only crashes"` kills at random points, ten times."""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import pytest
import requests

from modelplane.engine import PROJECT_ROOT
from tests.conftest import (
    EXAMPLE,
    free_port,
    kill_when,
    latest_state,
    modelplane,
    one_endpoint_stack,
    started_alone,
    succeeded,
)

pytestmark = [pytest.mark.engine, pytest.mark.docker]

SAMPLE = json.loads((EXAMPLE / "sample-request.json").read_text())
HUNGRY_SCORE = """import json


def init():
    pass


def run(raw_data):
    wanted = json.loads(raw_data).get("allocate_mb", 0)
    return len(b"x" * (wanted * 1024 * 1024))  # written, so the pages count against the limit
"""
LIMIT_GB = 0.5


@dataclass
class CrashStack:
    folder: Path
    port: int
    env: dict[str, str] = field(repr=False)

    @property
    def name(self) -> str:
        return f"crash{self.port}"

    @property
    def file(self) -> Path:
        return self.folder / f"{self.name}.yaml"

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return modelplane(args[0], self.file, self.env, *args[1:])

    def start(self, command: str) -> subprocess.Popen[bytes]:
        return started_alone(command, self.file, self.env)

    def checkpoint(self) -> dict[str, Any]:
        return latest_state(self.folder / "work" / "state", self.name)

    def containers(self) -> list[Any]:
        return list(docker.from_env().containers.list(all=True, filters={"label": f"modelplane.stack={self.name}"}))

    def networks(self) -> set[str]:
        return {n.id for n in docker.from_env().networks.list(filters={"label": f"modelplane.stack={self.name}"})}

    def images(self) -> set[str]:
        tags = (tag for image in docker.from_env().images.list() for tag in image.tags)
        return {tag for tag in tags if tag.startswith(f"modelplane/{self.name}-")}

    def key(self) -> str:
        outputs = json.loads(succeeded(self.cli("outputs", "--show-secrets")).stdout)
        return str(outputs["endpoint_keys"]["web"]["primary_key"])

    def ask(self, body: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.key()}"}
        return requests.post(f"http://127.0.0.1:{self.port}/score", json=body, headers=headers, timeout=60)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CrashStack]:
    folder, port = tmp_path_factory.mktemp("crash"), free_port()
    _, env = one_endpoint_stack(folder, f"crash{port}", f"port: {port}, memory_gb: {LIMIT_GB}")
    (folder / "example" / "score.py").write_text(HUNGRY_SCORE)
    crash = CrashStack(folder, port, env)
    succeeded(crash.cli("up", "--yes"))
    yield crash
    crash.cli("destroy", "--yes")
    (PROJECT_ROOT / f"Pulumi.{crash.name}.yaml").unlink(missing_ok=True)


def assert_converged(stack: CrashStack) -> None:
    """No pending operations; every container, image and network of the stack is one the state knows."""
    latest = stack.checkpoint()
    assert not latest.get("pending_operations"), latest.get("pending_operations")
    ids = {str(r.get("id")) for r in latest.get("resources") or []}
    assert {c.id for c in stack.containers()} <= ids, [c.name for c in stack.containers() if c.id not in ids]
    assert stack.images() <= ids, stack.images() - ids
    assert stack.networks() <= ids, stack.networks() - ids


def test_a_scoring_process_killed_for_memory_is_replaced_and_drift_stays_quiet(stack: CrashStack) -> None:
    labels = [f"modelplane.stack={stack.name}", "modelplane.deployment=default"]
    (container,) = docker.from_env().containers.list(filters={"label": labels})
    assert container.attrs["HostConfig"]["Memory"] == int(LIMIT_GB * 1024) * 2**20
    assert stack.ask({"allocate_mb": 16}).status_code == 200

    too_much = stack.ask({"allocate_mb": int(LIMIT_GB * 1024 * 3)})  # over the limit and its equal share of swap
    assert too_much.status_code >= 500, too_much.text
    killed_at = time.monotonic()
    while stack.ask({"allocate_mb": 16}).status_code != 200:
        assert time.monotonic() - killed_at < 60, "not answering 60 s after the kill"
        time.sleep(0.5)
    container.reload()
    assert container.attrs["RestartCount"] == 0, "the container restarted: the server itself replaces its worker"
    log = container.logs().decode(errors="replace")
    assert "was sent SIGKILL! Perhaps out of memory?" in log, log[-3000:]
    drift = stack.cli("drift")
    assert drift.returncode == 0, drift.stdout[-2000:] + drift.stderr[-2000:]


def test_up_killed_while_creating_a_container_is_recovered_by_the_next_up(stack: CrashStack) -> None:
    before = {c.id for c in stack.containers()}
    with (stack.folder / "example" / "score.py").open("a") as score:
        score.write("# a new version: a new image and a new scoring container\n")
    fresh = re.compile(rf"modelplane-{stack.name}-web-default-[0-9a-f]{{6}}")
    run = stack.start("up")
    kill_when(run, lambda: any(c.id not in before and fresh.fullmatch(c.name) for c in stack.containers()))
    (orphan,) = [c.name for c in stack.containers() if c.id not in before and fresh.fullmatch(c.name)]
    assert stack.checkpoint().get("pending_operations"), "the kill left nothing pending"

    result = stack.cli("up", "--yes")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert "removed the lock of a run that was killed" in output, output[-3000:]
    assert f"the last run on stack {stack.name} was killed while creating endpoint-web-default" in output
    assert f"removed what it had created that the state does not know: {orphan}" in output
    assert_converged(stack)
    assert "no changes" in succeeded(stack.cli("up", "--yes")).stdout
    answer = stack.ask(SAMPLE)
    assert answer.status_code == 200, answer.text


def test_destroy_killed_half_way_is_finished_by_the_next_destroy(stack: CrashStack) -> None:
    running = len(stack.containers())
    run = stack.start("destroy")
    kill_when(run, lambda: len(stack.containers()) < running)
    assert stack.containers() or stack.images(), "the destroy had finished"

    result = stack.cli("destroy", "--yes")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert "removed the lock of a run that was killed" in output, output[-3000:]
    assert not stack.containers() and not stack.images() and not stack.networks()
    latest = stack.checkpoint()
    assert not latest.get("pending_operations") and not latest.get("resources"), latest
