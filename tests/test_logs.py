"""`modelplane logs` on local endpoints: every container of the endpoint, named, in order or as the
lines come; and what it says where it cannot read the logs."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from modelplane.base_images import DEFAULT_BASE
from modelplane.logs import LogsError, local_logs, logs
from modelplane.spec import load_stack

pytestmark = pytest.mark.docker
ROOT = Path(__file__).resolve().parent.parent
PRINTER = "import time\nfor i in range(3):\n    print('{name} line', i, flush=True)\n    time.sleep(0.3)\n"


@pytest.fixture
def endpoint() -> Iterator[str]:
    """A stack `logs-test` whose endpoint has two deployments and a router, each printing three lines."""
    client = docker.from_env()
    name = f"logs-{secrets.token_hex(3)}"
    started = []
    for deployment in ("blue", "green", None):
        labels = {"modelplane.stack": "logs-test", "modelplane.endpoint": name}
        if deployment is not None:
            labels["modelplane.deployment"] = deployment
        script = PRINTER.replace("{name}", deployment or "router")
        started.append(client.containers.run(DEFAULT_BASE.image, ["python3", "-c", script], labels=labels, detach=True))
    yield name
    for container in started:
        container.remove(force=True)


def test_every_container_is_read_and_named(endpoint: str) -> None:
    lines: list[str] = []
    local_logs("logs-test", endpoint, None, follow=True, emit=lines.append)  # ends when they exit
    assert sorted(lines) == sorted(f"[{who}] {who} line {i}" for who in ("blue", "green", "router") for i in range(3))
    lines.clear()
    local_logs("logs-test", endpoint, 1, follow=False, emit=lines.append)
    assert lines == ["[blue] blue line 2", "[green] green line 2", "[router] router line 2"]


def test_an_endpoint_without_containers_says_to_deploy_it() -> None:
    with pytest.raises(LogsError, match=r"has no container here \(run `modelplane up`\)"):
        local_logs("logs-test", "nothing-here", None, follow=False, emit=print)


def test_an_azure_endpoint_points_at_azures_own_logs() -> None:
    spec = load_stack(ROOT / "stacks" / "dev.yaml")
    with pytest.raises(LogsError, match=r"runs on Azure \(aci\): read its logs with `az container logs"):
        logs(spec, "regression-aci", None, False, print)
