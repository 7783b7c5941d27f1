"""`modelplane migrate`: v1 stacks and files as Azure ML v2 online endpoints. What it writes is
loaded with azure-ai-ml's own v2 loaders: what Microsoft's parser accepts is the bar."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pytest
import yaml

# azure-ai-ml's schemas warn about marshmallow 4 as they load: its own matter, not what is tested here.
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from azure.ai.ml import load_environment, load_online_deployment, load_online_endpoint
    from azure.ai.ml.entities import ManagedOnlineDeployment, ManagedOnlineEndpoint

from modelplane.cli import main
from modelplane.migrate import migrate
from modelplane.plan import evaluate, record
from modelplane.plan.mocks import plain
from modelplane.spec import load_stack
from modelplane.spec.schema import OnlineEndpointSpec
from policies.rules import Resource
from tests.mocks import routed_prod_stack

ROOT = Path(__file__).resolve().parent.parent
STACKS = ROOT / "stacks"
DIGITS = ROOT / "examples" / "digits-classifier"
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning")


@pytest.fixture(scope="module")
def prod(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("prod-v2")
    migrate(load_stack(STACKS / "prod.yaml"), out)
    return out


def test_every_written_file_loads_with_azure_mls_own_loaders(prod: Path) -> None:
    endpoint = load_online_endpoint(prod / "azureml" / "regression" / "endpoint.yml")
    assert isinstance(endpoint, ManagedOnlineEndpoint)
    assert (endpoint.name, endpoint.auth_mode) == ("regression", "aml_token")  # token_auth_enabled in v1
    deployment = load_online_deployment(prod / "azureml" / "regression" / "blue-deployment.yml")
    assert isinstance(deployment, ManagedOnlineDeployment)
    assert (deployment.endpoint_name, deployment.instance_type, deployment.instance_count) == (
        "regression",
        "Standard_DS3_v2",
        3,
    )
    assert deployment.request_settings.request_timeout_ms == 60000
    assert deployment.liveness_probe.initial_delay == 30
    assert deployment.code_configuration.scoring_script == "score.py"
    environment = load_environment(prod / "azureml" / "regression" / "regression-environment.yml")
    assert environment.image.startswith("mcr.microsoft.com/azureml/")
    pip = next(d["pip"] for d in environment.conda_file["dependencies"] if isinstance(d, dict))
    assert "azureml-inference-server-http" in pip and "scikit-learn==1.7.2" in pip


def test_azure_ml_loads_every_yaml_file_migrate_writes(prod: Path) -> None:
    loaders = {"endpoint.yml": load_online_endpoint, "-deployment.yml": load_online_deployment}
    loaders["-environment.yml"] = load_environment
    written = sorted((prod / "azureml").rglob("*.yml"))
    loaded = [
        next(load for suffix, load in loaders.items() if path.name.endswith(suffix))(path)
        for path in written
        if not path.name.endswith("-conda.yml")
    ]
    assert len(loaded) == 6  # two endpoints: endpoint, deployment, environment each


def test_the_paths_written_point_at_the_users_files(prod: Path) -> None:
    folder = prod / "azureml" / "digits"
    deployment = yaml.safe_load((folder / "blue-deployment.yml").read_text())
    assert (folder / deployment["model"]["path"]).resolve() == DIGITS / "model" / "digits_model.pkl"
    assert (folder / deployment["code_configuration"]["code"]).resolve() == DIGITS
    assert (folder / deployment["environment"]["conda_file"]).is_file()
    conda = yaml.safe_load((folder / "digits-conda.yml").read_text())
    pip = next(d["pip"] for d in conda["dependencies"] if isinstance(d, dict))
    assert "scikit-learn==1.7.2" in pip  # from requirements.txt


def test_the_migrated_stack_plans_offline_and_passes_the_production_policies(prod: Path) -> None:
    spec = load_stack(prod / "prod-v2.yaml")
    assert {e.compute_type for e in spec.endpoints.values()} == {"managed"}
    assert "prod-aks" not in spec.clusters
    # A resource group and workspace of its own: the v1 stack keeps serving until it is destroyed.
    assert spec.azure is not None
    assert (spec.azure.resource_group, spec.azure.workspace.name) == ("modelplane-prod-v2", "modelplane-prod-ws-v2")
    mocks = record(spec, "prod-v2")
    resources = [Resource(r.typ, r.name, plain(r.raw)) for r in mocks.resources]
    verdicts = evaluate(resources, ROOT / "policies" / "config" / "prod.json")
    assert [v for v in verdicts if v.level == "mandatory"] == []


def aci_stack(tmp_path: Path, **settings: Any) -> Path:
    data = yaml.safe_load((STACKS / "dev.yaml").read_text().replace("../examples", str(ROOT / "examples")))
    data["endpoints"]["regression-aci"].update(settings)
    path = tmp_path / "dev.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_each_v1_setting_without_a_v2_equivalent_is_named(tmp_path: Path) -> None:
    stack = aci_stack(tmp_path, vnet_name="vnet", subnet_name="aci", auth_enabled=False, primary_key="k" * 32)
    migration = migrate(load_stack(stack), tmp_path / "out")
    named = {line.split(":")[0] for line in migration.unmapped}
    assert named == {
        "endpoints.regression-aci.dns_name_label",
        "endpoints.regression-aci.vnet_name",
        "endpoints.regression-aci.subnet_name",
        "endpoints.regression-aci.primary_key",
        "endpoints.regression-aci.auth_enabled",
    }
    written = (tmp_path / "out" / "dev-v2.yaml").read_text()
    assert "k" * 32 not in written


def test_v1_files_migrate_from_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "migrate",
            "--inference-config",
            str(DIGITS / "inferenceconfig.json"),
            "--deployment-config",
            str(DIGITS / "deploymentconfig.aks.json"),
            "--model",
            str(DIGITS / "model" / "digits_model.pkl"),
            "--name",
            "digits",
            "--out",
            str(tmp_path),
        ]
    )
    printed = capsys.readouterr().out
    assert code == 0
    assert "endpoints.digits.autoscale: managed deployments autoscale through Azure Monitor" in printed
    assert "azure.resource_group: 'change-me'" in printed
    deployment = load_online_deployment(tmp_path / "azureml" / "digits" / "blue-deployment.yml")
    assert deployment.request_settings.max_concurrent_requests_per_instance == 2
    assert deployment.instance_count == 2
    assert load_stack(tmp_path / "digits-v2.yaml").endpoints["digits"].compute_type == "managed"


def test_migrate_without_a_source_says_what_it_needs(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["migrate"]) == 2
    assert "give --stack NAME, --file PATH, or --inference-config F --deployment-config F" in capsys.readouterr().err


def test_an_aks_endpoints_deployments_keep_their_names_and_shares(tmp_path: Path) -> None:
    stack = routed_prod_stack(tmp_path, "{image: regression, num_replicas: 2}", "90, 10")
    text = stack.read_text().replace("    traffic: {blue: 90, green: 10}\n", "    traffic: {blue: 100, green: 0}\n", 1)
    stack.write_text(text.replace("green: 0}\n", "green: 0}\n    mirror_traffic: {green: 20}\n", 1))
    out = tmp_path / "v2"
    migrate(load_stack(stack), out)
    endpoint = load_stack(out / "prod-v2.yaml").endpoints["regression"]
    assert isinstance(endpoint, OnlineEndpointSpec)
    assert {name: d.image for name, d in endpoint.deployments.items()} == {"blue": "regression", "green": "regression"}
    assert endpoint.deployments["green"].instance_count == 3  # a production stack: AML's recommended three
    assert (endpoint.traffic, endpoint.mirror_traffic) == ({"blue": 100, "green": 0}, {"green": 20})
