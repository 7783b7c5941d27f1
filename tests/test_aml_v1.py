"""AML v1 files as Azure ML reads them: a corpus of deployment and inference configs written from the keys
azureml-core's `deploy_config_dict_to_obj`, `InferenceConfig` and `Environment` read, each checked for its
effect in the plan (the resources' inputs under mocks), in the image's build context, or for the warning
that names it."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from modelplane.dockerfile import APP_ROOT
from modelplane.plan.mocks import MOCK_INSTRUMENTATION_KEY
from modelplane.source import SpecError
from modelplane.spec import StackSpec, load_stack
from modelplane.spec.aml_v1 import translated_keys
from tests.mocks import MockRun, is_secret, run_under_mocks

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "sklearn-regression"
TLS = ROOT / "examples" / "tls"
AZURE = "target: azure\nazure:\n  location: eastus\n  resource_group: rg\n"
CLUSTER = "clusters:\n  aks:\n    cluster_purpose: DEV_TEST\n"
PRIMARY = "user-chosen-primary-key-0123456789"
SECONDARY = "user-chosen-secondary-key-9876543210"


@dataclass
class Project:
    """A folder as a v1 user has it: score.py, myenv.yml and the model beside the stack."""

    root: Path

    def write(self, name: str, content: Any) -> str:
        text = content if isinstance(content, str) else json.dumps(content, indent=2)
        (self.root / name).write_text(text)
        return name

    def stack(self, endpoint: str, *, image: str = "    inference_config: inferenceconfig.json\n") -> Path:
        head = AZURE + CLUSTER if "compute_type" in endpoint or "deployment_config" in endpoint else ""
        stack = self.root / "stack.yaml"
        stack.write_text(
            f"{head}models:\n  sklearn_regression_model.pkl:\n    path: sklearn_regression_model.pkl\n"
            f"images:\n  scorer:\n{image}    models: [sklearn_regression_model.pkl]\n"
            f"endpoints:\n  web:\n    image: scorer\n{endpoint}"
        )
        return stack


@pytest.fixture
def project(tmp_path: Path) -> Project:
    for name in ("score.py", "myenv.yml"):
        shutil.copy(EXAMPLE / name, tmp_path / name)
    shutil.copy(EXAMPLE / "model" / "sklearn_regression_model.pkl", tmp_path)
    found = Project(tmp_path)
    found.write("inferenceconfig.json", {"entryScript": "score.py", "runtime": "python", "condaFile": "myenv.yml"})
    return found


def deploy_config(project: Project, config: dict[str, Any]) -> StackSpec:
    project.write("deploymentconfig.json", config)
    compute = str(config.get("computeType", "local")).lower()
    cluster = "    cluster: aks\n" if compute == "aks" else ""
    return load_stack(project.stack(f"    deployment_config: deploymentconfig.json\n{cluster}"))


def warnings_of(spec: StackSpec) -> dict[str, str]:
    """Warnings by the field (or AML key) they name."""
    return {warning.path: warning.message for warning in spec.warnings}


def planned(spec: StackSpec, tmp_path: Path) -> MockRun:
    return run_under_mocks(
        spec,
        tmp_path / "state",
        collect=lambda out: {"keys": out.endpoints["web"].keys, "uri": out.endpoints["web"].scoring_uri},
    )


def container_of(run: MockRun) -> dict[str, Any]:
    deployment = run.mocks.one("kubernetes:apps/v1:Deployment", "endpoint-web-deployment").inputs
    return dict(deployment["spec"]["template"]["spec"]["containers"][0])


def build_context(run: MockRun) -> Path:
    return Path(run.mocks.one("pulumi-python:dynamic/docker:Image").inputs["context"])


# --- loading ---------------------------------------------------------------------------------------


def test_a_trailing_comma_loads_as_in_azure_ml(project: Project) -> None:
    project.write("inferenceconfig.json", '{\n  "entryScript": "score.py",\n  "condaFile": "myenv.yml",\n}\n')
    assert load_stack(project.stack("    port: 8890\n")).images["scorer"].conda_file == project.root / "myenv.yml"


def test_tab_indented_json_loads_with_positions(project: Project) -> None:
    project.write("inferenceconfig.json", '{\n\t"entryScript": "score.py",\n\t"schemaFile": "schema.json"\n}\n')
    spec = load_stack(project.stack("    port: 8890\n"))
    (warning,) = spec.warnings
    assert (warning.line, warning.path) == (3, "schemaFile")


def test_a_yaml_deployment_config_loads(project: Project) -> None:
    project.write("deploymentconfig.json", "computeType: local\nport: 8891\n")
    spec = load_stack(project.stack("    deployment_config: deploymentconfig.json\n"))
    assert spec.endpoints["web"].port == 8891  # type: ignore[union-attr]


# --- ACI -------------------------------------------------------------------------------------------


def test_aci_serves_tls_on_443_with_the_certificate_as_secrets(project: Project, tmp_path: Path) -> None:
    shutil.copy(TLS / "demo-only.crt", project.root / "cert.pem")
    shutil.copy(TLS / "demo-only.key", project.root / "key.pem")
    config = {
        "computeType": "ACI",
        "sslEnabled": True,
        "sslCertificate": "cert.pem",
        "sslKey": "key.pem",
        "cname": "scoring.example.com",
    }
    run = planned(deploy_config(project, config), tmp_path)
    group = run.mocks.one("azure-native:containerinstance:ContainerGroup")
    assert group.inputs["ipAddress"]["ports"] == [{"port": 443, "protocol": "TCP"}]
    container = group.inputs["containers"][0]
    assert container["ports"] == [{"port": 443, "protocol": "TCP"}]
    env = {item["name"]: item for item in container["environmentVariables"]}
    assert env["MODELPLANE_PORT"]["value"] == "443"
    for variable in ("MODELPLANE_TLS_CERT", "MODELPLANE_TLS_KEY"):
        assert "secureValue" in env[variable] and "value" not in env[variable]
    assert run.resolved["uri"] == "https://scoring.example.com/score"


def test_aci_user_keys_are_used_and_kept_secret(project: Project, tmp_path: Path) -> None:
    config = {"computeType": "ACI", "authEnabled": True, "keys": {"primaryKey": PRIMARY, "secondaryKey": SECONDARY}}
    spec = deploy_config(project, config)
    assert PRIMARY not in repr(spec)
    run = planned(spec, tmp_path)
    assert run.resolved["keys"] == {"primary_key": PRIMARY, "secondary_key": SECONDARY}
    assert run.secret["keys"] is True
    assert not [r for r in run.mocks.resources if r.typ.endswith("keys:EndpointKeys")], "no key is generated"


def test_aci_one_user_key_and_one_generated(project: Project, tmp_path: Path) -> None:
    run = planned(
        deploy_config(project, {"computeType": "ACI", "authEnabled": True, "keys": {"primaryKey": PRIMARY}}), tmp_path
    )
    assert run.resolved["keys"]["primary_key"] == PRIMARY
    assert run.resolved["keys"]["secondary_key"] not in ("", PRIMARY, None)


def test_aci_vnet_gives_a_private_group_in_the_subnet(project: Project, tmp_path: Path) -> None:
    run = planned(deploy_config(project, {"computeType": "ACI", "vnetName": "net", "subnetName": "aci"}), tmp_path)
    group = run.mocks.one("azure-native:containerinstance:ContainerGroup").inputs
    assert group["ipAddress"]["type"] == "Private"
    assert group["subnetIds"][0]["id"].endswith(
        "/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/net/subnets/aci"
    )


def test_aci_customer_managed_key_encrypts_the_group(project: Project, tmp_path: Path) -> None:
    config = {"computeType": "ACI", "vaultBaseUrl": "https://v.vault.azure.net", "keyName": "k", "keyVersion": "1"}
    group = planned(deploy_config(project, config), tmp_path).mocks.one("azure-native:containerinstance:ContainerGroup")
    assert group.inputs["encryptionProperties"] == {
        "vaultBaseUrl": "https://v.vault.azure.net",
        "keyName": "k",
        "keyVersion": "1",
    }


def test_aci_app_insights_sends_to_the_workspaces_application_insights(project: Project, tmp_path: Path) -> None:
    spec = deploy_config(project, {"computeType": "ACI", "appInsightsEnabled": True})
    assert "appInsightsEnabled" not in warnings_of(spec)
    run = planned(spec, tmp_path)
    group = run.mocks.one("azure-native:containerinstance:ContainerGroup")
    env = {item["name"]: item for item in group.inputs["containers"][0]["environmentVariables"]}
    assert env["AML_APP_INSIGHTS_ENABLED"]["value"] == "true"
    key = env["AML_APP_INSIGHTS_KEY"]
    assert "value" not in key and key["secureValue"] == MOCK_INSTRUMENTATION_KEY


def test_aks_app_insights_reads_the_key_from_a_secret(project: Project, tmp_path: Path) -> None:
    spec = deploy_config(project, {"computeType": "AKS", "appInsightsEnabled": True})
    run = planned(spec, tmp_path)
    deployment = run.mocks.one("kubernetes:apps/v1:Deployment", "endpoint-web-deployment").inputs
    env = {item["name"]: item for item in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["AML_APP_INSIGHTS_ENABLED"]["value"] == "true"
    assert env["AML_APP_INSIGHTS_KEY"]["valueFrom"]["secretKeyRef"]["key"] == "instrumentation-key"
    secret = run.mocks.one("kubernetes:core/v1:Secret", "endpoint-web-app-insights").inputs
    assert secret["stringData"]["instrumentation-key"] == MOCK_INSTRUMENTATION_KEY
    assert is_secret(run.mocks.one("kubernetes:core/v1:Secret", "endpoint-web-app-insights").raw["stringData"])


def test_aci_keys_of_another_compute_type_are_ignored_by_name(project: Project) -> None:
    spec = deploy_config(project, {"computeType": "ACI", "numReplicas": 3, "ComputeTarget": "aks-1"})
    found = warnings_of(spec)
    assert "computeType AKS only" in found["numReplicas"]
    assert "not a key Azure ML reads" in found["ComputeTarget"]


# --- AKS -------------------------------------------------------------------------------------------


def test_aks_gpu_cores_request_gpus(project: Project, tmp_path: Path) -> None:
    run = planned(deploy_config(project, {"computeType": "AKS", "gpuCores": 1}), tmp_path)
    assert container_of(run)["resources"]["limits"]["nvidia.com/gpu"] == "1"


def test_aks_limits_differ_from_requests(project: Project, tmp_path: Path) -> None:
    resources = {"cpu": 0.5, "memoryInGB": 1, "cpuLimit": 2, "memoryInGBLimit": 4}
    run = planned(deploy_config(project, {"computeType": "AKS", "containerResourceRequirements": resources}), tmp_path)
    assert container_of(run)["resources"] == {
        "requests": {"cpu": "500m", "memory": "1024Mi"},
        "limits": {"cpu": "2000m", "memory": "4096Mi"},
    }


def test_aks_a_limit_below_its_request_is_refused(project: Project) -> None:
    resources = {"cpu": 2, "cpuLimit": 1}
    with pytest.raises(SpecError, match="cpu_cores_limit"):
        deploy_config(project, {"computeType": "AKS", "containerResourceRequirements": resources})


def test_aks_scoring_timeout_reaches_the_aml_server(project: Project, tmp_path: Path) -> None:
    run = planned(deploy_config(project, {"computeType": "AKS", "scoringTimeoutMs": 12345}), tmp_path)
    env = {item["name"]: item.get("value") for item in container_of(run)["env"]}
    # SCORING_TIMEOUT_MS is azureml-inference-server-http's own setting (AMLInferenceServerConfig).
    assert env["SCORING_TIMEOUT_MS"] == "12345"


def test_aks_user_keys_go_into_the_keys_secret(project: Project, tmp_path: Path) -> None:
    config = {"computeType": "AKS", "keys": {"primaryKey": PRIMARY, "secondaryKey": SECONDARY}}
    run = planned(deploy_config(project, config), tmp_path)
    secret = run.mocks.one("kubernetes:core/v1:Secret", "endpoint-web-keys-secret")
    assert secret.inputs["stringData"] == {"primary-key": PRIMARY, "secondary-key": SECONDARY}
    assert is_secret(secret.raw["stringData"]) or is_secret(secret.raw["stringData"]["primary-key"])
    assert run.secret["keys"] is True


def test_aks_token_auth_makes_the_gate_ask_for_tokens_signed_with_the_keys(project: Project, tmp_path: Path) -> None:
    spec = deploy_config(project, {"computeType": "AKS", "tokenAuthEnabled": True})
    assert "tokenAuthEnabled" not in warnings_of(spec)
    run = planned(spec, tmp_path)
    assert set(run.resolved["keys"]) == {"primary_key", "secondary_key"}  # they sign the tokens
    deployment = run.mocks.one("kubernetes:apps/v1:Deployment", "endpoint-web-deployment").inputs
    env = {item["name"]: item for item in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["MODELPLANE_AUTH_MODE"]["value"] == "token" and env["MODELPLANE_ENDPOINT"]["value"] == "web"
    assert "secretKeyRef" in env["MODELPLANE_PRIMARY_KEY"]["valueFrom"]


@pytest.mark.parametrize(
    ("key", "value", "words"),
    [
        ("dataCollection", {"storageEnabled": True}, "model data collection"),
        ("maxQueueWaitMs", 100, "socket backlog"),
        ("computeTargetName", "aks-1", "`cluster` names the cluster"),
    ],
)
def test_aks_settings_without_effect_are_named(project: Project, key: str, value: Any, words: str) -> None:
    spec = deploy_config(project, {"computeType": "AKS", key: value})
    found = warnings_of(spec)
    named = key if not isinstance(value, dict) else f"{key}.{next(iter(value))}"
    assert words in found[named], found


def test_aks_namespace_and_autoscaler_are_applied(project: Project, tmp_path: Path) -> None:
    config = {"computeType": "AKS", "namespace": "scoring", "autoScaler": {"minReplicas": 2, "maxReplicas": 4}}
    run = planned(deploy_config(project, config), tmp_path)
    hpa = run.mocks.one("kubernetes:autoscaling/v2:HorizontalPodAutoscaler", "endpoint-web-hpa").inputs
    assert (hpa["metadata"]["namespace"], hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == ("scoring", 2, 4)


# --- inference config and its environment ----------------------------------------------------------


def environment_config(project: Project, environment: dict[str, Any], **extra: Any) -> StackSpec:
    project.write("inferenceconfig.json", {"entryScript": "score.py", "environment": environment, **extra})
    return load_stack(project.stack("    port: 8890\n"))


def test_an_inline_environment_sets_variables_and_installs_its_conda_dependencies(
    project: Project, tmp_path: Path
) -> None:
    environment = {
        "name": "scoring-env",
        "environmentVariables": {"GREETING": 'hello "world"', "MODE": "fast"},
        "python": {
            "userManagedDependencies": False,
            "interpreterPath": "python",
            "condaDependencies": {"dependencies": ["python=3.11", "numpy>=1.16", {"pip": ["joblib==1.5.2"]}]},
        },
        "docker": {"enabled": False, "baseImage": None, "sharedVolumes": True, "arguments": []},
    }
    spec = environment_config(project, environment)
    assert spec.warnings == ()
    context = build_context(planned(spec, tmp_path))
    dockerfile = (context / "Dockerfile").read_text()
    assert 'ENV GREETING="hello \\"world\\""' in dockerfile and 'ENV MODE="fast"' in dockerfile
    assert (context / "environment" / "requirements.txt").read_text().split() == ["numpy>=1.16", "joblib==1.5.2"]


def test_user_managed_dependencies_install_nothing(project: Project, tmp_path: Path) -> None:
    spec = environment_config(
        project, {"python": {"userManagedDependencies": True}, "docker": {"baseImage": "my/base"}}
    )
    context = build_context(planned(spec, tmp_path))
    assert (context / "environment" / "requirements.txt").read_text().strip() == ""
    assert "FROM my/base" in (context / "Dockerfile").read_text()


def test_a_base_dockerfile_starts_the_image(project: Project, tmp_path: Path) -> None:
    base = "FROM debian:bookworm-slim\nRUN apt-get install -y python3-venv\n"
    spec = environment_config(project, {"docker": {"baseDockerfile": base}})
    lines = (build_context(planned(spec, tmp_path)) / "Dockerfile").read_text().splitlines()
    assert lines[2:4] == ["FROM debian:bookworm-slim", "RUN apt-get install -y python3-venv"]


def test_a_registered_environment_is_named_in_a_warning(project: Project) -> None:
    spec = environment_config(project, {"name": "AzureML-sklearn-1.0", "version": "3"})
    assert "registered environment 'AzureML-sklearn-1.0' is not read here" in warnings_of(spec)["environment"]


def test_settings_the_environment_overrides_are_named(project: Project) -> None:
    spec = environment_config(
        project, {"name": "env", "python": {"condaDependencies": {}}}, runtime="spark-py", condaFile="myenv.yml"
    )
    found = warnings_of(spec)
    assert "`environment` is set" in found["runtime"] and "`environment` is set" in found["condaFile"]
    assert spec.images["scorer"].conda_file is None


def test_unknown_inference_config_keys_are_named(project: Project) -> None:
    project.write("inferenceconfig.json", {"entryScript": "score.py", "schemaFile": "s.json", "dependencies": []})
    found = warnings_of(load_stack(project.stack("    port: 8890\n")))
    assert set(found) == {"schemaFile", "dependencies"}


# --- conda files -----------------------------------------------------------------------------------


def test_a_python_pin_the_base_image_cannot_meet_is_named_at_its_line(project: Project) -> None:
    project.write(
        "myenv.yml", "name: old\nchannels:\n  - conda-forge\ndependencies:\n  - python=3.8\n  - numpy>=1.16\n"
    )
    spec = load_stack(project.stack("    port: 8890\n"))
    by_line = {(w.file.rsplit("/", 1)[-1], w.line): w.message for w in spec.warnings}
    assert "python=3.8 is pinned, but no base image here has such a Python" in by_line[("myenv.yml", 5)]
    assert "the image runs Python 3.11.2" in by_line[("myenv.yml", 5)]
    assert "channels are not used" in by_line[("myenv.yml", 2)]


def test_a_python_pin_chooses_the_debian_release_that_carries_it(project: Project, tmp_path: Path) -> None:
    project.write("myenv.yml", "dependencies:\n  - python=3.9\n  - pip:\n    - joblib\n")
    spec = load_stack(project.stack("    port: 8890\n"))
    assert spec.warnings == ()
    dockerfile = (build_context(planned(spec, tmp_path)) / "Dockerfile").read_text()
    assert "FROM modelplane/base:bullseye-py3" in dockerfile


def test_conda_version_specs_keep_their_meaning(project: Project, tmp_path: Path) -> None:
    project.write("myenv.yml", "dependencies:\n  - numpy>=1.16\n  - scikit-learn=1.7\n  - pip:\n    - joblib\n")
    context = build_context(planned(load_stack(project.stack("    port: 8890\n")), tmp_path))
    assert (context / "environment" / "requirements.txt").read_text().split() == [
        "numpy>=1.16",
        "scikit-learn==1.7.*",
        "joblib",
    ]


# --- paths and models ------------------------------------------------------------------------------


def test_paths_follow_source_directory_as_in_aml(project: Project) -> None:
    source = project.root / "src"
    source.mkdir()
    for name in ("score.py", "myenv.yml"):
        shutil.move(project.root / name, source / name)
    project.write(
        "inferenceconfig.json", {"entryScript": "score.py", "condaFile": "myenv.yml", "sourceDirectory": "src"}
    )
    image = load_stack(project.stack("    port: 8890\n")).images["scorer"]
    assert (image.entry_script, image.conda_file) == (source / "score.py", source / "myenv.yml")


def test_a_missing_path_names_the_base_it_was_resolved_against(project: Project) -> None:
    (project.root / "src").mkdir()
    project.write("inferenceconfig.json", {"entryScript": "score.py", "sourceDirectory": "src"})
    with pytest.raises(SpecError) as error:
        load_stack(project.stack("    port: 8890\n"))
    assert "file not found: score.py (resolved against source_directory 'src'" in str(error.value)


def test_a_folder_model_keeps_its_folder_name_where_aml_puts_it(project: Project, tmp_path: Path) -> None:
    folder = project.root / "bidaf_onnx"
    folder.mkdir()
    (folder / "model.onnx").write_bytes(b"onnx")
    stack = (
        project.stack("    port: 8890\n").read_text().replace("path: sklearn_regression_model.pkl", "path: bidaf_onnx")
    )
    (project.root / "stack.yaml").write_text(stack)
    context = build_context(planned(load_stack(project.root / "stack.yaml"), tmp_path))
    (version,) = (context / "models" / "sklearn_regression_model.pkl").iterdir()
    assert (version / "bidaf_onnx" / "model.onnx").read_bytes() == b"onnx"
    dockerfile = (context / "Dockerfile").read_text()
    # One model: AZUREML_MODEL_DIR is its version folder; Model.get_model_path reads AML_APP_ROOT.
    assert f"AZUREML_MODEL_DIR={APP_ROOT}/azureml-models/sklearn_regression_model.pkl/{version.name}" in dockerfile
    assert f"AML_APP_ROOT={APP_ROOT}" in dockerfile


# --- the documentation -----------------------------------------------------------------------------


def test_docs_name_every_aml_key_modelplane_reads() -> None:
    docs = (ROOT / "docs" / "aml-v1.md").read_text()
    missing = [key for table in translated_keys().values() for key in table if f"`{key}`" not in docs]
    assert missing == []


# --- shapes of the public samples a user tries first --------------------------------------------

SAVED_ENVIRONMENT: dict[str, Any] = {
    # What azureml-core's Environment serialises: every section, most of it defaults.
    "name": "sklearn-env",
    "version": None,
    "environmentVariables": {"EXAMPLE_ENV_VAR": "EXAMPLE_VALUE"},
    "python": {
        "userManagedDependencies": False,
        "interpreterPath": "python",
        "condaDependenciesFile": None,
        "baseCondaEnvironment": None,
        "condaDependencies": {
            "name": "project_environment",
            "channels": ["anaconda", "conda-forge"],
            "dependencies": ["python=3.11", {"pip": ["azureml-defaults"]}, "scikit-learn=1.7"],
        },
    },
    "docker": {
        "enabled": False,
        "baseImage": None,
        "baseDockerfile": None,
        "sharedVolumes": True,
        "shmSize": None,
        "arguments": [],
        "baseImageRegistry": {"address": None, "username": None, "password": None},
        "platform": {"os": "Linux", "architecture": "amd64"},
    },
    "spark": {"repositories": [], "packages": [], "precachePackages": True},
    "databricks": {"mavenLibraries": [], "pypiLibraries": [], "rLibraries": [], "jarLibraries": [], "eggLibraries": []},
    "r": None,
    "inferencingStackVersion": None,
}
SAMPLES: list[tuple[str, str, str]] = [
    ("local-port", "deploymentconfig.json", '{"computeType": "local", "port": 32267}'),
    (
        "aci-docs",
        "deploymentconfig.json",
        '{"computeType": "aci", "containerResourceRequirements": {"cpu": 0.5, "memoryInGB": 1.0},'
        ' "authEnabled": true, "sslEnabled": false, "appInsightsEnabled": false}',
    ),
    (
        "aks-yaml-with-comments",
        "deploymentconfig.json",
        "# production\ncomputeType: AKS\nautoScaler:\n    autoscaleEnabled: True\n    minReplicas: 1\n"
        "    maxReplicas: 3\n    refreshPeriodInSeconds: 10\n    targetUtilization: 70\n"
        "containerResourceRequirements:\n    cpu: 1\n    memoryInGB: 0.5\nsslEnabled: False\n"
        "authEnabled: True\nappInsightsEnabled: False\nmaxQueueWaitMs: 500\nscoringTimeoutMs: 5000\n",
    ),
    (
        "inference-yaml-with-empty-keys",
        "inferenceconfig.json",
        "entryScript: score.py\nruntime: python\ncondaFile: myenv.yml\nextraDockerfileSteps:\n"
        "sourceDirectory: .\nenableGpu: False\nbaseImage:\nbaseImageRegistry:\n",
    ),
    (
        "inference-saved-environment",
        "inferenceconfig.json",
        json.dumps({"entryScript": "score.py", "environment": SAVED_ENVIRONMENT}),
    ),
]


@pytest.mark.parametrize(("name", "file", "text"), SAMPLES, ids=[sample[0] for sample in SAMPLES])
def test_public_sample_shapes_load_without_error(project: Project, name: str, file: str, text: str) -> None:
    project.write(file, text)
    is_deployment = file.startswith("deployment")
    cluster = "    cluster: aks\n" if "AKS" in text else ""
    endpoint = f"    deployment_config: deploymentconfig.json\n{cluster}" if is_deployment else "    port: 8890\n"
    spec = load_stack(project.stack(endpoint))
    # Only what the sample sets to something other than AML's defaults is named.
    named = {warning.path for warning in spec.warnings}
    expected = {
        "aks-yaml-with-comments": {"sslEnabled"},
        "inference-saved-environment": {"environment.python.condaDependencies"},
    }.get(name, set())
    assert named <= expected | {"channels"}, spec.warnings


def test_a_bad_key_is_reported_without_its_value(project: Project) -> None:
    with pytest.raises(SpecError) as error:
        deploy_config(project, {"computeType": "ACI", "keys": {"primaryKey": 123456789}})
    assert "keys.primaryKey" in str(error.value) and "123456789" not in str(error.value)


def _key_generation(project: Project, tmp_path: Path, primary: str) -> str:
    config = {"computeType": "AKS", "keys": {"primaryKey": primary, "secondaryKey": SECONDARY}}
    run = planned(deploy_config(project, config), tmp_path / primary)
    deployment = run.mocks.one("kubernetes:apps/v1:Deployment", "endpoint-web-deployment").inputs
    return str(deployment["spec"]["template"]["metadata"]["annotations"]["modelplane.io/key-generation"])


def test_changed_supplied_keys_roll_the_pods_without_showing_the_keys(project: Project, tmp_path: Path) -> None:
    # The pods read their keys once, at start: the pod template must change with the keys.
    before, after = _key_generation(project, tmp_path, PRIMARY), _key_generation(project, tmp_path, PRIMARY + "-new")
    assert before != after
    assert all(key not in before + after for key in (PRIMARY, SECONDARY))


def test_key_rotation_days_without_keys_is_refused_naming_the_endpoint(project: Project) -> None:
    with pytest.raises(SpecError) as raised:
        load_stack(project.stack("    port: 8890\n    auth_enabled: false\n    key_rotation_days: 30\n"))
    assert "key_rotation_days rotates keys, and this endpoint has none" in str(raised.value.problems[0])
