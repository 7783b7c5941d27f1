"""Every component under Pulumi's mocks: the resources it asks for and the properties that matter."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from modelplane.constants import DYNAMIC_TYPES
from modelplane.content import model_version
from modelplane.naming import compact_name
from modelplane.source import SpecError
from modelplane.spec import AciEndpointSpec, ClusterSpec, FpgaSpec, load_stack
from tests.mocks import REGISTRY_PASSWORD, MockRun, is_secret, routed_prod_stack, run_under_mocks

ROOT = Path(__file__).resolve().parent.parent
STACKS = ROOT / "stacks"


def keys_of(run: MockRun, endpoint: str) -> dict[str, Any]:
    return {"keys": run.outputs.endpoints[endpoint].keys}


@pytest.fixture
def prod(tmp_path: Path) -> MockRun:
    return run_under_mocks(
        load_stack(STACKS / "prod.yaml"),
        tmp_path,
        stack_name="prod",
        collect=lambda out: {
            "regression_keys": out.endpoints["regression"].keys,
            "regression_uri": out.endpoints["regression"].scoring_uri,
            "digits_keys": out.endpoints["digits"].keys,
            "fpga_keys": out.fpga["resnet-fpga"].keys,
        },
    )


@pytest.fixture
def dev(tmp_path: Path) -> MockRun:
    return run_under_mocks(
        load_stack(STACKS / "dev.yaml"),
        tmp_path,
        stack_name="dev",
        collect=lambda out: {
            "keys": out.endpoints["regression-aci"].keys,
            "uri": out.endpoints["regression-aci"].scoring_uri,
        },
    )


# --- Workspace ------------------------------------------------------------------------------------


def test_workspace_creates_its_dependencies_and_links_them(dev: MockRun) -> None:
    mocks = dev.mocks
    group = mocks.one("azure-native:resources:ResourceGroup")
    assert group.inputs["resourceGroupName"] == "modelplane-dev"
    assert group.inputs["location"] == "westeurope"
    assert group.inputs["tags"] == {"environment": "dev", "owner": "ml-platform"}
    account = mocks.one("azure-native:storage:StorageAccount")
    assert len(account.inputs["accountName"]) <= 24 and account.inputs["accountName"].isalnum()
    assert account.inputs["allowBlobPublicAccess"] is False
    registry = mocks.one("azure-native:containerregistry:Registry")
    assert registry.inputs["adminUserEnabled"] is True
    vault = mocks.one("azure-native:keyvault:Vault")
    assert vault.inputs["properties"]["tenantId"] == "00000000-0000-0000-0000-000000000001"
    workspace = mocks.one("azure-native:machinelearningservices:Workspace")
    assert workspace.inputs["workspaceName"] == "modelplane-dev-ws"
    for key in ("storageAccount", "keyVault", "containerRegistry", "applicationInsights"):
        assert workspace.inputs[key].endswith("-id"), key
    mocks.one("azure-native:applicationinsights:Component")


def test_existing_workspace_is_looked_up_not_created(tmp_path: Path) -> None:
    stack = tmp_path / "existing.yaml"
    text = (
        (STACKS / "dev.yaml")
        .read_text()
        .replace(
            "  workspace:\n    name: modelplane-dev-ws\n",
            "  workspace:\n    existing: {name: shared-ws, resource_group: shared-rg}\n",
        )
    )
    stack.write_text(text.replace("../examples", str(ROOT / "examples")))
    run = run_under_mocks(load_stack(stack), tmp_path / "state")
    assert not run.mocks.of_type("azure-native:machinelearningservices:Workspace")
    assert not run.mocks.of_type("azure-native:resources:ResourceGroup")
    lookups = [args for token, args in run.mocks.calls if token == "azure-native:machinelearningservices:getWorkspace"]
    assert lookups == [{"resourceGroupName": "shared-rg", "workspaceName": "shared-ws"}]
    version = run.mocks.one("azure-native:machinelearningservices:ModelVersion")
    assert version.inputs["workspaceName"] == "shared-ws"


def test_compact_names_fit_azure_limits() -> None:
    name = compact_name("st", "a-very-long-stack-name-with-dashes-and-more", 24)
    assert len(name) == 24 and name.isalnum() and name == name.lower()
    assert compact_name("st", "one", 24) != compact_name("st", "two", 24)


# --- RegisteredModel ------------------------------------------------------------------------------


def test_model_version_derives_from_content(dev: MockRun) -> None:
    version = dev.mocks.one("azure-native:machinelearningservices:ModelVersion")
    expected = model_version(ROOT / "examples/sklearn-regression/model/sklearn_regression_model.pkl")
    assert version.inputs["version"] == expected
    assert version.inputs["properties"]["properties"]["framework"] == "scikit-learn"
    blob = dev.mocks.one("azure-native:storage:Blob")
    assert blob.inputs["blobName"] == f"{expected}/sklearn_regression_model.pkl"
    assert version.inputs["properties"]["modelUri"].endswith(f"/{expected}")


def test_changed_model_bytes_change_the_version_and_unchanged_do_not(tmp_path: Path) -> None:
    model = tmp_path / "model"
    shutil.copytree(ROOT / "examples/sklearn-regression/model", model)
    first = model_version(model)
    assert model_version(model) == first
    (model / "sklearn_regression_model.pkl").write_bytes(b"retrained")
    assert model_version(model) != first


# --- ScoringImage ---------------------------------------------------------------------------------


def test_image_is_tagged_by_content_and_pushed_with_secret_credentials(dev: MockRun) -> None:
    image = dev.mocks.one(DYNAMIC_TYPES["image"])
    tag = image.inputs["tag"]
    assert ".azurecr.io/regression:" in tag
    assert image.inputs["registry"]["password"] == REGISTRY_PASSWORD
    assert is_secret(image.raw["registry"])
    dockerfile = (Path(image.inputs["context"]) / "Dockerfile").read_text().splitlines()
    copies = [line for line in dockerfile if line.startswith("COPY")]
    # Model files last, then the source, so a model change rebuilds only the last layer.
    assert copies[-1].startswith("COPY models/") and copies[-2].startswith("COPY source/")
    assert any("AZUREML_MODEL_DIR=/var/azureml-app/azureml-models/diabetes-ridge/" in line for line in dockerfile)


# --- AciEndpoint ----------------------------------------------------------------------------------


def test_aci_endpoint_sizes_and_secure_keys(dev: MockRun) -> None:
    group = dev.mocks.one("azure-native:containerinstance:ContainerGroup")
    container = group.inputs["containers"][0]
    assert container["resources"]["requests"] == {"cpu": 1, "memoryInGB": 1}
    env = {item["name"]: item for item in container["environmentVariables"]}
    for key in ("MODELPLANE_PRIMARY_KEY", "MODELPLANE_SECONDARY_KEY"):
        assert "secureValue" in env[key] and "value" not in env[key]
    assert group.inputs["ipAddress"]["dnsNameLabel"] == "modelplane-dev-regression"
    assert group.inputs["imageRegistryCredentials"][0]["password"] == REGISTRY_PASSWORD
    assert is_secret(group.raw["imageRegistryCredentials"])
    assert dev.secret["keys"] is True
    assert set(dev.resolved["keys"]) == {"primary_key", "secondary_key"}
    assert dev.resolved["uri"] == "http://modelplane-dev-regression.westeurope.azurecontainer.io/score"


def test_aci_limits_are_checked_before_azure_sees_them() -> None:
    AciEndpointSpec(compute_type="aci", image="x", cpu_cores=4, memory_gb=16)
    with pytest.raises(ValidationError, match="less than or equal to 16"):
        AciEndpointSpec(compute_type="aci", image="x", cpu_cores=4, memory_gb=32)


# --- AksCluster -----------------------------------------------------------------------------------


def test_fast_prod_cluster_has_three_d3_v2_agents_and_registers_its_purpose(prod: MockRun) -> None:
    cluster = prod.mocks.one("azure-native:containerservice:ManagedCluster", "cluster-prod-aks-aks")
    pool = cluster.inputs["agentPoolProfiles"][0]
    assert (pool["count"], pool["vmSize"], pool["mode"]) == (3, "Standard_D3_v2", "System")
    assert cluster.inputs["kubernetesVersion"] == "1.33"
    compute = prod.mocks.one("azure-native:machinelearningservices:Compute", "cluster-prod-aks-compute")
    assert compute.inputs["properties"]["computeType"] == "AKS"
    assert compute.inputs["properties"]["properties"]["clusterPurpose"] == "FastProd"
    provider = prod.mocks.one("pulumi:providers:kubernetes", "cluster-prod-aks-k8s")
    assert "server:" in provider.inputs["kubeconfig"]


def test_dev_test_cluster_defaults_to_one_agent_and_refuses_more() -> None:
    spec = ClusterSpec(cluster_purpose="DEV_TEST")
    assert spec.agents == 1
    with pytest.raises(ValidationError, match="exactly 1 agent"):
        ClusterSpec(cluster_purpose="DEV_TEST", agent_count=2)


def test_attached_cluster_is_looked_up(tmp_path: Path) -> None:
    stack = tmp_path / "attached.yaml"
    text = (STACKS / "prod.yaml").read_text().replace("../examples", str(ROOT / "examples"))
    text = text.replace(
        "    cluster_purpose: FAST_PROD\n    vm_size: Standard_D3_v2\n    agent_count: 3\n",
        "    attach: {resource_group: aks-rg, cluster_name: existing-aks}\n",
    )
    stack.write_text(text)
    run = run_under_mocks(load_stack(stack), tmp_path / "state")
    assert not [r for r in run.mocks.of_type("azure-native:containerservice:ManagedCluster") if "prod-aks" in r.name]
    compute = run.mocks.one("azure-native:machinelearningservices:Compute", "cluster-prod-aks-compute")
    assert compute.inputs["properties"]["resourceId"].endswith("/managedClusters/existing-aks")


# --- AksEndpoint ----------------------------------------------------------------------------------


def _deployment(run: MockRun, endpoint: str) -> dict[str, Any]:
    return run.mocks.one("kubernetes:apps/v1:Deployment", f"endpoint-{endpoint}-deployment").inputs


def test_aks_deployment_requests_probes_and_keys_from_the_secret(prod: MockRun) -> None:
    deployment = _deployment(prod, "regression")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"]["requests"] == {"cpu": "500m", "memory": "1024Mi"}
    probe = container["livenessProbe"]
    assert (probe["initialDelaySeconds"], probe["periodSeconds"], probe["timeoutSeconds"]) == (30, 10, 2)
    assert (probe["successThreshold"], probe["failureThreshold"]) == (1, 3)
    env = {item["name"]: item for item in container["env"]}
    for variable in ("MODELPLANE_PRIMARY_KEY", "MODELPLANE_SECONDARY_KEY"):
        assert "value" not in env[variable]
        assert env[variable]["valueFrom"]["secretKeyRef"]["name"] == "regression-keys"
    assert deployment["metadata"]["namespace"] == "scoring"
    assert deployment["spec"]["strategy"]["rollingUpdate"] == {"maxUnavailable": 0, "maxSurge": 1}
    secret = prod.mocks.one("kubernetes:core/v1:Secret", "endpoint-regression-keys-secret")
    assert set(secret.inputs["stringData"]) == {"primary-key", "secondary-key"}
    assert prod.secret["regression_keys"] is True
    # The prod cluster has `ssl`: the endpoint is served through a TLS Ingress under AML's route.
    assert prod.resolved["regression_uri"] == "https://scoring.prod.example.com/api/v1/service/regression/score"
    ingress = prod.mocks.one("kubernetes:networking.k8s.io/v1:Ingress", "endpoint-regression-ingress").inputs
    assert ingress["spec"]["tls"] == [{"hosts": ["scoring.prod.example.com"], "secretName": "regression-tls"}]
    tls = prod.mocks.one("kubernetes:core/v1:Secret", "endpoint-regression-tls")
    string_data = tls.raw["stringData"]
    assert is_secret(string_data) or is_secret(string_data["tls.key"]), "the private key stays a secret"


def test_a_namespace_two_endpoints_share_is_created_once_by_the_cluster(prod: MockRun) -> None:
    namespaces = prod.mocks.of_type("kubernetes:core/v1:Namespace")
    assert [(n.name, n.inputs["metadata"]["name"]) for n in namespaces] == [("cluster-prod-aks-ns-scoring", "scoring")]
    assert _deployment(prod, "digits")["metadata"]["namespace"] == "scoring"


def test_aks_objects_are_owned_by_the_stack(prod: MockRun) -> None:
    # Without force, one `kubectl scale` would make every later `up` fail with a field conflict.
    for token, name in (
        ("kubernetes:apps/v1:Deployment", "endpoint-regression-deployment"),
        ("kubernetes:core/v1:Service", "endpoint-regression-service"),
        ("kubernetes:core/v1:Secret", "endpoint-regression-keys-secret"),
        ("kubernetes:autoscaling/v2:HorizontalPodAutoscaler", "endpoint-regression-hpa"),
    ):
        assert prod.mocks.one(token, name).inputs["metadata"]["annotations"]["pulumi.com/patchForce"] == "true"


def test_aks_hpa_follows_autoscale(prod: MockRun) -> None:
    hpa = prod.mocks.one("kubernetes:autoscaling/v2:HorizontalPodAutoscaler", "endpoint-regression-hpa").inputs
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 8)
    assert hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] == 70
    assert hpa["spec"]["scaleTargetRef"]["name"] == "regression"
    # The HPA owns the replica count: a manifest that set it would reset the scale on every update.
    assert "replicas" not in _deployment(prod, "regression")["spec"]


def test_deployment_config_json_gives_the_same_objects_as_yaml(tmp_path: Path) -> None:
    """digits comes from deploymentconfig.aks.json in prod.yaml; declare the same values in YAML."""
    from_json = run_under_mocks(load_stack(STACKS / "prod.yaml"), tmp_path / "a")
    stack = tmp_path / "yaml-twin.yaml"
    text = (STACKS / "prod.yaml").read_text().replace("../examples", str(ROOT / "examples"))
    text = text.replace(
        "    deployment_config: ../examples/digits-classifier/deploymentconfig.aks.json\n".replace(
            "../examples", str(ROOT / "examples")
        ),
        """    compute_type: aks
    cpu_cores: 0.5
    memory_gb: 1.0
    autoscale: {enabled: true, min_replicas: 2, max_replicas: 6, target_utilization: 60, refresh_seconds: 5}
    scoring_timeout_ms: 30000
    replica_max_concurrent_requests: 2
    max_request_wait_time: 1000
    liveness_probe: {period_seconds: 10, initial_delay_seconds: 30, timeout_seconds: 2,
                     success_threshold: 1, failure_threshold: 3}
    namespace: scoring
""",
    )
    stack.write_text(text)
    from_yaml = run_under_mocks(load_stack(stack), tmp_path / "b")
    for typ, name in (
        ("kubernetes:apps/v1:Deployment", "endpoint-digits-deployment"),
        ("kubernetes:autoscaling/v2:HorizontalPodAutoscaler", "endpoint-digits-hpa"),
        ("kubernetes:core/v1:Service", "endpoint-digits-service"),
    ):
        assert from_json.mocks.one(typ, name).inputs == from_yaml.mocks.one(typ, name).inputs, name
    deployment = _deployment(from_json, "digits")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    env = {item["name"]: item.get("value") for item in container["env"]}
    assert env["SCORING_TIMEOUT_MS"] == "30000"
    assert env["MODELPLANE_WORKERS"] == "2"


def test_inference_config_json_gives_the_same_image_as_yaml(tmp_path: Path) -> None:
    example = ROOT / "examples/sklearn-regression"
    stack = tmp_path / "twin.yaml"
    base = (STACKS / "dev.yaml").read_text().replace("../examples", str(ROOT / "examples"))
    stack.write_text(
        base.replace(
            f"    inference_config: {example}/inferenceconfig.json\n",
            f"    entry_script: {example}/score.py\n    conda_file: {example}/myenv.yml\n    runtime: python\n",
        )
    )
    from_json = run_under_mocks(load_stack(STACKS / "dev.yaml"), tmp_path / "a")
    from_yaml = run_under_mocks(load_stack(stack), tmp_path / "b")

    def image(run: MockRun) -> dict[str, Any]:
        return run.mocks.one(DYNAMIC_TYPES["image"]).inputs

    assert image(from_json)["tag"] == image(from_yaml)["tag"]
    dockerfile = (Path(image(from_json)["context"]) / "Dockerfile").read_text()
    assert "AZUREML_ENTRY_SCRIPT=score.py" in dockerfile


# --- EdgeModule -----------------------------------------------------------------------------------


def test_edge_manifest_runs_the_scoring_module(prod: MockRun) -> None:
    hub = prod.mocks.one("azure-native:iothub:IotHubResource")
    assert hub.inputs["sku"] == {"name": "S1", "capacity": 1}
    deployment = prod.mocks.one(DYNAMIC_TYPES["edge_deployment"]).inputs
    assert deployment["target_condition"] == "tags.site='factory-1'"
    modules = deployment["content"]["$edgeAgent"]["properties.desired"]["modules"]
    module = modules["digits-edge"]
    assert ".azurecr.io/digits:" in module["settings"]["image"]
    create_options = json.loads(module["settings"]["createOptions"])
    assert create_options["HostConfig"]["PortBindings"] == {"5001/tcp": [{"HostPort": "5001"}]}
    assert module["env"] == {"WORKER_COUNT": {"value": "1"}}
    routes = deployment["content"]["$edgeHub"]["properties.desired"]["routes"]
    assert routes == {"scoring-to-cloud": "FROM /messages/modules/digits-edge/outputs/* INTO $upstream"}


# --- FpgaService ----------------------------------------------------------------------------------


def test_fpga_service_adds_a_tainted_pb_pool_and_asks_for_the_fpga(prod: MockRun) -> None:
    pool = prod.mocks.one("azure-native:containerservice:AgentPool")
    assert (pool.inputs["vmSize"], pool.inputs["count"], pool.inputs["mode"]) == ("Standard_PB6s", 1, "User")
    assert pool.inputs["nodeTaints"] == ["modelplane/accelerator=fpga:NoSchedule"]
    deployment = prod.mocks.one("kubernetes:apps/v1:Deployment", "fpga-resnet-fpga-deployment").inputs
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"]["limits"] == {"microsoft.com/fpga": "1"}
    assert "resnet50" in container["image"]
    assert prod.secret["fpga_keys"] is True


def test_fpga_refuses_non_pb_sizes() -> None:
    with pytest.raises(ValidationError, match="PB-series"):
        FpgaSpec(model="resnet50", vm_size="Standard_D3_v2")


# --- Local stack under mocks ------------------------------------------------------------------------


def test_local_stack_runs_containers_with_keys_in_secret_env(tmp_path: Path) -> None:
    run = run_under_mocks(
        load_stack(STACKS / "local.yaml"),
        tmp_path,
        stack_name="local",
        collect=lambda out: {"keys": out.endpoints["regression"].keys, "uri": out.endpoints["regression"].scoring_uri},
    )
    containers = run.mocks.of_type(DYNAMIC_TYPES["container"])
    by_name = {c.inputs["name"]: c.inputs for c in containers}
    # A plain `image` is one deployment, `default`, behind the endpoint's router.
    regression = by_name["modelplane-local-regression-default"]
    raw = next(c.raw for c in containers if c.inputs["name"] == "modelplane-local-regression-default")
    assert is_secret(raw["env"]), "keys reach the container only inside a secret"
    assert set(regression["env"]) == {
        "MODELPLANE_PORT",
        "MODELPLANE_PRIMARY_KEY",
        "MODELPLANE_SECONDARY_KEY",
        "MODELPLANE_AUTH_MODE",
        "MODELPLANE_ENDPOINT",
    }
    assert regression["env"]["MODELPLANE_AUTH_MODE"] == "key"
    assert regression["ports"] == [], "only the router binds a host port"
    assert regression["network"] == "modelplane-local-regression"
    assert regression["ready"] == {"path": "/ready", "port": 5001, "timeout": 300}
    assert regression["restart"] == "unless-stopped"
    assert regression["labels"]["modelplane.endpoint"] == "regression"
    routers = {r.inputs["name"]: r.inputs for r in run.mocks.of_type(DYNAMIC_TYPES["router"])}
    assert routers["modelplane-local-regression"]["port"] == 8890
    assert routers["modelplane-local-digits"]["port"] == 8891
    assert routers["modelplane-local-regression"]["routes"] == [
        {"name": "default", "host": "modelplane-local-regression-default-0", "port": 5001, "traffic": 100, "mirror": 0}
    ]
    assert run.resolved["uri"] == "http://127.0.0.1:8890/score"
    assert run.secret["keys"] is True
    stores = run.mocks.of_type(DYNAMIC_TYPES["stored_model"])
    assert {s.inputs["name"] for s in stores} == {"diabetes-ridge", "digits"}
    assert not [r for r in run.mocks.resources if r.typ.startswith("azure-native:")]


@pytest.mark.parametrize("stack", ["local", "dev", "prod"])
def test_every_dynamic_resource_runs_in_the_explicit_local_provider(stack: str, tmp_path: Path) -> None:
    run = run_under_mocks(load_stack(STACKS / f"{stack}.yaml"), tmp_path, stack_name=stack, explicit_provider=True)
    providers = run.mocks.of_type("pulumi:providers:pulumi-python")
    assert [p.name for p in providers] == ["local-resources"]
    dynamic = [r for r in run.mocks.resources if r.typ in DYNAMIC_TYPES.values()]
    assert dynamic, "every example stack has dynamic resources"
    stray = [r.name for r in dynamic if "pulumi:providers:pulumi-python::local-resources::" not in r.provider]
    assert not stray, f"dynamic resources outside the explicit provider: {stray}"


def test_aci_deployment_config_json_keeps_every_mapped_key(tmp_path: Path) -> None:
    """An AML v1 ACI deploymentconfig.json: each key it maps lands on the endpoint (none ignored)."""
    (tmp_path / "deploy.json").write_text(
        json.dumps(
            {
                "computeType": "ACI",
                "containerResourceRequirements": {"cpu": 1.5, "memoryInGB": 3},
                "authEnabled": True,
                "dnsNameLabel": "from-json",
                "location": "westeurope",
                "appInsightsEnabled": True,
            }
        )
    )
    stack = tmp_path / "dev.yaml"
    text = (STACKS / "dev.yaml").read_text().replace("../examples", str(ROOT / "examples"))
    start = text.index("  regression-aci:\n")
    stack.write_text(
        text[:start] + f"  regression-aci:\n    image: regression\n    deployment_config: {tmp_path}/deploy.json\n"
    )
    endpoint = load_stack(stack).endpoints["regression-aci"]
    assert isinstance(endpoint, AciEndpointSpec)
    assert (endpoint.cpu_cores, endpoint.memory_gb, endpoint.auth_enabled) == (1.5, 3, True)
    assert (endpoint.dns_name_label, endpoint.location) == ("from-json", "westeurope")


# --- AksEndpoint with deployments -----------------------------------------------------------------


def test_aks_deployments_run_behind_a_router_the_endpoint_service_selects(tmp_path: Path) -> None:
    run = run_under_mocks(load_stack(routed_prod_stack(tmp_path)), tmp_path / "state", stack_name="prod")
    blue = run.mocks.one("kubernetes:apps/v1:Deployment", "endpoint-regression-blue-deployment").inputs
    assert blue["metadata"]["name"] == "regression-blue"
    selector = {"app.kubernetes.io/name": "regression", "modelplane.io/deployment": "blue"}
    assert blue["spec"]["selector"]["matchLabels"] == selector
    assert "replicas" not in blue["spec"]  # the endpoint's autoscaler, one per deployment
    hpa = run.mocks.one("kubernetes:autoscaling/v2:HorizontalPodAutoscaler", "endpoint-regression-blue-hpa").inputs
    assert (hpa["spec"]["scaleTargetRef"]["name"], hpa["spec"]["minReplicas"]) == ("regression-blue", 2)
    green = run.mocks.one("kubernetes:apps/v1:Deployment", "endpoint-regression-green-deployment").inputs
    assert green["spec"]["replicas"] == 2  # its own num_replicas: no autoscaler
    assert not [h for h in run.mocks.of_type("kubernetes:autoscaling/v2:HorizontalPodAutoscaler") if "green" in h.name]
    backend = run.mocks.one("kubernetes:core/v1:Service", "endpoint-regression-blue-service").inputs["spec"]
    assert (backend["type"], backend["selector"]) == ("ClusterIP", selector)

    config = run.mocks.one("kubernetes:core/v1:ConfigMap", "endpoint-regression-router-config").inputs
    assert "name" not in config["metadata"]  # a new one for each configuration
    assert {k: v for k, v in config["data"].items() if k != "nginx.conf"} == {
        "traffic.blue": "90",
        "traffic.green": "10",
    }
    nginx = config["data"]["nginx.conf"]
    assert "split_clients" in nginx and "add_header azureml-model-deployment $deployment always;" in nginx
    assert "resolver" not in nginx  # Service addresses, nothing to resolve
    router = run.mocks.one("kubernetes:apps/v1:Deployment", "endpoint-regression-router").inputs
    assert router["spec"]["replicas"] == 2
    pod = router["spec"]["template"]["spec"]
    assert pod["containers"][0]["readinessProbe"]["httpGet"] == {"path": "/_modelplane/router", "port": 8080}
    assert pod["volumes"][0]["configMap"]["items"] == [{"key": "nginx.conf", "path": "nginx.conf"}]
    image = run.mocks.one(DYNAMIC_TYPES["image"], "router-image-prod-aks").inputs
    assert image["tag"].endswith("/modelplane-router:" + image["tag"].rsplit(":", 1)[1])
    service = run.mocks.one("kubernetes:core/v1:Service", "endpoint-regression-service").inputs["spec"]
    assert service["selector"] == {"app.kubernetes.io/name": "regression", "app.kubernetes.io/component": "router"}
    assert service["ports"][0]["targetPort"] == 8080
    # No Deployment of the endpoint as a whole: its deployments serve.
    assert not [
        d for d in run.mocks.of_type("kubernetes:apps/v1:Deployment") if d.name == "endpoint-regression-deployment"
    ]


def test_aks_deployment_sizes_stay_within_the_endpoint_limits(tmp_path: Path) -> None:
    stack = routed_prod_stack(tmp_path, green="{image: regression, cpu_cores: 2}")
    stack.write_text(
        stack.read_text().replace("    cpu_cores: 0.5\n", "    cpu_cores: 0.5\n    cpu_cores_limit: 1\n", 1)
    )
    with pytest.raises(SpecError, match=r"cpu_cores_limit \(1.0\) is below deployment green's cpu_cores \(2.0\)"):
        load_stack(stack)
