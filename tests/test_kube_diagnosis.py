"""A failed roll-out explained: the pods that are not Ready, their state and their last log lines."""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from modelplane.kube_diagnosis import (
    PodFailure,
    _log_tail,
    container_state,
    crash_looping,
    pod_ready,
    read_kubeconfig,
)


def pod(statuses: list[dict[str, Any]], deleting: bool = False) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": "regression-1", "namespace": "default"}
    if deleting:
        metadata["deletionTimestamp"] = "2026-12-01T00:00:00Z"
    return {"metadata": metadata, "status": {"phase": "Running", "containerStatuses": statuses}}


def test_a_crash_looping_container_says_why_and_its_exit_code() -> None:
    status = {
        "ready": False,
        "restartCount": 3,
        "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s restarting failed container"}},
        "lastState": {"terminated": {"exitCode": 3}},
    }
    assert not pod_ready(pod([status]))
    assert container_state(pod([status]), status) == (
        "CrashLoopBackOff (last exit code 3): back-off 40s restarting failed container"
    )


UPDATE_STARTED = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)


def backing_off(restarts: int, created: str = "2026-12-01T12:00:05Z", deleting: bool = False) -> dict[str, Any]:
    status = {"ready": False, "restartCount": restarts, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}
    crashing = pod([status], deleting)
    crashing["metadata"]["creationTimestamp"] = created
    return crashing


def test_a_new_pod_backing_off_after_two_crashes_is_crash_looping() -> None:
    assert crash_looping([backing_off(2)], UPDATE_STARTED, crashes=2) == ["default/regression-1"]
    assert crash_looping([backing_off(5, created="2026-12-01T12:00:00Z")], UPDATE_STARTED, crashes=2) == [
        "default/regression-1"
    ]


def test_one_crash_an_older_pod_a_leaving_pod_and_a_starting_one_are_not() -> None:
    starting = backing_off(0)
    starting["status"]["containerStatuses"][0]["state"] = {"waiting": {"reason": "ContainerCreating"}}
    not_crash_looping = [
        backing_off(1),
        backing_off(4, created="2026-12-01T11:59:59Z"),  # a previous update's
        backing_off(4, deleting=True),
        starting,
    ]
    assert crash_looping(not_crash_looping, UPDATE_STARTED, crashes=2) == []


def test_a_running_container_that_is_not_ready_names_its_readiness_probe() -> None:
    status = {"ready": False, "restartCount": 0, "state": {"running": {}}}
    assert container_state(pod([status]), status) == "running, not ready (its readiness probe fails)"


def test_ready_and_leaving_pods_are_not_failures() -> None:
    assert pod_ready(pod([{"ready": True}]))
    assert pod_ready(pod([{"ready": False}], deleting=True))


def test_the_failure_prints_the_pod_its_endpoint_and_log_lines() -> None:
    failure = PodFailure("default", "regression-1", "regression", "CrashLoopBackOff", 2, ("Traceback", "RuntimeError"))
    assert failure.lines() == [
        "pod default/regression-1 (endpoint 'regression'): CrashLoopBackOff, restarted 2 times",
        "  | Traceback",
        "  | RuntimeError",
    ]


def test_the_kubeconfig_current_context_gives_server_ca_and_token(tmp_path: Path) -> None:
    config = {
        "clusters": [
            {"name": "other", "cluster": {"server": "https://127.0.0.1:1"}},
            {
                "name": "local",
                "cluster": {
                    "server": "https://127.0.0.1:6443",
                    "certificate-authority-data": base64.b64encode(b"CA").decode(),
                },
            },
        ],
        "users": [{"name": "admin", "user": {"token": "t0ken"}}],
        "contexts": [{"name": "c", "context": {"cluster": "local", "user": "admin"}}],
        "current-context": "c",
    }
    (tmp_path / "kubeconfig").write_text(yaml.safe_dump(config))
    access = read_kubeconfig(tmp_path / "kubeconfig")
    assert (access.server, access.ca_data, access.token) == ("https://127.0.0.1:6443", b"CA", "t0ken")


STARTING = "Invoking user's init function\n"
CRASHED = STARTING + "RuntimeError: the model file is corrupt\nWorker failed to boot.\n"


@dataclass
class FakeLogs:
    """The API server's pod log endpoint: the previous run's log gone, the current run's as given in turn."""

    gone: Any
    current: list[str]
    asked: list[str] = field(default_factory=list)

    def get(self, _url: str, params: dict[str, Any], timeout: float) -> Any:
        self.asked.append(params["previous"])
        if params["previous"] == "true":
            return self.gone
        log = self.current.pop(0) if len(self.current) > 1 else self.current[0]
        return SimpleNamespace(ok=True, status_code=200, text=log)


GONE_ANSWERS = [
    SimpleNamespace(ok=False, status_code=400, text="failed to try resolving symlinks in path 1.log"),
    SimpleNamespace(ok=True, status_code=200, text="unable to retrieve container logs for containerd://11ef"),
]
LOG_URL = "https://api/v1/namespaces/default/pods/web-red-1/log"


@pytest.mark.parametrize("gone", GONE_ANSWERS, ids=["error status", "message in place of the log"])
def test_a_log_the_kubelet_dropped_falls_back_to_the_current_run(gone: Any) -> None:
    logs = FakeLogs(gone, [CRASHED])
    tail = _log_tail(logs, LOG_URL, restarts=2)  # type: ignore[arg-type]
    assert logs.asked == ["true", "false"]
    assert "RuntimeError: the model file is corrupt" in tail


def test_a_restarted_container_is_given_time_to_reach_its_crash(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(time, "sleep", lambda _seconds: None)
    logs = FakeLogs(GONE_ANSWERS[1], [STARTING, STARTING, CRASHED])
    tail = _log_tail(logs, LOG_URL, restarts=2)  # type: ignore[arg-type]
    assert logs.asked == ["true", "false", "false", "false"]
    assert "RuntimeError: the model file is corrupt" in tail


def test_a_container_that_never_crashed_shows_its_log_at_once() -> None:
    logs = FakeLogs(GONE_ANSWERS[1], [STARTING, CRASHED])
    assert _log_tail(logs, LOG_URL, restarts=0) == ["Invoking user's init function"]  # type: ignore[arg-type]
    assert logs.asked == ["false"]
