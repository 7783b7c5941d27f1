"""The Kubernetes half of the AKS path against a real API server.

A local control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler; kwok for the
nodes and kubelets; modelplane/local_cluster.py) gets a copy of stacks/k8s-local.yaml through the
real engine and the pulumi-kubernetes provider: two autoscaled endpoints with keys. The tests run in
order on that one deployment: up and roll-out → no perpetual diff → a new model rolls the Deployment
→ drift (scale, deleted Service, changed Secret) found and remediated → the policy pack's AKS rules
on the real preview → destroy.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import joblib
import pytest
from sklearn.linear_model import Ridge

from modelplane.engine import PROJECT_ROOT
from modelplane.local_cluster import LocalCluster, free_port, missing_binaries
from tests.conftest import modelplane, succeeded

pytestmark = [pytest.mark.engine, pytest.mark.docker, pytest.mark.kubernetes]

STACK = PROJECT_ROOT / "stacks" / "k8s-local.yaml"
EXAMPLES = PROJECT_ROOT / "examples"


@dataclass
class KubeStack:
    name: str
    file: Path
    env: dict[str, str]
    cluster: LocalCluster
    model_dir: Path
    transcript: list[str] = field(default_factory=list)

    def cli(self, *args: str, check: bool = True, file: Path | None = None) -> subprocess.CompletedProcess[str]:
        result = modelplane(args[0], file or self.file, self.env, *args[1:], transcript=self.transcript)
        return succeeded(result) if check else result

    def variant(self, folder: Path, *edits: tuple[str, str]) -> Path:
        """An edited declaration of the same engine stack."""
        return stack_copy(folder, self.name, self.cluster.kubeconfig, self.model_dir, edits)

    def outputs(self, show_secrets: bool = False) -> dict[str, Any]:
        flags = ["--show-secrets"] if show_secrets else []
        return json.loads(self.cli("outputs", *flags).stdout)  # type: ignore[no-any-return]

    def drift(self) -> tuple[int, dict[str, Any]]:
        result = self.cli("drift", "--format", "json", check=False)
        assert result.returncode in (0, 2), result.stdout[-3000:] + result.stderr[-3000:]
        return result.returncode, json.loads(result.stdout)

    def remediate(self) -> None:
        result = self.cli("drift", "--remediate", "--yes")
        assert "No drift" in result.stdout.splitlines()[-1], result.stdout[-3000:]
        assert self.drift()[0] == 0

    def get(self, *args: str) -> Any:
        return self.cluster.get_json(*args)


def stack_copy(
    folder: Path, name: str, kubeconfig: Path, model_dir: Path, edits: tuple[tuple[str, str], ...] = ()
) -> Path:
    """stacks/k8s-local.yaml for the test's cluster, as `<folder>/<name>.yaml` (copies with the same
    name are the same engine stack)."""
    text = STACK.read_text().replace("../.modelplane/local-cluster/kubeconfig", str(kubeconfig))
    text = text.replace("../examples/sklearn-regression/model", str(model_dir))
    text = text.replace("../examples", str(EXAMPLES))
    for old, new in edits:
        assert old in text, old
        text = text.replace(old, new)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yaml"
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config) -> Iterator[LocalCluster]:
    # No skip: a missing control plane is a broken bootstrap, and must fail CI.
    assert not missing_binaries(), f"missing {missing_binaries()}: run scripts/bootstrap-kubernetes"
    local = LocalCluster(tmp_path_factory.mktemp("cluster"), nodes=2)
    local.start()
    # Shown in the suite's output (not captured): how long a real control plane takes to come up.
    capture = pytestconfig.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture is not None else contextlib.nullcontext():
        print(f"\n[local-cluster] control plane ready in {local.startup_seconds:.1f} s", flush=True)
    yield local
    local.stop()


@pytest.fixture(scope="module")
def deployed(cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeStack]:
    root = tmp_path_factory.mktemp("k8s-stack")
    model_dir = root / "regression-model"
    shutil.copytree(EXAMPLES / "sklearn-regression" / "model", model_dir)
    workdir = root / "work"
    (workdir / "state").mkdir(parents=True)
    (workdir / "passphrase").write_text("k8s-passphrase-not-a-secret\n")
    env = {**os.environ, "MODELPLANE_STATE": str(workdir)}
    env.pop("PULUMI_CONFIG_PASSPHRASE", None)
    # A name of its own: the engine keeps a Pulumi.<stack>.yaml in the project root.
    name = f"k8s-test-{free_port()}"
    stack = KubeStack(name, stack_copy(root / "stack", name, cluster.kubeconfig, model_dir), env, cluster, model_dir)
    yield stack
    stack.cli("destroy", "--yes", check=False)
    (PROJECT_ROOT / f"Pulumi.{name}.yaml").unlink(missing_ok=True)


def _container(deployment: dict[str, Any]) -> dict[str, Any]:
    return deployment["spec"]["template"]["spec"]["containers"][0]  # type: ignore[no-any-return]


def _wait_for(what: str, condition: Any, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(1)
    raise AssertionError(f"timed out waiting for {what}")


def test_up_creates_the_objects_and_they_roll_out(deployed: KubeStack) -> None:
    up = deployed.cli("up", "--yes")
    assert "error" not in up.stderr.lower(), up.stderr[-2000:]

    regression = deployed.get("deployment", "regression", "-n", "default")
    container = _container(regression)
    assert container["resources"] == {
        "requests": {"cpu": "500m", "memory": "1Gi"},
        "limits": {"cpu": "500m", "memory": "1Gi"},
    }
    liveness = container["livenessProbe"]
    assert (liveness["httpGet"]["path"], liveness["initialDelaySeconds"], liveness["periodSeconds"]) == ("/", 30, 10)
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert regression["status"]["readyReplicas"] == regression["spec"]["replicas"] == 1

    digits = deployed.get("deployment", "digits", "-n", "scoring")
    assert _container(digits)["resources"]["requests"] == {"cpu": "500m", "memory": "1Gi"}
    assert digits["status"]["readyReplicas"] == 2  # min_replicas of deploymentconfig.aks.json

    hpa = deployed.get("hpa", "regression", "-n", "default")["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (1, 4)
    assert hpa["metrics"][0]["resource"]["target"]["averageUtilization"] == 70
    hpa = deployed.get("hpa", "digits", "-n", "scoring")["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (2, 6)
    assert hpa["metrics"][0]["resource"]["target"]["averageUtilization"] == 60

    service = deployed.get("service", "digits", "-n", "scoring")["spec"]
    assert service["type"] == "ClusterIP"
    assert [(p["port"], p["targetPort"]) for p in service["ports"]] == [(80, 5001)]

    # The pods run on the kwok nodes, Ready.
    pods = deployed.get("pods", "-n", "scoring", "-l", "app.kubernetes.io/name=digits")["items"]
    assert len(pods) == 2
    assert all(p["spec"]["nodeName"].startswith("kwok-node-") for p in pods)
    assert all(p["status"]["phase"] == "Running" for p in pods)

    # The keys in the Secret are the stack's keys; the Deployment reads them from it.
    keys = deployed.outputs(show_secrets=True)["endpoint_keys"]
    secret = deployed.get("secret", "regression-keys", "-n", "default")
    assert base64.b64decode(secret["data"]["primary-key"]).decode() == keys["regression"]["primary_key"]
    env = {item["name"]: item for item in container["env"]}
    assert env["MODELPLANE_PRIMARY_KEY"]["valueFrom"]["secretKeyRef"] == {
        "name": "regression-keys",
        "key": "primary-key",
    }
    assert deployed.outputs()["endpoints"]["regression"]["scoring_uri"].startswith("http://10.96.")


def test_a_second_preview_shows_no_changes(deployed: KubeStack) -> None:
    clean = deployed.cli("preview", "--detailed-exitcode", check=False)
    assert clean.returncode == 0, clean.stdout[-3000:]
    plan = json.loads(deployed.cli("plan", "--format", "json").stdout)
    assert {r["name"]: r["op"] for r in plan["resources"] if r["op"] != "same"} == {}


def test_a_new_model_rolls_the_deployment(deployed: KubeStack) -> None:
    before = deployed.get("deployment", "regression", "-n", "default")
    retrained = Ridge(alpha=0.1).fit([[float(i == j) for j in range(10)] for i in range(10)], [100.0] * 10)
    joblib.dump(retrained, deployed.model_dir / "sklearn_regression_model.pkl")

    plan = json.loads(deployed.cli("plan", "--format", "json", check=False).stdout)
    changed = {r["name"]: r["op"] for r in plan["resources"] if r["op"] != "same"}
    assert set(changed) == {"model-diabetes-ridge-store", "image-regression-image", "endpoint-regression-deployment"}
    assert changed["endpoint-regression-deployment"] == "update"

    deployed.cli("up", "--yes")
    after = deployed.get("deployment", "regression", "-n", "default")
    new_image = deployed.outputs()["images"]["regression"]
    assert _container(after)["image"] == new_image != _container(before)["image"]
    assert after["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"
    sets = deployed.get("replicasets", "-n", "default", "-l", "app.kubernetes.io/name=regression")["items"]
    by_image = {_container(s)["image"]: s for s in sets}
    assert set(by_image) == {_container(before)["image"], new_image}
    assert by_image[new_image]["status"].get("readyReplicas") == 1
    assert by_image[_container(before)["image"]]["spec"]["replicas"] == 0
    assert deployed.cli("preview", "--detailed-exitcode", check=False).returncode == 0


def _drifted(report: dict[str, Any]) -> dict[str, Any]:
    return {r["name"]: r for r in report["resources"]}


def test_drift_kubectl_scale(deployed: KubeStack) -> None:
    assert deployed.drift()[0] == 0
    deployed.cluster.kubectl("scale", "deployment/regression", "-n", "default", "--replicas=3")
    code, report = deployed.drift()
    assert code == 2
    drifted = _drifted(report)
    assert list(drifted) == ["endpoint-regression-deployment"], report
    resource = drifted["endpoint-regression-deployment"]
    assert resource["component"] == "endpoint 'regression'"
    assert {(c["path"], c["old"], c["new"]) for c in resource["changes"]} == {("spec.replicas", 1, 3)}

    deployed.remediate()
    assert deployed.get("deployment", "regression", "-n", "default")["spec"]["replicas"] == 1


def test_drift_kubectl_delete_service(deployed: KubeStack) -> None:
    deployed.cluster.kubectl("delete", "service", "digits", "-n", "scoring")
    code, report = deployed.drift()
    assert code == 2
    drifted = _drifted(report)
    assert list(drifted) == ["endpoint-digits-service"], report
    assert (drifted["endpoint-digits-service"]["component"], drifted["endpoint-digits-service"]["status"]) == (
        "endpoint 'digits'",
        "disappeared",
    )

    deployed.remediate()
    assert deployed.get("service", "digits", "-n", "scoring")["spec"]["ports"][0]["port"] == 80


def test_drift_changed_secret(deployed: KubeStack) -> None:
    keys = deployed.outputs(show_secrets=True)["endpoint_keys"]["regression"]
    tampered = "tampered-" + keys["primary_key"][:8]
    patch = json.dumps({"stringData": {"primary-key": tampered}})
    deployed.cluster.kubectl("patch", "secret", "regression-keys", "-n", "default", "-p", patch)
    result = deployed.cli("drift", check=False)
    assert result.returncode == 2, result.stdout[-3000:]
    assert "endpoint 'regression': endpoint-regression-keys-secret" in result.stdout
    assert tampered not in result.stdout + result.stderr
    assert keys["primary_key"] not in result.stdout + result.stderr
    code, report = deployed.drift()
    assert code == 2
    drifted = _drifted(report)
    assert list(drifted) == ["endpoint-regression-keys-secret"], report
    changes = drifted["endpoint-regression-keys-secret"]["changes"]
    assert [(c["path"], c["old"], c["new"]) for c in changes] == [
        ("data.primary-key", "[secret]", "[secret] (changed)")
    ]

    deployed.remediate()
    secret = deployed.get("secret", "regression-keys", "-n", "default")
    assert base64.b64decode(secret["data"]["primary-key"]).decode() == keys["primary_key"]


def test_policy_pack_aks_rules_on_the_real_preview(deployed: KubeStack, tmp_path: Path) -> None:
    compliant = deployed.cli("plan", "--format", "json")
    assert json.loads(compliant.stdout)["violations"] == []

    # The same stack declared as production: one replica and no TLS are refused.
    production = deployed.variant(tmp_path / "production", ("environment: staging", "environment: production"))
    result = deployed.cli("plan", "--format", "json", check=False, file=production)
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-3000:]
    violations = {(v["policy"], v["resource"]) for v in json.loads(result.stdout)["violations"]}
    assert ("replicas-in-production", "endpoint-regression-hpa") in violations
    assert ("aks-tls-in-production", "endpoint-regression-deployment") in violations
    assert ("aks-tls-in-production", "endpoint-digits-deployment") in violations

    # Auth off: the endpoint takes no key, which no stack may deploy.
    no_auth = deployed.variant(
        tmp_path / "no-auth",
        ("    autoscale:\n      min_replicas: 1", "    auth_enabled: false\n    autoscale:\n      min_replicas: 1"),
    )
    result = deployed.cli("up", "--yes", check=False, file=no_auth)
    assert result.returncode != 0
    assert "endpoint-auth" in result.stdout + result.stderr
    # Nothing was applied: the Secret the unauthenticated endpoint would drop is still there.
    assert deployed.get("secret", "regression-keys", "-n", "default")["data"]["primary-key"]
    assert deployed.drift()[0] == 0


def test_keys_never_printed(deployed: KubeStack) -> None:
    keys = deployed.outputs(show_secrets=True)["endpoint_keys"]
    for endpoint_keys in keys.values():
        for key in endpoint_keys.values():
            printed = [text for text in deployed.transcript if key in text]
            assert all('"primary_key"' in text for text in printed)  # only `outputs --show-secrets`


def test_destroy_removes_everything(deployed: KubeStack) -> None:
    deployed.cli("destroy", "--yes")
    for namespace in ("default", "scoring"):
        objects = deployed.get(
            "deployments,services,secrets,hpa", "-n", namespace, "-l", "app.kubernetes.io/managed-by=modelplane"
        )
        assert objects["items"] == [], objects
    assert "scoring" not in deployed.cluster.kubectl("get", "namespaces", "-o=name")
