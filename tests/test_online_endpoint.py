"""Azure ML v2 online endpoints (`compute_type: managed` / `kubernetes_online`): the declaration, the
component under Pulumi's mocks, and the traffic update against a local double of Azure Resource Manager."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from modelplane.providers.online_traffic import TOKEN_VARIABLE, OnlineTrafficProvider, TrafficError
from modelplane.source import SpecError
from modelplane.spec import load_stack
from tests.mocks import MockRun, run_under_mocks

ROOT = Path(__file__).resolve().parent.parent
V2_STACK = ROOT / "stacks" / "dev-v2.yaml"
DEPLOYMENT = "azure-native:machinelearningservices:OnlineDeployment"
ENDPOINT = "azure-native:machinelearningservices:OnlineEndpoint"
TRAFFIC = "pulumi-python:dynamic/azureml:OnlineTraffic"


def stack_with(tmp_path: Path, change: Any) -> Path:
    """stacks/dev-v2.yaml with `change` applied to its data, written beside absolute example paths."""
    data = yaml.safe_load(V2_STACK.read_text().replace("../examples", str(ROOT / "examples")))
    change(data)
    path = tmp_path / "stack.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def v2(tmp_path_factory: pytest.TempPathFactory) -> MockRun:
    def collect(out: Any) -> dict[str, Any]:
        endpoint = out.endpoints["regression-v2"]
        return {"uri": endpoint.scoring_uri, "keys": endpoint.keys}

    return run_under_mocks(load_stack(V2_STACK), tmp_path_factory.mktemp("state"), collect=collect)


def test_managed_endpoint_takes_key_auth_and_leaves_traffic_to_the_traffic_resource(v2: MockRun) -> None:
    endpoint = v2.mocks.one(ENDPOINT)
    assert endpoint.inputs["kind"] == "Managed"
    assert endpoint.inputs["properties"]["authMode"] == "Key"
    assert endpoint.inputs["properties"]["publicNetworkAccess"] == "Enabled"
    assert "traffic" not in endpoint.inputs["properties"]
    traffic = v2.mocks.one(TRAFFIC)
    assert traffic.inputs["traffic"] == {"blue": 90, "green": 10}
    assert traffic.inputs["endpoint_id"] == "endpoint-regression-v2-endpoint-id"


def test_deployment_carries_size_probes_and_request_settings_as_the_api_takes_them(v2: MockRun) -> None:
    blue = v2.mocks.one(DEPLOYMENT, "endpoint-regression-v2-blue").inputs
    properties = blue["properties"]
    assert blue["sku"]["capacity"] == 1
    assert properties["endpointComputeType"] == "Managed"
    assert properties["instanceType"] == "Standard_DS3_v2"
    assert properties["requestSettings"] == {"requestTimeout": "PT5S", "maxConcurrentRequestsPerInstance": 1}
    assert properties["livenessProbe"] == {"initialDelay": "PT30S", "period": "PT10S"}
    assert properties["scaleSettings"] == {"scaleType": "Default"}
    assert properties["codeConfiguration"] == {
        "codeId": "endpoint-regression-v2-regression-code-id",
        "scoringScript": "score.py",
    }
    assert properties["model"] == "model-diabetes-ridge-version-id"


def test_the_image_becomes_v2_code_and_an_environment_azure_builds(v2: MockRun) -> None:
    environment = v2.mocks.one(
        "azure-native:machinelearningservices:EnvironmentVersion", "endpoint-regression-v2-regression-environment"
    ).inputs
    conda = yaml.safe_load(environment["properties"]["condaFile"])
    pip = next(d["pip"] for d in conda["dependencies"] if isinstance(d, dict))
    assert "azureml-inference-server-http" in pip and "scikit-learn==1.7.2" in pip
    assert environment["properties"]["image"].startswith("mcr.microsoft.com/azureml/")
    blobs = [r.inputs["blobName"] for r in v2.mocks.of_type("azure-native:storage:Blob") if "code" in r.name]
    version = v2.mocks.one(
        "azure-native:machinelearningservices:CodeVersion", "endpoint-regression-v2-regression-code"
    ).inputs["version"]
    assert f"{version}/score.py" in blobs
    # Azure ML builds the environment: no image is built or pushed here.
    assert v2.mocks.of_type("pulumi-python:dynamic/docker:Image") == []


def test_keys_come_from_the_workspace_as_a_secret(v2: MockRun) -> None:
    assert v2.resolved["uri"] == "https://regression-v2.eastus.inference.ml.azure.com/score"
    assert v2.resolved["keys"]["primary_key"] == "mock-online-primary-key"
    assert v2.secret["keys"] is True
    assert any(token.endswith("listOnlineEndpointKeys") for token, _ in v2.mocks.calls)


def test_token_auth_has_no_keys(tmp_path: Path, v2: MockRun) -> None:
    stack = stack_with(tmp_path, lambda d: d["endpoints"]["regression-v2"].update(auth_mode="aml_token"))
    run = run_under_mocks(
        load_stack(stack), tmp_path / "state", collect=lambda o: {"keys": o.endpoints["regression-v2"].keys}
    )
    assert run.mocks.one(ENDPOINT).inputs["properties"]["authMode"] == "AMLToken"
    assert run.resolved["keys"] == {}
    # The endpoint is written again with its new auth mode: its traffic follows.
    assert run.mocks.one(TRAFFIC).inputs["endpoint_digest"] != v2.mocks.one(TRAFFIC).inputs["endpoint_digest"]


def test_kubernetes_online_runs_on_the_attached_compute_with_requests_and_autoscale(tmp_path: Path) -> None:
    def kubernetes(data: dict[str, Any]) -> None:
        endpoint = data["endpoints"]["regression-v2"]
        endpoint.update(compute_type="kubernetes_online", compute="k8s-compute")
        endpoint["deployments"]["blue"]["resources"] = {"requests": {"cpu": "0.5", "memory": "1Gi"}}
        endpoint["deployments"]["blue"]["scale_settings"] = {
            "type": "target_utilization",
            "min_instances": 2,
            "max_instances": 5,
            "polling_interval": 10,
            "target_utilization_percentage": 70,
        }

    run = run_under_mocks(load_stack(stack_with(tmp_path, kubernetes)), tmp_path / "state")
    endpoint = run.mocks.one(ENDPOINT).inputs
    assert endpoint["kind"] == "Kubernetes"
    assert endpoint["properties"]["compute"] == (
        "/subscriptions/sub-1/resourceGroups/modelplane-dev/providers/Microsoft.MachineLearningServices"
        "/workspaces/modelplane-dev-ws/computes/k8s-compute"
    )
    blue = run.mocks.one(DEPLOYMENT, "endpoint-regression-v2-blue").inputs["properties"]
    assert blue["containerResourceRequirements"] == {"containerResourceRequests": {"cpu": "0.5", "memory": "1Gi"}}
    assert blue["scaleSettings"] == {
        "scaleType": "TargetUtilization",
        "minInstances": 2,
        "maxInstances": 5,
        "pollingInterval": "PT10S",
        "targetUtilizationPercentage": 70,
    }


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda e: e["deployments"]["blue"].pop("instance_type"), "a managed deployment needs instance_type"),
        (lambda e: e.update(compute_type="kubernetes_online"), "kubernetes_online needs `compute`"),
        (lambda e: e.update(traffic={"blue": 90}), "traffic sums to 90"),
        (lambda e: e.update(mirror_traffic={"blue": 10}), "mirror only to a deployment without live traffic"),
        (lambda e: e.update(auth_mode="password"), "auth_mode"),
        (
            lambda e: e["deployments"]["blue"].update(scale_settings={"type": "target_utilization"}),
            "managed deployments scale with type default",
        ),
    ],
)
def test_what_aml_v2_refuses_is_refused_naming_the_field(tmp_path: Path, change: Any, expected: str) -> None:
    stack = stack_with(tmp_path, lambda d: change(d["endpoints"]["regression-v2"]))
    with pytest.raises(SpecError) as raised:
        load_stack(stack)
    assert expected in str(raised.value)
    assert "stack.yaml:" in str(raised.value)


def test_a_v1_aks_cluster_is_not_a_kubernetes_online_compute(tmp_path: Path) -> None:
    def change(data: dict[str, Any]) -> None:
        data["clusters"] = {"aks": {"cluster_purpose": "DEV_TEST"}}
        data["endpoints"]["regression-v2"].update(compute_type="kubernetes_online", compute="aks")

    with pytest.raises(SpecError, match="is a v1 AKS compute under `clusters:`"):
        load_stack(stack_with(tmp_path, change))


def test_settings_a_v2_deployment_cannot_take_are_named_in_warnings(tmp_path: Path) -> None:
    steps = ROOT / "examples" / "sklearn-regression" / "extra.steps"

    def change(data: dict[str, Any]) -> None:
        data["models"]["second"] = dict(data["models"]["diabetes-ridge"])
        data["images"]["regression"]["models"] = ["diabetes-ridge", "second"]
        data["images"]["regression"]["extra_docker_file_steps"] = str(steps)

    steps.write_text("RUN true\n")
    try:
        warnings = [str(w) for w in load_stack(stack_with(tmp_path, change)).warnings]
    finally:
        steps.unlink()
    assert any("images.regression.models" in w and "gets 'diabetes-ridge'" in w for w in warnings)
    assert any("extra_docker_file_steps" in w and "no effect on AML v2 deployments" in w for w in warnings)


# --- the traffic update against a local double of Azure Resource Manager -------------------------

ENDPOINT_ID = (
    "/subscriptions/s/resourceGroups/g/providers/Microsoft.MachineLearningServices/workspaces/w/onlineEndpoints/e"
)


class ArmDouble(BaseHTTPRequestHandler):
    """One online endpoint with deployments blue and green: PUT refuses traffic to any other
    deployment (as ARM does), and the endpoint reports Updating once before Succeeded."""

    endpoint: dict[str, Any]
    puts: list[dict[str, Any]]
    deployments = ("blue", "green")

    def log_message(self, *_args: Any) -> None:
        pass

    def _send(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path.split("?")[0] != ENDPOINT_ID or self.headers["Authorization"] != "Bearer test-token":
            self._send(404, {"error": {"code": "NotFound", "message": "no such endpoint"}})
            return
        self._send(200, self.endpoint)
        self.endpoint["properties"]["provisioningState"] = "Succeeded"

    def do_PUT(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        unknown = [name for name in body["properties"].get("traffic", {}) if name not in self.deployments]
        if unknown:
            message = f"Deployment(s) {', '.join(unknown)} not found on endpoint e"
            self._send(400, {"error": {"code": "BadArgument", "message": message}})
            return
        self.puts.append(body)
        self.endpoint = {**body, "properties": {**body["properties"], "provisioningState": "Updating"}}
        type(self).endpoint = self.endpoint
        self._send(200, self.endpoint)


@pytest.fixture
def arm(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[ArmDouble]]:
    monkeypatch.setenv(TOKEN_VARIABLE, "test-token")
    ArmDouble.endpoint = {
        "location": "westeurope",
        "kind": "Managed",
        "properties": {"authMode": "Key", "scoringUri": "https://e/score", "provisioningState": "Succeeded"},
    }
    ArmDouble.puts = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), ArmDouble)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    ArmDouble.base = f"http://127.0.0.1:{server.server_port}"  # type: ignore[attr-defined]
    yield ArmDouble
    server.shutdown()


def props(arm: type[ArmDouble], traffic: dict[str, int], mirror: dict[str, int] | None = None) -> dict[str, Any]:
    return {
        "endpoint_name": "e",
        "endpoint_id": ENDPOINT_ID,
        "traffic": traffic,
        "mirror_traffic": mirror or {},
        "arm_endpoint": arm.base,  # type: ignore[attr-defined]
        "poll_seconds": 0.05,
    }


def test_traffic_is_set_on_the_endpoint_and_waited_for(arm: type[ArmDouble]) -> None:
    provider = OnlineTrafficProvider()
    provider.create(props(arm, {"blue": 90, "green": 10}))
    provider.update("id", {}, props(arm, {"blue": 0, "green": 100}, {"blue": 20}))
    assert [p["properties"]["traffic"] for p in arm.puts] == [{"blue": 90, "green": 10}, {"green": 100}]
    assert arm.puts[-1]["properties"]["mirrorTraffic"] == {"blue": 20}
    # What the endpoint's GET returned that is read-only is not sent back.
    assert "scoringUri" not in arm.puts[-1]["properties"] and arm.puts[-1]["location"] == "westeurope"
    read = provider.read("id", props(arm, {"blue": 0, "green": 100})).outs or {}
    assert read["traffic"] == {"blue": 0, "green": 100}


def test_azure_refusing_the_traffic_is_an_error_that_quotes_it(arm: type[ArmDouble]) -> None:
    with pytest.raises(TrafficError, match="Deployment\\(s\\) red not found") as raised:
        OnlineTrafficProvider().create(props(arm, {"red": 100}))
    assert "online endpoint e (HTTP 400)" in str(raised.value)
    assert "test-token" not in str(raised.value)


def test_deleting_the_traffic_takes_all_of_it_away(arm: type[ArmDouble]) -> None:
    provider = OnlineTrafficProvider()
    provider.create(props(arm, {"blue": 100}))
    provider.delete("id", props(arm, {"blue": 100}))
    assert arm.puts[-1]["properties"]["traffic"] == {}


def test_a_hand_made_traffic_change_is_drift(arm: type[ArmDouble]) -> None:
    provider = OnlineTrafficProvider()
    declared = props(arm, {"blue": 90, "green": 10})
    provider.create(declared)
    arm.endpoint["properties"]["traffic"] = {"blue": 50, "green": 50}
    live = provider.read("id", declared).outs or {}
    assert live["traffic"] == {"blue": 50, "green": 50}
    assert provider.diff("id", declared, live).changes is True


def test_an_update_of_the_endpoint_sets_the_traffic_again() -> None:
    """Azure writes an endpoint whole: after an update without traffic, the shares must be set again."""
    provider = OnlineTrafficProvider()
    before = {"traffic": {"blue": 100}, "mirror_traffic": {}, "endpoint_id": "e", "endpoint_digest": "a"}
    assert provider.diff("id", before, {**before}).changes is False
    assert provider.diff("id", before, {**before, "endpoint_digest": "b"}).changes is True
