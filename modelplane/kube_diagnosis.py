"""Why a roll-out failed: the stack's pods that are not Ready on a cluster reached by kubeconfig, each
with its container's state and the last lines it logged (its previous run's, when it crashed).

When `up` fails because a Deployment never became ready (an `init()` that raises, an image that
cannot be pulled), Pulumi says only that the roll-out timed out; these lines say which pod, why,
and what the scoring server printed. Read straight from the API server with the kubeconfig's own
credentials (token or client certificate), so no Kubernetes client is needed.
"""

from __future__ import annotations

import base64
import contextlib
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import requests
import yaml

from modelplane.constants import DEPLOYMENT_LABEL, MANAGED_BY_LABEL
from modelplane.log_tail import halted, telling_tail

LOG_LINES = 15
LOG_SCAN = 400  # lines read, to find the ones before gunicorn's shutdown (modelplane.log_tail)
TIMEOUT = 10
CRASH_PATIENCE = 20.0
# How the kubelet's log endpoint begins its answer when a container's log file is gone.
KUBELET_LOG_GONE = ("unable to retrieve container logs", "failed to try resolving symlinks")


@dataclass(frozen=True)
class PodFailure:
    namespace: str
    pod: str
    endpoint: str
    state: str
    restarts: int
    log_tail: tuple[str, ...]
    deployment: str | None = None
    """The endpoint's named deployment the pod serves (None: the endpoint's only Deployment)."""

    def lines(self) -> list[str]:
        serves = f", deployment '{self.deployment}'" if self.deployment else ""
        where = f"pod {self.namespace}/{self.pod} (endpoint '{self.endpoint}'{serves})"
        head = f"{where}: {self.state}, restarted {self.restarts} times"
        return [head, *(f"  | {line}" for line in self.log_tail)]


@dataclass(frozen=True)
class ApiAccess:
    """What a kubeconfig's current context gives: the server, how to trust it and how to log in."""

    server: str
    ca_data: bytes | None
    token: str | None
    client_cert: bytes | None
    client_key: bytes | None


def read_kubeconfig(path: Path) -> ApiAccess:
    config = yaml.safe_load(path.read_text()) or {}
    contexts = {c["name"]: c["context"] for c in config.get("contexts") or []}
    context = contexts.get(config.get("current-context"), next(iter(contexts.values()), {}))
    cluster = _named(config.get("clusters"), context.get("cluster"), "cluster")
    user = _named(config.get("users"), context.get("user"), "user")
    return ApiAccess(
        server=str(cluster.get("server", "")),
        ca_data=_data(cluster, "certificate-authority"),
        token=user.get("token"),
        client_cert=_data(user, "client-certificate"),
        client_key=_data(user, "client-key"),
    )


def _named(items: Any, name: Any, key: str) -> dict[str, Any]:
    for item in items or []:
        if item.get("name") == name:
            return dict(item.get(key) or {})
    return {}


def _data(section: dict[str, Any], field: str) -> bytes | None:
    if section.get(f"{field}-data"):
        return base64.b64decode(section[f"{field}-data"])
    if section.get(field):
        return Path(section[field]).read_bytes()
    return None


@contextlib.contextmanager
def session_for(access: ApiAccess) -> Iterator[requests.Session]:
    """A session that trusts the cluster's CA and logs in as the kubeconfig's user."""
    with tempfile.TemporaryDirectory() as folder:
        session = requests.Session()
        # The kubeconfig says whom to trust and how to get there: no CA bundle or proxy from the environment.
        session.trust_env = False
        if access.ca_data:
            (Path(folder) / "ca.crt").write_bytes(access.ca_data)
            session.verify = str(Path(folder) / "ca.crt")
        if access.token:
            session.headers["Authorization"] = f"Bearer {access.token}"
        if access.client_cert and access.client_key:
            (Path(folder) / "client.crt").write_bytes(access.client_cert)
            (Path(folder) / "client.key").write_bytes(access.client_key)
            session.cert = (str(Path(folder) / "client.crt"), str(Path(folder) / "client.key"))
        yield session


def _managed_pods(session: requests.Session, server: str) -> list[dict[str, Any]]:
    """The stack's pods, in every namespace."""
    url = f"{server}/api/v1/pods"
    response = session.get(url, params={"labelSelector": f"{MANAGED_BY_LABEL}=modelplane"}, timeout=TIMEOUT)
    response.raise_for_status()
    items: list[dict[str, Any]] = response.json().get("items", [])
    return items


def failing_pods(kubeconfig: Path) -> list[PodFailure]:
    """The stack's pods (every namespace) whose containers are not all ready, with their logs."""
    access = read_kubeconfig(kubeconfig)
    with session_for(access) as session:
        return [
            _failure(session, access.server, pod) for pod in _managed_pods(session, access.server) if not pod_ready(pod)
        ]


def crash_looping_pods(kubeconfig: Path, since: datetime, crashes: int) -> list[str]:
    """The stack's pods on the cluster that `crash_looping` picks."""
    access = read_kubeconfig(kubeconfig)
    with session_for(access) as session:
        return crash_looping(_managed_pods(session, access.server), since, crashes)


def crash_looping(pods: list[dict[str, Any]], since: datetime, crashes: int) -> list[str]:
    """`namespace/name` of the pods created at or after `since` whose container the kubelet holds
    back after `crashes` crashes or more (CrashLoopBackOff); pods being deleted are not counted."""
    return [
        f"{pod['metadata']['namespace']}/{pod['metadata']['name']}"
        for pod in pods
        if _created(pod) >= since and _crash_looping(pod, crashes)
    ]


def _created(pod: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(pod["metadata"]["creationTimestamp"].replace("Z", "+00:00"))


def _crash_looping(pod: dict[str, Any], crashes: int) -> bool:
    if pod["metadata"].get("deletionTimestamp"):
        return False  # leaving: its crashes no longer matter
    return any(
        (status.get("state") or {}).get("waiting", {}).get("reason") == "CrashLoopBackOff"
        and int(status.get("restartCount", 0)) >= crashes
        for status in pod.get("status", {}).get("containerStatuses") or []
    )


def pod_ready(pod: dict[str, Any]) -> bool:
    if pod.get("metadata", {}).get("deletionTimestamp"):
        return True  # leaving: not a failure
    statuses = pod.get("status", {}).get("containerStatuses") or []
    return bool(statuses) and all(status.get("ready") for status in statuses)


def _failure(session: requests.Session, server: str, pod: dict[str, Any]) -> PodFailure:
    metadata = pod["metadata"]
    status = (pod.get("status", {}).get("containerStatuses") or [{}])[0]
    restarts = int(status.get("restartCount", 0))
    path = f"{server}/api/v1/namespaces/{metadata['namespace']}/pods/{metadata['name']}/log"
    log = _log_tail(session, path, restarts)
    labels = metadata.get("labels", {})
    return PodFailure(
        namespace=metadata["namespace"],
        pod=metadata["name"],
        endpoint=labels.get("app.kubernetes.io/name", "?"),
        state=container_state(pod, status),
        restarts=restarts,
        log_tail=tuple(log),
        deployment=labels.get(DEPLOYMENT_LABEL),
    )


def _log_tail(session: requests.Session, path: str, restarts: int) -> list[str]:
    """The lines that say why: the previous run's when it crashed, else the current run's (the
    kubelet may already have dropped the previous log as the container restarts again)."""
    if restarts:
        log, reason = _read_log(session, path, "true")
        if log is not None:
            return telling_tail(log, LOG_LINES).splitlines()
    log, reason = _current_run_log(session, path, CRASH_PATIENCE if restarts else 0.0)
    return telling_tail(log, LOG_LINES).splitlines() if log is not None else [reason]


def _current_run_log(session: requests.Session, path: str, patience: float) -> tuple[str | None, str]:
    """The current run's log; a container that crashed before gets `patience` seconds to reach the
    same crash, whose lines say why (a restarted scoring server takes seconds to call init())."""
    deadline = time.monotonic() + patience
    while True:
        log, reason = _read_log(session, path, "false")
        if log is None or halted(log) or time.monotonic() >= deadline:
            return log, reason
        time.sleep(1)


def _read_log(session: requests.Session, path: str, previous: str) -> tuple[str | None, str]:
    """One run's log, or None and why not. The kubelet answers a log it no longer has with 200 and
    a one-line message in place of the log, or with an error status."""
    params: dict[str, Any] = {"tailLines": LOG_SCAN, "previous": previous}
    try:
        response = session.get(path, params=params, timeout=TIMEOUT)
    except requests.RequestException as error:
        return None, f"(no log: {error})"
    if not response.ok:
        return None, f"(no log: HTTP {response.status_code}: {response.text[:300]})"
    if response.text.startswith(KUBELET_LOG_GONE):
        return None, f"(no log: {response.text.strip()[:300]})"
    return response.text, ""


def container_state(pod: dict[str, Any], status: dict[str, Any]) -> str:
    """`CrashLoopBackOff (exit code 3)`, `ImagePullBackOff: …`, `not ready`, or the pod's phase."""
    state = status.get("state") or {}
    last = (status.get("lastState") or {}).get("terminated") or {}
    if "waiting" in state:
        waiting = state["waiting"]
        exit_code = f" (last exit code {last['exitCode']})" if "exitCode" in last else ""
        message = f": {waiting['message']}" if waiting.get("message") else ""
        return f"{waiting.get('reason', 'waiting')}{exit_code}{message}"
    if "running" in state:
        return "running, not ready (its readiness probe fails)"
    return str(pod.get("status", {}).get("phase", "unknown"))
