"""Batch jobs on Azure (an AmlCompute cluster and a v2 batch endpoint) under Pulumi's mocks, their
policies, and the batch settings each target ignores."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from modelplane.source import SpecError
from modelplane.spec import load_stack
from modelplane.spec.schema import BatchSpec
from tests.mocks import MockRun, run_under_mocks

ROOT = Path(__file__).resolve().parent.parent
V2_STACK = ROOT / "stacks" / "dev-v2.yaml"
DEPLOYMENT = "azure-native:machinelearningservices:BatchDeployment"
COMPUTE = "azure-native:machinelearningservices:Compute"


@pytest.fixture(scope="module")
def azure(tmp_path_factory: pytest.TempPathFactory) -> MockRun:
    return run_under_mocks(load_stack(V2_STACK), tmp_path_factory.mktemp("state"))


def test_the_job_runs_on_an_aml_compute_cluster_that_scales_to_zero(azure: MockRun) -> None:
    compute = azure.mocks.one(COMPUTE).inputs
    assert compute["properties"]["computeType"] == "AmlCompute"
    cluster = compute["properties"]["properties"]
    assert cluster["vmSize"] == "Standard_DS3_v2" and cluster["vmPriority"] == "LowPriority"
    assert cluster["scaleSettings"] == {"minNodeCount": 0, "maxNodeCount": 4, "nodeIdleTimeBeforeScaleDown": "PT120S"}
    assert 2 <= len(compute["computeName"]) <= 16


def test_the_deployment_carries_the_parallel_run_settings(azure: MockRun) -> None:
    deployment = azure.mocks.one(DEPLOYMENT).inputs["properties"]
    assert deployment["miniBatchSize"] == 10
    assert deployment["errorThreshold"] == 5
    assert deployment["outputAction"] == "AppendRow"
    assert deployment["outputFileName"] == "predictions.csv"
    assert deployment["retrySettings"] == {"maxRetries": 3, "timeout": "PT60S"}
    assert deployment["resources"] == {"instanceCount": 2}
    assert deployment["compute"] == "batch-diabetes-nightly-compute-id"
    assert deployment["model"] == {"referenceType": "Id", "assetId": "model-diabetes-ridge-version-id"}
    assert deployment["codeConfiguration"]["scoringScript"] == "score_batch.py"


def test_azure_builds_the_batch_environment_not_this_machine(azure: MockRun) -> None:
    built = [r.inputs["tag"] for r in azure.mocks.of_type("pulumi-python:dynamic/docker:Image")]
    assert built == []


def stack_with(tmp_path: Path, target: str, **job: Any) -> Path:
    data = yaml.safe_load(V2_STACK.read_text().replace("../examples", str(ROOT / "examples")))
    data["batch"]["diabetes-nightly"].update(job)
    if target == "local":
        data = {key: data[key] for key in ("models", "images", "batch")}
        data["batch"]["diabetes-nightly"]["input"] = str(ROOT / "examples" / "batch-scoring" / "data")
    path = tmp_path / "stack.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_settings_the_target_cannot_honour_are_named(tmp_path: Path) -> None:
    local = load_stack(stack_with(tmp_path, "local"))
    assert any("batch.diabetes-nightly.compute" in str(w) and "has no effect here" in str(w) for w in local.warnings)
    assert any("batch.diabetes-nightly.instance_count" in str(w) for w in local.warnings)
    on_azure = load_stack(stack_with(tmp_path, "azure", mini_batch_size="1MB", cpu_cores=2))
    warnings = [str(w) for w in on_azure.warnings]
    assert any("batch.diabetes-nightly.mini_batch_size" in w and "count files" in w for w in warnings)
    assert any("batch.diabetes-nightly.cpu_cores" in w for w in warnings)


@pytest.mark.parametrize(
    ("size", "expected"), [(10, None), ("1MB", 1024**2), ("512 KB", 512 * 1024), ("2gb", 2 * 1024**3)]
)
def test_mini_batch_size_is_a_count_or_an_aml_size(size: int | str, expected: int | None) -> None:
    assert BatchSpec(image="x", mini_batch_size=size).mini_batch_bytes == expected


def test_a_size_that_is_neither_is_refused() -> None:
    with pytest.raises(ValueError, match="is a count \\(10\\) or a size such as '1MB'"):
        BatchSpec(image="x", mini_batch_size="lots")


def test_a_job_may_name_an_aml_v1_inference_config_and_its_models(tmp_path: Path) -> None:
    config = tmp_path / "inferenceconfig.json"
    config.write_text(
        '{"entryScript": "score_batch.py", "sourceDirectory": "%s", "condaFile": "environment.yml"}'
        % (ROOT / "examples" / "batch-scoring")
    )
    job: dict[str, Any] = {"inference_config": str(config), "models": ["ridge"], "mini_batch_size": 20}
    data = {
        "models": {"ridge": {"path": str(ROOT / "examples" / "sklearn-regression" / "model")}},
        "batch": {"nightly": job},
    }
    stack = tmp_path / "stack.yaml"
    stack.write_text(yaml.safe_dump(data))
    spec = load_stack(stack)
    assert spec.batch["nightly"].image == "nightly-batch"
    assert spec.images["nightly-batch"].entry_script == ROOT / "examples" / "batch-scoring" / "score_batch.py"
    assert spec.images["nightly-batch"].models == ["ridge"]
    job["image"] = "other"
    stack.write_text(yaml.safe_dump(data))
    with pytest.raises(SpecError, match="give `image` or `inference_config`"):
        load_stack(stack)
