"""The AKS path on a real cluster: a local control plane and a real node (containerd, kubelet,
kube-proxy) that pulls the scoring images from a local registry with htpasswd auth
(modelplane/local_cluster.py, modelplane/local_node.py).

A copy of stacks/k8s-local.yaml goes through the real engine and the pulumi-kubernetes provider: two
autoscaled endpoints with keys. The tests run in order on that one deployment: up, pods Ready through
their probes, calls through the NodePort (with and without the key) → no perpetual diff → a new model
rolls the Deployment → drift (the HPA's bounds, deleted Service, changed Secret) found and remediated →
metrics-server's CPU metrics make the HPA scale out under load → the policy pack's AKS rules on the
real preview → destroy.

Before that stack, one of its own (TestDeploymentsBehindARouter): an AKS endpoint with blue and green
deployments behind its router — a mirror, a 90/10 split, a shift and a model update under load, and a
deployment that never gets ready — deployed and destroyed while the node has room for it.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import joblib
import pytest
import requests
from sklearn.linear_model import Ridge

from modelplane.constants import MANAGED_BY_LABEL
from modelplane.engine import PROJECT_ROOT
from modelplane.kube_leftovers import ENDPOINT_KINDS, endpoint_objects, pulumi_type
from modelplane.local_cluster import LocalCluster, free_port, missing_binaries
from modelplane.local_metrics import pod_metrics
from modelplane.local_node import NODE_NAME, ClusterError
from modelplane.runtime.ports import METRICS_PORT
from tests.conftest import (
    Load,
    checkpoint_file,
    kill_when,
    latest_state,
    modelplane,
    started_alone,
    succeeded,
    tally_answers,
)

pytestmark = [pytest.mark.engine, pytest.mark.docker, pytest.mark.kubernetes]

STACK = PROJECT_ROOT / "stacks" / "k8s-local.yaml"
SAMPLE = {"data": [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]]}
# An `up` whose new pod's init() raises: the engine, the image's build, and the pod's two crashes
# with the kubelet's 10 s back-off between (26-32 s here; the roll-out's own window is 120 s).
UP_STOPPED_WITHIN = 100
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
    text = text.replace("../.modelplane/local-cluster/registry.json", str(kubeconfig.parent / "registry.json"))
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
    # metrics-server starts late (test_the_autoscaler_scales_on_real_cpu_metrics): a node with 2 CPUs
    # has room for one more replica, and the roll-out tests need that room for their surge pod.
    local = LocalCluster(tmp_path_factory.mktemp("cluster"), nodes=0, real_node=True, metrics_server=False)
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


# --- deployments and traffic (a stack of its own, deployed and destroyed before the one above) ------


def _retrain(folder: Path, alpha: float, target: float) -> Ridge:
    model = Ridge(alpha=alpha).fit([[float(i == j) for j in range(10)] for i in range(10)], [target] * 10)
    folder.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, folder / "sklearn_regression_model.pkl")
    return model


@dataclass
class RoutedStack:
    """An AKS endpoint `web` with named deployments behind its router, declared step by step."""

    stack: KubeStack
    folder: Path

    def declare(self, deployments: str, traffic: str, mirror: str = "") -> None:
        kube = self.stack.cluster.kubeconfig
        self.stack.file.write_text(
            f"""\
models:
  v1: {{path: {self.folder}/example/model/sklearn_regression_model.pkl, framework: scikit-learn}}
  v2: {{path: {self.folder}/retrained/sklearn_regression_model.pkl, framework: scikit-learn}}
images:
  scorer-v1: {{inference_config: example/inferenceconfig.json, source_directory: example, models: [v1]}}
  scorer-v2: {{inference_config: example/inferenceconfig.json, source_directory: example, models: [v2]}}
  broken: {{inference_config: broken/inferenceconfig.json, source_directory: broken, models: [v1]}}
clusters:
  local-k8s:
    attach: {{kubeconfig: {kube}, registry: {kube.parent / "registry.json"}, node_address: 127.0.0.1}}
    kubernetes_version: "1.36"
    service_type: NodePort
endpoints:
  web:
    compute_type: aks
    cluster: local-k8s
    cpu_cores: 0.5
    memory_gb: 0.5
    num_replicas: 1
    replica_max_concurrent_requests: 2
    liveness_probe: {{initial_delay_seconds: 10, period_seconds: 5}}
    deployments: {deployments}
    traffic: {traffic}
{f"    mirror_traffic: {mirror}" if mirror else ""}
"""
        )

    @property
    def uri(self) -> str:
        return str(self.stack.outputs()["endpoints"]["web"]["scoring_uri"])

    def key(self) -> str:
        return str(self.stack.outputs(show_secrets=True)["endpoint_keys"]["web"]["primary_key"])

    @property
    def state_folder(self) -> Path:
        return self.folder / "work" / "state"

    def objects(self) -> set[tuple[str, str]]:
        """The endpoint's objects on the cluster, as (Pulumi type, id)."""
        return endpoint_objects(self.stack.get(ENDPOINT_KINDS, "-n", "default", "-l", "app.kubernetes.io/name=web"))

    def known(self) -> set[tuple[str, str]]:
        """What the state knows, as (Pulumi type, id)."""
        return {
            (str(r["type"]), str(r.get("id"))) for r in latest_state(self.state_folder, self.stack.name)["resources"]
        }

    def scored(self, deployment: str) -> int:
        """Scoring requests a deployment's pods answered, from the AML server's request log."""
        selector = f"modelplane.io/deployment={deployment}"
        log = self.stack.cluster.kubectl("logs", "-n", "default", "-l", selector, "--tail=-1", "--prefix")
        return sum("/score" in line and "POST" in line for line in log.splitlines())


@pytest.fixture(scope="class")
def routed(cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RoutedStack]:
    folder = tmp_path_factory.mktemp("k8s-routed")
    example = EXAMPLES / "sklearn-regression"
    shutil.copytree(example, folder / "example", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(example, folder / "broken", ignore=shutil.ignore_patterns("__pycache__"))
    (folder / "broken" / "score.py").write_text(
        "def init():\n    raise RuntimeError('the model file is corrupt (a test)')\n\n\n"
        "def run(data):\n    return data\n"
    )
    _retrain(folder / "retrained", alpha=0.1, target=100.0)
    workdir = folder / "work"
    (workdir / "state").mkdir(parents=True)
    (workdir / "passphrase").write_text("k8s-routed-passphrase-not-a-secret\n")
    env = {**os.environ, "MODELPLANE_STATE": str(workdir)}
    env.pop("PULUMI_CONFIG_PASSPHRASE", None)
    name = f"k8s-routed-{free_port()}"
    handle = RoutedStack(KubeStack(name, folder / f"{name}.yaml", env, cluster, folder / "example" / "model"), folder)
    yield handle
    handle.stack.cli("destroy", "--yes", check=False)
    (PROJECT_ROOT / f"Pulumi.{name}.yaml").unlink(missing_ok=True)


BLUE_GREEN = "{blue: {image: scorer-v1}, green: {image: scorer-v2}}"
LEFT_CONFIG = "web-router-config-left"


def _leave_a_pending_config_map(routed: RoutedStack) -> None:
    """What a kill during the router ConfigMap's create leaves (a window of milliseconds, so made here):
    the object on the cluster, a pending create naming it in the state."""
    labels = {"app.kubernetes.io/name": "web", MANAGED_BY_LABEL: "modelplane"}
    metadata = {"name": LEFT_CONFIG, "namespace": "default", "labels": labels}
    manifest = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": {"nginx.conf": "# left"}}
    routed.stack.cluster.kubectl("apply", "-f", "-", input_text=json.dumps(manifest))
    path = checkpoint_file(routed.state_folder, routed.stack.name)
    state = json.loads(path.read_text())
    latest = state["checkpoint"]["latest"]
    config = next(r for r in latest["resources"] if r["type"] == pulumi_type("v1", "ConfigMap"))
    resource = {key: value for key, value in config.items() if key not in ("id", "outputs")}
    resource |= {"urn": config["urn"].rsplit("::", 1)[0] + f"::{LEFT_CONFIG}", "inputs": manifest}
    latest["pending_operations"] = [
        *(latest.get("pending_operations") or []),
        {"type": "creating", "resource": resource},
    ]
    path.write_text(json.dumps(state))


# First in the module: the node has room for these deployments before the main stack's.
class TestDeploymentsBehindARouter:
    def test_mirrored_requests_reach_the_mirror_and_never_the_caller(self, routed: RoutedStack) -> None:
        routed.declare(BLUE_GREEN, "{blue: 100, green: 0}", mirror="{green: 20}")
        routed.stack.cli("up", "--yes")
        router = routed.stack.get("deployment", "web-router", "-n", "default")
        assert router["status"]["readyReplicas"] == 2, router["status"]
        service = routed.stack.get("service", "web", "-n", "default")["spec"]
        assert service["selector"] == {"app.kubernetes.io/name": "web", "app.kubernetes.io/component": "router"}
        before = routed.scored("green")
        tally = tally_answers(routed.uri, routed.key(), SAMPLE, 2_000)
        assert tally == Counter({"blue": 2_000}), tally
        _wait_for("the mirrored requests in green's log", lambda: routed.scored("green") - before >= 300, 30)
        assert 300 <= routed.scored("green") - before <= 500  # 20% of 2,000
        # Without a key the router passes the request on and the deployment's gate refuses it.
        assert requests.post(routed.uri, json=SAMPLE, timeout=30).status_code == 401

    def test_live_traffic_lands_by_weight(self, routed: RoutedStack) -> None:
        routed.declare(BLUE_GREEN, "{blue: 90, green: 10}")
        line = "endpoint web: traffic blue 100→90, green 0→10"
        plan = routed.stack.cli("plan", "--format", "json", "--detailed-exitcode", check=False)
        assert [s["line"] for s in json.loads(plan.stdout)["trafficShifts"]] == [line], plan.stdout[-3000:]
        with Load(routed.uri, routed.key(), SAMPLE, concurrency=4) as load:  # the first of a shift's two `up`s
            routed.stack.cli("up", "--yes")
        assert load.requests > 50 and load.failures == [], (load.requests, load.failures[:10])
        tally = tally_answers(routed.uri, routed.key(), SAMPLE, 10_000, concurrency=16)
        assert sum(tally.values()) == 10_000 and set(tally) == {"blue", "green"}, tally
        assert 8_800 <= tally["blue"] <= 9_200 and 800 <= tally["green"] <= 1_200, tally

    def test_a_traffic_shift_under_load_loses_nothing(self, routed: RoutedStack) -> None:
        routed.declare(BLUE_GREEN, "{blue: 0, green: 100}")
        text = routed.stack.cli("plan", "--detailed-exitcode", check=False).stdout
        assert "endpoint web: traffic blue 90→0, green 10→100" in text, text[-3000:]
        with Load(routed.uri, routed.key(), SAMPLE, concurrency=4) as load:
            routed.stack.cli("up", "--yes")
        assert load.requests > 50 and load.failures == [], (load.requests, load.failures[:10])
        assert set(load.answered_by) == {"blue", "green"}, load.answered_by
        assert tally_answers(routed.uri, routed.key(), SAMPLE, 200) == Counter({"green": 200})

    def test_a_deployment_that_never_gets_ready_fails_up_and_traffic_stays(self, routed: RoutedStack) -> None:
        routed.declare(
            "{blue: {image: scorer-v1}, green: {image: scorer-v2}, red: {image: broken, cpu_cores: 0.1}}",
            "{green: 90, red: 10}",
        )
        failed = routed.stack.cli("up", "--yes", check=False)
        assert failed.returncode != 0
        assert "update stopped: pod default/web-red-" in failed.stderr, failed.stderr[-3000:]
        assert "(endpoint 'web', deployment 'red')" in failed.stderr, failed.stderr[-3000:]
        assert "the model file is corrupt (a test)" in failed.stderr, failed.stderr[-3000:]
        assert tally_answers(routed.uri, routed.key(), SAMPLE, 200) == Counter({"green": 200})

    def test_a_model_update_of_the_live_deployment_loses_nothing(self, routed: RoutedStack) -> None:
        routed.declare(BLUE_GREEN, "{blue: 0, green: 100}")
        newer = _retrain(routed.folder / "retrained", alpha=0.5, target=250.0)
        with Load(routed.uri, routed.key(), SAMPLE, concurrency=4) as load:
            routed.stack.cli("up", "--yes")
        assert load.requests > 50 and load.failures == [], (load.requests, load.failures[:10])
        headers = {"Authorization": f"Bearer {routed.key()}"}
        answer = requests.post(routed.uri, json=SAMPLE, headers=headers, timeout=30)
        assert answer.json()[0] == pytest.approx(float(newer.predict([SAMPLE["data"][0]])[0]), rel=1e-6)
        assert not routed.stack.get("deployments", "-n", "default", "-l", "modelplane.io/deployment=red")["items"]
        assert routed.stack.cli("preview", "--detailed-exitcode", check=False).returncode == 0

    def test_up_killed_while_adding_a_deployment_is_recovered_by_the_next_up(self, routed: RoutedStack) -> None:
        routed.declare("{green: {image: scorer-v2}, purple: {image: scorer-v1}}", "{green: 90, purple: 10}")
        with Load(routed.uri, routed.key(), SAMPLE, concurrency=4) as load:
            run = started_alone("up", routed.stack.file, routed.stack.env)
            kill_when(run, lambda: (pulumi_type("apps/v1", "Deployment"), "default/web-purple") in routed.objects())
            pending = latest_state(routed.state_folder, routed.stack.name).get("pending_operations")
            assert pending, "the kill left nothing pending"
            _leave_a_pending_config_map(routed)
            result = routed.stack.cli("up", "--yes", check=False)
        output = result.stdout + result.stderr
        assert result.returncode == 0, output[-3000:]
        assert "removed the lock of a run that was killed" in output, output[-3000:]
        assert f"the last run on stack {routed.stack.name} was killed while creating" in output, output[-3000:]
        removed = (
            f"removed what the killed run had created that the state does not know: ConfigMap default/{LEFT_CONFIG}"
        )
        assert removed in output, output[-3000:]
        # The Deployment the killed run created was taken over, the ConfigMap it left removed: nothing unknown.
        assert routed.objects() <= routed.known(), routed.objects() - routed.known()
        assert not latest_state(routed.state_folder, routed.stack.name).get("pending_operations")
        assert load.requests > 50 and load.failures == [], (load.requests, load.failures[:10])
        assert routed.stack.cli("preview", "--detailed-exitcode", check=False).returncode == 0
        tally = tally_answers(routed.uri, routed.key(), SAMPLE, 1_000)
        assert set(tally) == {"green", "purple"} and 50 <= tally["purple"] <= 150, tally

    def test_destroy_killed_half_way_is_finished_by_the_next_destroy(self, routed: RoutedStack) -> None:
        deployed = routed.objects()
        run = started_alone("destroy", routed.stack.file, routed.stack.env)
        kill_when(run, lambda: len(routed.objects()) < len(deployed))
        assert routed.objects(), "the destroy had finished"
        result = routed.stack.cli("destroy", "--yes", check=False)
        output = result.stdout + result.stderr
        assert result.returncode == 0, output[-3000:]
        assert "removed the lock of a run that was killed" in output, output[-3000:]
        assert not routed.objects()
        latest = latest_state(routed.state_folder, routed.stack.name)
        assert not latest.get("pending_operations") and not latest.get("resources"), latest


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
    # The HPA owns the replica count (the manifest has none) and lifts it to min_replicas of
    # deploymentconfig.aks.json.
    _wait_for(
        "the HPA to scale digits to min_replicas 2",
        lambda: _ready_replicas(deployed, "scoring", "digits") == 2,
    )

    hpa = deployed.get("hpa", "regression", "-n", "default")["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (1, 4)
    assert hpa["metrics"][0]["resource"]["target"]["averageUtilization"] == 70
    hpa = deployed.get("hpa", "digits", "-n", "scoring")["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (2, 6)
    assert hpa["metrics"][0]["resource"]["target"]["averageUtilization"] == 60

    service = deployed.get("service", "digits", "-n", "scoring")["spec"]
    assert service["type"] == "NodePort"
    assert [(p["port"], p["targetPort"]) for p in service["ports"]] == [(80, 5001)]

    # The pods run on the real node, Ready through their readiness probe; the images came from the registry.
    pods = deployed.get("pods", "-n", "scoring", "-l", "app.kubernetes.io/name=digits")["items"]
    assert len(pods) == 2
    assert all(p["spec"]["nodeName"] == NODE_NAME for p in pods)
    assert all(p["status"]["phase"] == "Running" for p in pods)
    assert all(c["ready"] for p in pods for c in p["status"]["containerStatuses"])
    registry = json.loads((deployed.cluster.workdir / "registry.json").read_text())["address"]
    assert _container(regression)["image"].startswith(f"{registry}/regression:")

    # The keys in the Secret are the stack's keys; the Deployment reads them from it.
    keys = deployed.outputs(show_secrets=True)["endpoint_keys"]
    secret = deployed.get("secret", "regression-keys", "-n", "default")
    assert base64.b64decode(secret["data"]["primary-key"]).decode() == keys["regression"]["primary_key"]
    env = {item["name"]: item for item in container["env"]}
    assert env["MODELPLANE_PRIMARY_KEY"]["valueFrom"]["secretKeyRef"] == {
        "name": "regression-keys",
        "key": "primary-key",
    }
    # Through kube-proxy's NodePort on 127.0.0.1: predictions with the key, 401 without it.
    uri = deployed.outputs()["endpoints"]["regression"]["scoring_uri"]
    assert uri.startswith("http://127.0.0.1:") and uri.endswith("/score"), uri
    invoked = deployed.cli("invoke", "regression", "--data", json.dumps(SAMPLE))
    assert json.loads(invoked.stdout)[0] == pytest.approx(6039.66, rel=1e-3)
    assert requests.post(uri, json=SAMPLE, timeout=30).status_code == 401


def _pods(deployed: KubeStack, namespace: str, app: str) -> list[dict[str, Any]]:
    return deployed.get("pods", "-n", namespace, "-l", f"app.kubernetes.io/name={app}")["items"]  # type: ignore[no-any-return]


def _ready_replicas(deployed: KubeStack, namespace: str, name: str) -> int:
    return int(deployed.get("deployment", name, "-n", namespace)["status"].get("readyReplicas") or 0)


def _ready(pod: dict[str, Any]) -> bool:
    return bool(pod["status"].get("containerStatuses")) and all(c["ready"] for c in pod["status"]["containerStatuses"])


def _call(uri: str, key: str, body: Any) -> int:
    try:
        return requests.post(uri, json=body, headers={"Authorization": f"Bearer {key}"}, timeout=10).status_code
    except requests.RequestException:
        return 0


def test_logs_of_a_kubernetes_endpoint_come_from_its_pods(deployed: KubeStack) -> None:
    printed = deployed.cli("logs", "digits", "--tail", "20").stdout.splitlines()
    pods = {line.split("]", 1)[0].lstrip("[") for line in printed}
    assert len(pods) == 2 and all(pod.startswith("digits-") for pod in pods), pods  # min_replicas 2
    assert any("ready for serving traffic" in line for line in printed)
    assert len(printed) <= 40


def test_a_second_real_node_is_refused_and_the_first_keeps_serving(deployed: KubeStack, tmp_path: Path) -> None:
    second = LocalCluster(tmp_path / "second", nodes=0, real_node=True)
    with pytest.raises(ClusterError, match="another local cluster with a real node is running"):
        second.start()
    # The refused cluster cleaned up only its own processes: the node's address and rules remain.
    key = deployed.outputs(show_secrets=True)["endpoint_keys"]["regression"]["primary_key"]
    uri = deployed.outputs()["endpoints"]["regression"]["scoring_uri"]
    assert _call(uri, key, SAMPLE) == 200


def test_a_pod_deleted_by_hand_is_replaced_while_the_endpoint_answers(deployed: KubeStack) -> None:
    uri = deployed.outputs()["endpoints"]["digits"]["scoring_uri"]
    key = deployed.outputs(show_secrets=True)["endpoint_keys"]["digits"]["primary_key"]
    body = {"data": [[0.0] * 64]}
    victim = _pods(deployed, "scoring", "digits")[0]["metadata"]["name"]
    deployed.cluster.kubectl("delete", "pod", victim, "-n", "scoring", "--wait=false")
    statuses = []
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        statuses.append(_call(uri, key, body))
        pods = _pods(deployed, "scoring", "digits")
        if victim not in {p["metadata"]["name"] for p in pods} and sum(_ready(p) for p in pods) == 2:
            break
        time.sleep(0.2)
    else:
        raise AssertionError(f"the deleted pod was not replaced: {[p['metadata']['name'] for p in pods]}")
    # The other replica kept answering; a request that met the dying pod's last moments may fail.
    assert statuses.count(200) >= len(statuses) - 2, statuses


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, queue = [], [pid]
    while queue:
        for child in children.get(queue.pop(), []):
            found.append(child)
            queue.append(child)
    return found


def test_the_liveness_probe_restarts_a_hung_scoring_process(deployed: KubeStack) -> None:
    (pod,) = _pods(deployed, "default", "regression")
    restarts = pod["status"]["containerStatuses"][0]["restartCount"]
    container_id = pod["status"]["containerStatuses"][0]["containerID"].removeprefix("containerd://")
    assert deployed.cluster.node is not None
    tasks = deployed.cluster.node.ctr("tasks", "ls").splitlines()[1:]  # TASK PID STATUS
    main_pid = next(int(line.split()[1]) for line in tasks if line.split()[0] == container_id)
    hung = [main_pid, *_descendants(main_pid)]  # gunicorn's master and its workers
    for pid in hung:
        os.kill(pid, signal.SIGSTOP)  # the scoring process hangs: the liveness probe times out
    try:
        _wait_for(
            "the liveness probe to restart the container",
            lambda: (
                _pods(deployed, "default", "regression")[0]["status"]["containerStatuses"][0]["restartCount"] > restarts
            ),
            seconds=120,
        )
    finally:
        for pid in hung:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
    _wait_for("the restarted container to be Ready", lambda: _ready(_pods(deployed, "default", "regression")[0]))
    invoked = deployed.cli("invoke", "regression", "--data", json.dumps(SAMPLE))
    assert json.loads(invoked.stdout)[0] == pytest.approx(6039.66, rel=1e-3)


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

    uri = deployed.outputs()["endpoints"]["regression"]["scoring_uri"]
    key = deployed.outputs(show_secrets=True)["endpoint_keys"]["regression"]["primary_key"]
    with Load(uri, key, SAMPLE, concurrency=4) as load:
        deployed.cli("up", "--yes")
    # Every request through the whole roll-out answered: readiness gating, maxUnavailable 0, and old
    # pods leaving the Service before they stop (preStop).
    assert load.requests > 50 and load.failures == [], (load.requests, load.failures[:10])
    answer = requests.post(uri, json=SAMPLE, headers={"Authorization": f"Bearer {key}"}, timeout=30).json()
    assert answer[0] == pytest.approx(float(retrained.predict([SAMPLE["data"][0]])[0]), rel=1e-6)
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


def test_an_init_that_raises_fails_up_with_its_log_while_the_old_replica_serves(
    deployed: KubeStack, tmp_path: Path
) -> None:
    broken = tmp_path / "broken-example"
    shutil.copytree(EXAMPLES / "sklearn-regression", broken)
    (broken / "score.py").write_text(
        "def init():\n    raise RuntimeError('the model file is corrupt (a test)')\n\n\n"
        "def run(data):\n    return data\n"
    )
    variant = deployed.variant(
        tmp_path / "broken",
        (f"source_directory: {EXAMPLES}/sklearn-regression", f"source_directory: {broken}"),
    )
    answer_before = json.loads(deployed.cli("invoke", "regression", "--data", json.dumps(SAMPLE)).stdout)
    image_before = _container(deployed.get("deployment", "regression", "-n", "default"))["image"]
    started = time.monotonic()
    failed = deployed.cli("up", "--yes", check=False, file=variant)
    elapsed = time.monotonic() - started
    assert failed.returncode != 0, failed.stdout[-2000:]
    explained = failed.stderr
    # Stopped at the new pod's second crash, not at the end of the roll-out's window (liveness 30 s
    # + 3 x 10 s and a minute to start: 120 s after the Deployment's update began).
    assert re.search(r"update stopped: pod default/regression-\S+ crash-loops", explained), explained[-3000:]
    assert elapsed < UP_STOPPED_WITHIN, (elapsed, explained[-3000:])
    assert "pod default/regression-" in explained and "(endpoint 'regression')" in explained, explained[-3000:]
    assert "the model file is corrupt (a test)" in explained, explained[-3000:]
    # The old replica kept serving.
    assert json.loads(deployed.cli("invoke", "regression", "--data", json.dumps(SAMPLE)).stdout) == answer_before
    # The state holds what the stopped update left on the cluster: an `up` back to the declaration
    # rolls the Deployment back, and the crashing pod goes.
    deployed.cli("up", "--yes")
    regression = deployed.get("deployment", "regression", "-n", "default")
    assert _container(regression)["image"] == image_before
    assert regression["status"].get("unavailableReplicas", 0) == 0, regression["status"]
    assert deployed.cli("preview", "--detailed-exitcode", check=False).returncode == 0


# Roll-outs need room on the node for their surge pod: these run before the autoscaler test fills it.
def test_rotating_the_primary_under_load_on_the_secondary_loses_no_request(deployed: KubeStack) -> None:
    uri = deployed.outputs()["endpoints"]["regression"]["scoring_uri"]
    before = deployed.outputs(show_secrets=True)["endpoint_keys"]["regression"]
    rotate = ["rotate", "--file", str(deployed.file), "regression", "--key", "primary", "--yes"]
    with Load(uri, before["secondary_key"], SAMPLE, concurrency=4) as load:
        rotated = succeeded(modelplane("keys", None, deployed.env, *rotate, transcript=deployed.transcript))
    assert "endpoint regression: primary key rotated" in rotated.stdout
    # The pods read the keys at start: the Deployment rolled (new pods Ready first), and the
    # secondary key answered throughout.
    assert load.requests > 50 and load.failures == [], (load.requests, load.failures[:10], rotated.stdout[-4000:])
    after = deployed.outputs(show_secrets=True)["endpoint_keys"]["regression"]
    assert after["secondary_key"] == before["secondary_key"] and after["primary_key"] != before["primary_key"]
    assert _call(uri, before["primary_key"], SAMPLE) == 401
    assert _call(uri, after["primary_key"], SAMPLE) == 200
    template = deployed.get("deployment", "regression", "-n", "default")["spec"]["template"]
    assert template["metadata"]["annotations"]["modelplane.io/key-generation"] == "1"
    assert deployed.cli("preview", "--detailed-exitcode", check=False).returncode == 0


def test_scoring_pods_serve_metrics_on_their_own_port(deployed: KubeStack) -> None:
    uri = deployed.outputs()["endpoints"]["regression"]["scoring_uri"]
    key = deployed.outputs(show_secrets=True)["endpoint_keys"]["regression"]["secondary_key"]
    assert _call(uri, key, SAMPLE) == 200
    pods = [
        p for p in _pods(deployed, "default", "regression") if _ready(p) and not p["metadata"].get("deletionTimestamp")
    ]
    assert pods and all(p["metadata"]["annotations"]["prometheus.io/port"] == str(METRICS_PORT) for p in pods)
    served = re.compile(r'^modelplane_requests_total\{code="200",model_name="diabetes-ridge",[^}]*\} [1-9]', re.M)
    texts = [requests.get(f"http://{p['status']['podIP']}:{METRICS_PORT}/metrics", timeout=10).text for p in pods]
    assert any(served.search(text) for text in texts), texts


def _drifted(report: dict[str, Any]) -> dict[str, Any]:
    return {r["name"]: r for r in report["resources"]}


def test_drift_autoscaler_changed_by_hand(deployed: KubeStack) -> None:
    code, report = deployed.drift()
    assert code == 0, report
    # The replica count is the HPA's: scaling the Deployment by hand is not drift.
    deployed.cluster.kubectl("scale", "deployment/regression", "-n", "default", "--replicas=2")
    assert deployed.drift()[0] == 0
    deployed.cluster.kubectl("scale", "deployment/regression", "-n", "default", "--replicas=1")
    # Its bounds are declared: changing them is.
    deployed.cluster.kubectl("patch", "hpa", "regression", "-n", "default", "-p", '{"spec":{"maxReplicas":9}}')
    code, report = deployed.drift()
    assert code == 2
    drifted = _drifted(report)
    assert list(drifted) == ["endpoint-regression-hpa"], report
    resource = drifted["endpoint-regression-hpa"]
    assert resource["component"] == "endpoint 'regression'"
    assert {(c["path"], c["old"], c["new"]) for c in resource["changes"]} == {("spec.maxReplicas", 4, 9)}

    deployed.remediate()
    assert deployed.get("hpa", "regression", "-n", "default")["spec"]["maxReplicas"] == 4


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


def test_the_autoscaler_scales_on_real_cpu_metrics(deployed: KubeStack) -> None:
    cluster = deployed.cluster
    cluster.start_metrics_server()
    _wait_for(
        "metrics-server to report the regression pod",
        lambda: any(
            p["metadata"]["labels"].get("app.kubernetes.io/name") == "regression"
            for p in _pod_metrics(cluster, "default")
        ),
        seconds=90,
    )
    (usage,) = [p for p in _pod_metrics(cluster, "default") if p["metadata"]["name"].startswith("regression-")]
    assert re.fullmatch(r"[1-9][0-9]*(Ki|Mi|Gi)", usage["containers"][0]["usage"]["memory"]), usage

    uri = deployed.outputs()["endpoints"]["regression"]["scoring_uri"]
    key = deployed.outputs(show_secrets=True)["endpoint_keys"]["regression"]["primary_key"]
    # A thousand rows a request: the scoring process's work per request is about three times the
    # load generator's, so what the load uses up is the replica's CPU, not the client's (with one row,
    # a busy machine's client held the replica near 50% of its request).
    rows = {"data": SAMPLE["data"] * 1000}
    with Load(uri, key, rows, concurrency=4) as load:
        # Under load the CPU use of its one replica passes the 70% target: the HPA adds one.
        try:
            _wait_for(
                "the HPA to scale regression out under load",
                lambda: _ready_replicas(deployed, "default", "regression") >= 2,
                180,
            )
        except AssertionError as error:
            raise AssertionError(f"{error}; {_autoscaler_view(deployed)}; {load.requests} requests served") from None
    assert load.failures == [], load.failures[:10]
    status = deployed.get("hpa", "regression", "-n", "default")["status"]
    (cpu,) = [m["resource"] for m in status["currentMetrics"] if m["type"] == "Resource"]
    assert cpu["name"] == "cpu" and cpu["current"]["averageUtilization"] > 0, status
    assert status["desiredReplicas"] >= 2, status
    # The scale is the HPA's: no drift, and a preview plans no change.
    assert deployed.drift()[0] == 0
    assert deployed.cli("preview", "--detailed-exitcode", check=False).returncode == 0


def _autoscaler_view(deployed: KubeStack) -> str:
    """What the HPA saw and where its pods stand, for a scale-out that did not come."""
    status = deployed.get("hpa", "regression", "-n", "default")["status"]
    pods = [
        (p["metadata"]["name"], p["status"].get("phase"), _ready(p)) for p in _pods(deployed, "default", "regression")
    ]
    return f"HPA status {json.dumps(status)}; pods (name, phase, ready) {pods}"


def _pod_metrics(cluster: LocalCluster, namespace: str) -> list[dict[str, Any]]:
    try:
        return pod_metrics(cluster, namespace)
    except Exception:  # the metrics API answers 503 until its first scrape
        return []


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
