"""`modelplane logs ENDPOINT`: what an endpoint's scoring containers (and a local endpoint's router)
printed, each line prefixed with where it came from; `--follow` keeps streaming until interrupted.

Local endpoints: their containers on the Docker engine, found by the stack's and endpoint's labels.
Kubernetes endpoints on a cluster attached by kubeconfig: their pods' logs through the API server.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from modelplane.kube_diagnosis import TIMEOUT, read_kubeconfig, session_for
from modelplane.spec import AksEndpointSpec, LocalEndpointSpec, StackSpec

Emit = Callable[[str], None]
# Where Azure keeps the logs of what it runs.
AZURE_LOGS = {
    "aci": "`az container logs --resource-group GROUP --name ENDPOINT`",
    "aks": "`kubectl logs -l app.kubernetes.io/name=ENDPOINT` with the cluster's credentials",
    "managed": "`az ml online-deployment get-logs --endpoint-name ENDPOINT --name DEPLOYMENT`",
    "kubernetes_online": "`az ml online-deployment get-logs --endpoint-name ENDPOINT --name DEPLOYMENT`",
}


class LogsError(RuntimeError):
    """No logs to show, and why."""


def logs(spec: StackSpec, endpoint: str, tail: int | None, follow: bool, emit: Emit) -> None:
    declared = spec.endpoints.get(endpoint)
    if declared is None:
        raise LogsError(
            f"no endpoint '{endpoint}' in {spec.source.name}; it has: {', '.join(spec.endpoints) or 'none'}"
        )
    if isinstance(declared, LocalEndpointSpec):
        local_logs(spec.name, endpoint, tail, follow, emit)
    elif isinstance(declared, AksEndpointSpec) and (kubeconfig := _kubeconfig(spec, declared)) is not None:
        kubernetes_logs(kubeconfig, declared.namespace, endpoint, tail, follow, emit)
    else:
        where = AZURE_LOGS.get(declared.compute_type, AZURE_LOGS["aks"])
        raise LogsError(f"endpoint {endpoint} runs on Azure ({declared.compute_type}): read its logs with {where}")


def _kubeconfig(spec: StackSpec, endpoint: AksEndpointSpec) -> Path | None:
    attach = spec.clusters[endpoint.cluster].attach
    return attach.kubeconfig if attach is not None else None


def local_logs(stack: str, endpoint: str, tail: int | None, follow: bool, emit: Emit) -> None:
    from modelplane.providers.docker import engine_client

    labels = [f"modelplane.stack={stack}", f"modelplane.endpoint={endpoint}"]
    containers = engine_client().containers.list(all=True, filters={"label": labels})
    if not containers:
        raise LogsError(f"endpoint {endpoint} of stack {stack} has no container here (run `modelplane up`)")
    # Deployments first, by name; the router (no deployment label) last.
    containers.sort(
        key=lambda c: (c.labels.get("modelplane.deployment") is None, c.labels.get("modelplane.deployment", ""))
    )
    sources = [(c.labels.get("modelplane.deployment") or "router", _docker_lines(c, tail, follow)) for c in containers]
    _emit_all(sources, follow, emit)


def _docker_lines(container: Any, tail: int | None, follow: bool) -> Iterator[str]:
    options: dict[str, Any] = {"tail": tail if tail is not None else "all"}
    if follow:
        pending = ""
        for chunk in container.logs(stream=True, follow=True, **options):
            pending += chunk.decode(errors="replace")
            *complete, pending = pending.split("\n")
            yield from complete
        if pending:
            yield pending
    else:
        yield from container.logs(**options).decode(errors="replace").splitlines()


def kubernetes_logs(
    kubeconfig: Path, namespace: str, endpoint: str, tail: int | None, follow: bool, emit: Emit
) -> None:
    access = read_kubeconfig(kubeconfig)
    with session_for(access) as session:
        url = f"{access.server}/api/v1/namespaces/{namespace}/pods"
        found = session.get(url, params={"labelSelector": f"app.kubernetes.io/name={endpoint}"}, timeout=TIMEOUT)
        pods = [pod["metadata"]["name"] for pod in found.json().get("items", [])]
        if not pods:
            raise LogsError(f"endpoint {endpoint} has no pod in namespace {namespace} (run `modelplane up`)")
        params: dict[str, Any] = {"follow": "true"} if follow else {}
        if tail is not None:
            params["tailLines"] = tail

        def lines(pod: str) -> Iterator[str]:
            response = session.get(
                f"{url}/{pod}/log", params=params, stream=follow, timeout=None if follow else TIMEOUT
            )
            yield from (line for line in response.iter_lines(decode_unicode=True) if line is not None)

        _emit_all([(pod, lines(pod)) for pod in sorted(pods)], follow, emit)


def _emit_all(sources: Iterable[tuple[str, Iterator[str]]], follow: bool, emit: Emit) -> None:
    """Each source's lines with its name in front; one after another, or interleaved as they come."""
    if not follow:
        for name, lines in sources:
            for line in lines:
                emit(f"[{name}] {line}")
        return
    lock = threading.Lock()

    def pump(name: str, lines: Iterator[str]) -> None:
        for line in lines:
            with lock:
                emit(f"[{name}] {line}")

    threads = [threading.Thread(target=pump, args=source, daemon=True) for source in sources]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
