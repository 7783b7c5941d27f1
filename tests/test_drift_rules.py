"""What counts as drift in a refreshed resource's outputs (modelplane.drift.differences), without an engine."""

from __future__ import annotations

from modelplane.drift import differences
from modelplane.plan import Change
from modelplane.report import component_label

SECRET_VALUE = {"4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270", "ciphertext": "[secret]"}
DEPLOYMENT = "kubernetes:apps/v1:Deployment"


def deployment(
    replicas: int, resource_version: str = "1", ready: int = 1, declared: int | None = 1
) -> dict[str, object]:
    return {
        "__inputs": {"spec": {} if declared is None else {"replicas": declared}},
        "metadata": {
            "name": "regression",
            "resourceVersion": resource_version,
            "generation": int(resource_version),
            "annotations": {"deployment.kubernetes.io/revision": resource_version},
        },
        "spec": {"replicas": replicas},
        "status": {"readyReplicas": ready, "observedGeneration": int(resource_version)},
    }


def test_kubernetes_bookkeeping_and_status_are_not_drift() -> None:
    assert differences(deployment(1), deployment(1, resource_version="7", ready=0), DEPLOYMENT) == ()


def test_a_declared_field_changed_by_hand_is_drift() -> None:
    assert differences(deployment(1), deployment(3, resource_version="2"), DEPLOYMENT) == (
        Change("spec.replicas", 1, 3),
    )


def test_the_replica_count_an_autoscaler_owns_is_not_drift() -> None:
    # No replica count declared: the HPA scales it, and a hand-made change is the HPA's to undo.
    recorded, scaled = deployment(1, declared=None), deployment(3, resource_version="2", declared=None)
    assert differences(recorded, scaled, DEPLOYMENT) == ()
    hand_labelled = deployment(3, resource_version="2", declared=None)
    hand_labelled["metadata"]["labels"] = {"team": "x"}  # type: ignore[index]
    assert differences(recorded, hand_labelled, DEPLOYMENT) == (Change("metadata.labels.team", None, "x"),)


def test_status_of_a_non_kubernetes_resource_still_counts() -> None:
    # A stopped container is drift: only Kubernetes objects have controllers rewriting `status`.
    assert differences({"status": "running"}, {"status": "exited"}, "pulumi-python:dynamic/docker:Container") == (
        Change("status", "running", "exited"),
    )


def test_a_masked_secret_is_compared_through_the_engines_detailed_diff() -> None:
    recorded = {"data": SECRET_VALUE, "metadata": {"name": "regression-keys"}}
    assert differences(recorded, recorded, "kubernetes:core/v1:Secret", ["data.primary-key"]) == (
        Change("data.primary-key", "[secret]", "[secret] (changed)"),
    )
    assert differences(recorded, recorded, "kubernetes:core/v1:Secret", []) == ()


def test_a_fingerprinted_secret_is_reported_once() -> None:
    recorded = {"env": SECRET_VALUE, "env_fingerprint": "a"}
    actual = {"env": SECRET_VALUE, "env_fingerprint": "b"}
    assert differences(recorded, actual, "pulumi-python:dynamic/docker:Container", ["env.KEY"]) == (
        Change("env", "[secret]", "[secret] (changed)"),
    )


def test_resources_are_named_by_the_component_a_user_declared() -> None:
    parent = "urn:pulumi:k8s::modelplane::modelplane:index:AksEndpoint::endpoint-digits"
    assert component_label(parent) == "endpoint 'digits'"
    assert component_label(None) == "stack"
