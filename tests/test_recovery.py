"""What a killed run left, judged from the exported state: which of its pending operations to name,
which locks are stale, which Docker objects are older than the recovery, and which Kubernetes objects
it named (their removal from a real cluster: tests/test_kubernetes.py)."""

from __future__ import annotations

import os
import socket
import subprocess
from datetime import UTC, datetime

from pulumi import automation as auto

from modelplane.kube_leftovers import KubeObject, endpoint_objects, plural, provider_name, pulumi_type, unknown_to
from modelplane.naming import cluster_resource_name, kubernetes_provider_name
from modelplane.recovery import (
    CONTAINER_TYPE,
    Leftovers,
    interrupted,
    pending_creates,
    pending_kube_objects,
    recover_interrupted,
    stale_lock,
)

PENDING = {
    "pending_operations": [
        {
            "type": "creating",
            "resource": {
                "urn": f"urn:pulumi:s::modelplane::x:y:LocalEndpoint${CONTAINER_TYPE}::endpoint-web-default",
                "type": CONTAINER_TYPE,
                "inputs": {"name": "modelplane-s-web-default", "unique_name": True},
            },
        },
        {"type": "deleting", "resource": {"urn": "urn:pulumi:s::modelplane::x:y:StoredModel::model-ridge-store"}},
    ]
}
LOCKED = "error: the stack is currently locked by 1 lock(s). Either wait for the other process(es) to end …"


def _lock_line(host: str, pid: int) -> str:
    return f"  file:///s/.pulumi/locks/s/1.json: created by ci@{host} (pid {pid}) at 2026-12-02T08:00:00Z"


def test_the_interrupted_operations_are_named_by_resource() -> None:
    assert interrupted(PENDING["pending_operations"]) == "creating endpoint-web-default, deleting model-ridge-store"
    assert pending_creates(PENDING, CONTAINER_TYPE) == [{"name": "modelplane-s-web-default", "unique_name": True}]


def test_only_a_lock_of_dead_local_processes_is_stale() -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()
    here = socket.gethostname()
    assert stale_lock([LOCKED, _lock_line(here, gone.pid)])
    assert not stale_lock([LOCKED, _lock_line(here, os.getpid())]), "a live holder"
    assert not stale_lock([LOCKED, _lock_line("another-machine", gone.pid)]), "a holder elsewhere"
    assert not stale_lock([LOCKED, _lock_line(here, gone.pid), _lock_line(here, os.getpid())]), "one of two alive"
    assert not stale_lock(["error: update failed"])


def test_only_what_existed_before_the_recovery_is_a_leftover() -> None:
    left = Leftovers(PENDING, set(), datetime(2026, 12, 2, 9, 0, 16, 500000, tzinfo=UTC))
    assert left.older("2026-12-02T09:00:16.499999999Z")
    assert not left.older("2026-12-02T09:00:16.500000001Z")
    assert left.older("2026-12-02T08:59:00Z")


class NeverCreated:
    """A stack the engine has not created yet (the first `up` of stacks/<name>.yaml creates it)."""

    name = "fresh"

    def export_stack(self) -> None:
        raise auto.StackNotFoundError(auto.CommandResult(stdout="", stderr="no stack named 'fresh' found", code=255))


def test_a_stack_not_created_yet_has_nothing_to_recover() -> None:
    said: list[str] = []
    recover_interrupted(NeverCreated(), said.append)  # type: ignore[arg-type]
    assert said == []


PROVIDER = (
    "urn:pulumi:s::modelplane::modelplane:AksCluster$pulumi:providers:kubernetes::cluster-local-k8s-k8s"
    "::0b5c9e44-4a39-4f0e-9d0e-4d6c1c1e2f3a"
)


def _creating(kind_type: str, api_version: str, kind: str, metadata: dict[str, str]) -> dict[str, object]:
    inputs = {"apiVersion": api_version, "kind": kind, "metadata": metadata}
    return {"type": "creating", "resource": {"type": kind_type, "provider": PROVIDER, "inputs": inputs}}


KUBE_PENDING = {
    "pending_operations": [
        _creating("kubernetes:apps/v1:Deployment", "apps/v1", "Deployment", {"name": "web-red", "namespace": "ml"}),
        _creating(
            "kubernetes:core/v1:ConfigMap", "v1", "ConfigMap", {"name": "web-router-config-x1", "namespace": "ml"}
        ),
        _creating("kubernetes:core/v1:Namespace", "v1", "Namespace", {"name": "ml"}),
        _creating("kubernetes:core/v1:ConfigMap", "v1", "ConfigMap", {"namespace": "ml"}),  # not named yet
        {"type": "updating", "resource": {"type": "kubernetes:apps/v1:Deployment", "inputs": {}}},
        PENDING["pending_operations"][0],
    ]
}


def test_the_kubernetes_objects_a_killed_run_created_are_named_with_their_api_path() -> None:
    found = pending_kube_objects(KUBE_PENDING)
    assert [str(o) for o in found] == ["Deployment ml/web-red", "ConfigMap ml/web-router-config-x1", "Namespace ml"]
    assert [o.api_path() for o in found] == [
        "/apis/apps/v1/namespaces/ml/deployments/web-red",
        "/api/v1/namespaces/ml/configmaps/web-router-config-x1",
        "/api/v1/namespaces/ml",
    ]
    assert {provider_name(o.provider) for o in found} == {kubernetes_provider_name(cluster_resource_name("local-k8s"))}
    assert [plural(k) for k in ("HorizontalPodAutoscaler", "Ingress", "NetworkPolicy")] == [
        "horizontalpodautoscalers",
        "ingresses",
        "networkpolicies",
    ]


def test_a_kubernetes_object_the_state_knows_by_type_and_id_is_no_leftover() -> None:
    deployment, config, namespace = pending_kube_objects(KUBE_PENDING)
    state = {
        "resources": [
            {"type": "kubernetes:apps/v1:Deployment", "id": "ml/web-red"},
            {"type": "kubernetes:core/v1:ConfigMap", "id": "ml/web-router-config-y2"},
            {"type": "kubernetes:core/v1:Secret", "id": "ml"},
        ]
    }
    assert unknown_to(state, [deployment, config, namespace]) == [config, namespace]
    assert isinstance(config, KubeObject)


def test_listed_objects_get_the_types_the_state_gives_them() -> None:
    assert [pulumi_type("v1", "Secret"), pulumi_type("autoscaling/v2", "HorizontalPodAutoscaler")] == [
        "kubernetes:core/v1:Secret",
        "kubernetes:autoscaling/v2:HorizontalPodAutoscaler",
    ]
    listed = {
        "items": [{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"namespace": "ml", "name": "web"}}]
    }
    assert endpoint_objects(listed) == {("kubernetes:apps/v1:Deployment", "ml/web")}
