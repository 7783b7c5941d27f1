"""A corpus of malformed stacks: each names the file, line and field, exits 2, never a traceback."""

from __future__ import annotations

import subprocess
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from modelplane.cli import main
from modelplane.engine import venv_bin

# A valid baseline; each case edits a copy of it (or replaces it).
BASELINE = """\
models:
  ridge:
    path: model
    framework: scikit-learn
images:
  scorer:
    entry_script: score.py
    pip_requirements: requirements.txt
    models: [ridge]
endpoints:
  web:
    image: scorer
    port: 8890
"""

AZURE_BASELINE = """\
target: azure
azure:
  location: eastus
  resource_group: rg
models:
  ridge:
    path: model
images:
  scorer:
    entry_script: score.py
    models: [ridge]
clusters:
  aks:
    cluster_purpose: FAST_PROD
endpoints:
  api:
    compute_type: aks
    cluster: aks
    image: scorer
"""


@dataclass(frozen=True)
class Case:
    id: str
    stack: str
    # (file, line, field path, words of the message) for each problem that must be reported.
    expect: list[tuple[str, int, str, str]]
    files: dict[str, str] = field(default_factory=dict)


def replace(text: str, old: str, new: str) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


DEPLOYMENTS = replace(
    BASELINE,
    "    image: scorer\n    port: 8890\n",
    "    port: 8890\n    deployments:\n      blue: {image: scorer}\n      green: {image: scorer}\n"
    "    traffic: {blue: 90, green: 10}\n",
)

CASES = [
    Case(
        "aks-traffic-without-deployments",
        AZURE_BASELINE + "    traffic: {blue: 100}\n",
        [("stack.yaml", 20, "endpoints.api.traffic", "traffic names 'blue', which is not a deployment")],
    ),
    Case(
        "aks-image-and-deployments",
        AZURE_BASELINE + "    deployments: {blue: {image: scorer}}\n",
        [("stack.yaml", 16, "endpoints.api", "give `image` (one deployment taking all traffic) or `deployments`")],
    ),
    Case(
        "aci-deployments",
        replace(
            AZURE_BASELINE, "    compute_type: aks\n    cluster: aks\n    image: scorer\n", "    compute_type: aci\n"
        )
        + "    deployments: {blue: {image: scorer}}\n",
        [("stack.yaml", 18, "endpoints.api.deployments", "ACI has no traffic split")],
    ),
    Case(
        "traffic-sum",
        replace(DEPLOYMENTS, "green: 10}", "green: 5}"),
        [("stack.yaml", 16, "endpoints.web.traffic", "traffic sums to 95 (blue 90, green 5)")],
    ),
    Case(
        "traffic-unknown-deployment",
        replace(DEPLOYMENTS, "green: 10}", "gren: 10}"),
        [("stack.yaml", 16, "endpoints.web.traffic", "traffic names 'gren', which is not a deployment")],
    ),
    Case(
        "mirror-to-live-deployment",
        DEPLOYMENTS + "    mirror_traffic: {green: 10}\n",
        [("stack.yaml", 17, "endpoints.web.mirror_traffic", "mirror only to a deployment without live traffic")],
    ),
    Case(
        "mirror-above-50",
        replace(DEPLOYMENTS, "{blue: 90, green: 10}", "{blue: 100, green: 0}") + "    mirror_traffic: {green: 60}\n",
        [("stack.yaml", 17, "endpoints.web.mirror_traffic", "at most 50%")],
    ),
    Case(
        "deployments-without-traffic",
        replace(DEPLOYMENTS, "    traffic: {blue: 90, green: 10}\n", ""),
        [("stack.yaml", 11, "endpoints.web", "say where traffic goes (e.g. traffic: {blue: 100})")],
    ),
    Case(
        "image-and-deployments",
        replace(DEPLOYMENTS, "    port: 8890\n", "    image: scorer\n    port: 8890\n"),
        [("stack.yaml", 11, "endpoints.web", "give `image` (one deployment taking all traffic) or `deployments`")],
    ),
    Case(
        "deployment-unknown-image",
        replace(DEPLOYMENTS, "green: {image: scorer}", "green: {image: scorer2}"),
        [("stack.yaml", 15, "endpoints.web.deployments.green.image", "unknown image 'scorer2'")],
    ),
    Case(
        "deployment-name",
        replace(replace(DEPLOYMENTS, "      green:", "      g_1:"), "green: 10", "g_1: 10"),
        [("stack.yaml", 13, "endpoints.web.deployments", "invalid deployment name 'g_1'")],
    ),
    Case(
        "yaml-syntax",
        "models:\n  ridge: path: model\nimages: {}\n",
        [("stack.yaml", 2, "", "mapping values are not allowed")],
    ),
    Case("yaml-tab", "models:\n\tridge: {}\n", [("stack.yaml", 2, "", "invalid YAML")]),
    Case("not-a-mapping", "- models\n- images\n", [("stack.yaml", 1, "", "must be a mapping")]),
    Case("unknown-section", BASELINE + "servies: {}\n", [("stack.yaml", 14, "servies", "unknown field")]),
    Case(
        "unknown-model-field",
        replace(BASELINE, "    framework:", "    framwork:"),
        [("stack.yaml", 4, "models.ridge.framwork", "allowed: description, framework, path, tags")],
    ),
    Case(
        "model-path-type",
        replace(BASELINE, "path: model", "path: [model]"),
        [("stack.yaml", 3, "models.ridge.path", "must be a path, or an azureml:// URI")],
    ),
    Case(
        "model-missing-file",
        replace(BASELINE, "path: model", "path: no-such-model.pkl"),
        [("stack.yaml", 3, "models.ridge.path", "file not found")],
    ),
    Case(
        "bad-framework",
        replace(BASELINE, "framework: scikit-learn", "framework: caffe"),
        [("stack.yaml", 4, "models.ridge.framework", "allowed: scikit-learn")],
    ),
    Case(
        "missing-entry-script",
        replace(BASELINE, "    entry_script: score.py\n", ""),
        [("stack.yaml", 6, "images.scorer.entry_script", "required field is missing")],
    ),
    Case(
        "entry-script-not-found",
        replace(BASELINE, "score.py", "scoring.py"),
        [("stack.yaml", 7, "images.scorer.entry_script", "file not found")],
    ),
    Case(
        "image-unknown-model",
        replace(BASELINE, "models: [ridge]", "models: [ridge, lasso]"),
        [("stack.yaml", 9, "images.scorer.models[1]", "unknown model 'lasso'")],
    ),
    Case(
        "spark-runtime",
        replace(BASELINE, "    models: [ridge]\n", "    models: [ridge]\n    runtime: spark-py\n"),
        [("stack.yaml", 10, "images.scorer.runtime", "spark-py")],
    ),
    Case(
        "conda-and-pip",
        replace(BASELINE, "    models: [ridge]\n", "    models: [ridge]\n    conda_file: env.yml\n"),
        [("stack.yaml", 6, "images.scorer", "conda_file or pip_requirements")],
        {"env.yml": "dependencies: []\n"},
    ),
    Case(
        "cuda-without-gpu",
        replace(BASELINE, "    models: [ridge]\n", "    models: [ridge]\n    cuda_version: '10.0'\n"),
        [("stack.yaml", 6, "images.scorer", "enable_gpu is false")],
    ),
    Case(
        "cuda-version-aml-refuses",
        replace(
            BASELINE,
            "    models: [ridge]\n",
            "    models: [ridge]\n    enable_gpu: true\n    base_image: nvidia/cuda\n    cuda_version: '7.5'\n",
        ),
        [("stack.yaml", 12, "images.scorer.cuda_version", "not one AML supports: 9.0, 9.1, 10.0")],
    ),
    Case(
        "local-gpu-without-cuda-base",
        replace(
            BASELINE, "    models: [ridge]\n", "    models: [ridge]\n    enable_gpu: true\n    cuda_version: '10.0'\n"
        ),
        [("stack.yaml", 6, "images.scorer", "enable_gpu needs a CUDA base_image")],
    ),
    Case(
        "gpu-flag-type",
        replace(BASELINE, "    models: [ridge]\n", "    models: [ridge]\n    enable_gpu: yes please\n"),
        [("stack.yaml", 10, "images.scorer.enable_gpu", "valid boolean")],
    ),
    Case(
        "cluster-purpose-enum",
        replace(AZURE_BASELINE, "FAST_PROD", "PRODUCTION"),
        [("stack.yaml", 14, "clusters.aks.cluster_purpose", "'DEV_TEST' or 'FAST_PROD'")],
    ),
    Case(
        "agent-count-zero",
        replace(AZURE_BASELINE, "    cluster_purpose: FAST_PROD\n", "    agent_count: 0\n"),
        [("stack.yaml", 14, "clusters.aks.agent_count", "greater than or equal to 1")],
    ),
    Case(
        "agent-count-huge",
        replace(AZURE_BASELINE, "    cluster_purpose: FAST_PROD\n", "    agent_count: 101\n"),
        [("stack.yaml", 14, "clusters.aks.agent_count", "less than or equal to 100")],
    ),
    Case(
        "vm-size-type",
        replace(AZURE_BASELINE, "    cluster_purpose: FAST_PROD\n", "    vm_size: 3\n"),
        [("stack.yaml", 14, "clusters.aks.vm_size", "valid string")],
    ),
    Case(
        "service-type-enum",
        replace(AZURE_BASELINE, "    cluster_purpose: FAST_PROD\n", "    service_type: ExternalName\n"),
        [("stack.yaml", 14, "clusters.aks.service_type", "'LoadBalancer', 'ClusterIP' or 'NodePort'")],
    ),
    Case(
        "compute-type-enum",
        replace(BASELINE, "    image: scorer\n", "    compute_type: lambda\n    image: scorer\n"),
        [("stack.yaml", 12, "endpoints.web.compute_type", "local, aci, aks")],
    ),
    Case(
        "endpoint-unknown-image",
        replace(BASELINE, "    image: scorer\n", "    image: scorr\n"),
        [("stack.yaml", 12, "endpoints.web.image", "unknown image 'scorr'; declared images: scorer")],
    ),
    Case(
        "aks-unknown-cluster",
        replace(AZURE_BASELINE, "    cluster: aks\n", "    cluster: prod-aks\n"),
        [("stack.yaml", 18, "endpoints.api.cluster", "unknown cluster 'prod-aks'")],
    ),
    Case(
        "autoscale-min-max",
        AZURE_BASELINE + "    autoscale: {min_replicas: 5, max_replicas: 2}\n",
        [("stack.yaml", 20, "endpoints.api.autoscale", "min_replicas (5) exceeds max_replicas (2)")],
    ),
    Case(
        "autoscale-utilisation",
        AZURE_BASELINE + "    autoscale:\n      target_utilization: 150\n",
        [("stack.yaml", 21, "endpoints.api.autoscale.target_utilization", "less than or equal to 100")],
    ),
    Case(
        "port-collision",
        BASELINE + "  web2:\n    image: scorer\n    port: 8890\n",
        [("stack.yaml", 16, "endpoints.web2.port", "already used by endpoint 'web'")],
    ),
    Case(
        "port-privileged",
        replace(BASELINE, "port: 8890", "port: 80"),
        [("stack.yaml", 13, "endpoints.web.port", "greater than or equal to 1024")],
    ),
    Case(
        "duplicate-endpoint",
        BASELINE + "  web:\n    image: scorer\n",
        [("stack.yaml", 14, "endpoints.web", "duplicate key 'web' (first at line 11)")],
    ),
    Case(
        "invalid-name",
        replace(BASELINE, "  web:\n", "  Web_Service:\n"),
        [("stack.yaml", 11, "endpoints.Web_Service", "invalid name")],
    ),
    Case(
        "name-reused-across-services",
        AZURE_BASELINE + "edge:\n  api:\n    iot_hub: {name: hub}\n    device_id: d1\n    image: scorer\n",
        [("stack.yaml", 21, "edge.api", "already used in endpoints")],
    ),
    Case(
        "deployment-config-bad-json",
        replace(BASELINE, "    port: 8890\n", "    deployment_config: deploy.json\n"),
        [("deploy.json", 3, "", "neither YAML nor JSON")],
        {"deploy.json": '{\n\t"computeType": "local"\n\t"port": 8890\n}\n'},
    ),
    Case(
        "deployment-config-aks-endpoint",
        AZURE_BASELINE + "    deployment_config: deploy.json\n",
        [("deploy.json", 2, "computeType", "AKSENDPOINT")],
        {"deploy.json": '{\n  "computeType": "AKSENDPOINT",\n  "versionName": "v2",\n  "trafficPercentile": 20\n}\n'},
    ),
    Case(
        "deployment-config-unknown-compute-type",
        replace(BASELINE, "    port: 8890\n", "    deployment_config: deploy.json\n"),
        [("deploy.json", 1, "computeType", "allowed: local, ACI, AKS")],
        {"deploy.json": '{"computeType": "VM"}\n'},
    ),
    Case(
        "deployment-config-bad-type",
        AZURE_BASELINE + "    deployment_config: deploy.json\n",
        [("deploy.json", 4, "containerResourceRequirements.cpu", "valid number")],
        {"deploy.json": '{\n  "computeType": "AKS",\n  "containerResourceRequirements": {\n    "cpu": "lots"}\n}\n'},
    ),
    Case(
        "deployment-config-missing",
        replace(BASELINE, "    port: 8890\n", "    deployment_config: nowhere.json\n"),
        [("stack.yaml", 13, "endpoints.web.deployment_config", "file not found: nowhere.json")],
    ),
    Case(
        "inference-config-environment-and-conda-file",
        replace(
            BASELINE,
            "    pip_requirements: requirements.txt\n",
            "    pip_requirements: requirements.txt\n    environment: {name: env}\n",
        ),
        [("stack.yaml", 6, "images.scorer", "environment excludes pip_requirements")],
    ),
    Case(
        "conda-alternatives",
        replace(BASELINE, "    pip_requirements: requirements.txt\n", "    conda_file: env.yml\n"),
        [("env.yml", 3, "dependencies[1]", "no pip equivalent")],
        {"env.yml": "dependencies:\n  - python=3.11\n  - numpy 1.11|1.12\n"},
    ),
    Case(
        "model-name-aml-refuses",
        replace(BASELINE, "  ridge:\n    path: model\n", "  _ridge:\n    path: model\n"),
        [("stack.yaml", 2, "models._ridge", "AML's rule")],
    ),
    Case("empty-stack", "# nothing left after a bad merge\n", [("stack.yaml", 1, "", "declares nothing")]),
    Case("sections-empty", "models:\nimages:\nendpoints:\n", [("stack.yaml", 1, "", "declares nothing")]),
    Case(
        "clusters-as-a-list",
        BASELINE + "clusters:\n  - item\n",
        [("stack.yaml", 14, "clusters", "must be a mapping")],
    ),
    Case(
        "edge-as-a-list",
        BASELINE + "edge:\n  - item\n",
        [("stack.yaml", 14, "edge", "must be a mapping")],
    ),
    Case(
        "fpga-as-a-list",
        BASELINE + "fpga:\n  - item\n",
        [("stack.yaml", 14, "fpga", "must be a mapping")],
    ),
    Case(
        "azure-as-a-list",
        BASELINE + "azure:\n  - item\n",
        [("stack.yaml", 14, "azure", "must be a mapping")],
    ),
    Case(
        "tags-as-a-list",
        BASELINE + "tags:\n  - item\n",
        [("stack.yaml", 14, "tags", "must be a mapping")],
    ),
    Case(
        "models-as-a-list",
        replace(BASELINE, "  ridge:\n    path: model\n    framework: scikit-learn\n", "  - ridge\n"),
        [
            ("stack.yaml", 1, "models", "must be a mapping of names to models"),
            ("stack.yaml", 7, "images.scorer.models[0]", "unknown model"),
        ],
    ),
    Case(
        "images-as-a-list",
        "models:\n  ridge:\n    path: model\nimages:\n  - scorer\nendpoints:\n  web:\n    image: scorer\n",
        [
            ("stack.yaml", 4, "images", "must be a mapping of names to images"),
            ("stack.yaml", 8, "endpoints.web.image", "unknown image"),
        ],
    ),
    Case(
        "endpoints-as-a-list",
        replace(BASELINE, "  web:\n    image: scorer\n    port: 8890\n", "  - web\n"),
        [("stack.yaml", 10, "endpoints", "must be a mapping of names to endpoints")],
    ),
    Case(
        "replicas-and-autoscale",
        AZURE_BASELINE + "    num_replicas: 3\n    autoscale: {enabled: true}\n",
        [("stack.yaml", 16, "endpoints.api", "num_replicas and an enabled autoscale exclude each other")],
    ),
    Case(
        "aci-without-azure",
        replace(BASELINE, "    image: scorer\n    port: 8890\n", "    compute_type: aci\n    image: scorer\n"),
        [("stack.yaml", 12, "endpoints.web.compute_type", "needs `target: azure`")],
    ),
    Case(
        "edge-device-and-condition",
        AZURE_BASELINE + "edge:\n  gateway:\n    iot_hub: {name: hub}\n    device_id: d1\n"
        "    target_condition: tags.x='y'\n    image: scorer\n",
        [("stack.yaml", 21, "edge.gateway", "exactly one of device_id and target_condition")],
    ),
    Case(
        "fpga-unknown-model",
        AZURE_BASELINE + "fpga:\n  accel:\n    model: alexnet\n",
        [("stack.yaml", 22, "fpga.accel.model", "allowed: resnet50")],
    ),
    Case(
        "negative-cpu",
        AZURE_BASELINE + "    cpu_cores: -1\n",
        [("stack.yaml", 20, "endpoints.api.cpu_cores", "greater than 0")],
    ),
    Case(
        "memory-with-unit",
        AZURE_BASELINE + "    memory_gb: 1GB\n",
        [("stack.yaml", 20, "endpoints.api.memory_gb", "valid number")],
    ),
    Case("missing-stack-file", "", [("missing.yaml", 1, "", "file not found")]),
]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "model.pkl").write_bytes(b"weights")
    (tmp_path / "score.py").write_text("def init():\n    pass\n\ndef run(data):\n    return data\n")
    (tmp_path / "requirements.txt").write_text("numpy\n")
    return tmp_path


def test_the_corpus_is_large_enough() -> None:
    assert len(CASES) >= 30
    assert len({case.id for case in CASES}) == len(CASES)


def test_baselines_are_valid(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for text in (BASELINE, AZURE_BASELINE):
        (project / "stack.yaml").write_text(text)
        assert main(["validate", str(project / "stack.yaml")]) == 0, capsys.readouterr().err


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_malformed_stack_is_reported_precisely(case: Case, project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for name, content in case.files.items():
        (project / name).write_text(textwrap.dedent(content))
    stack = project / ("missing.yaml" if case.id == "missing-stack-file" else "stack.yaml")
    if case.stack:
        stack.write_text(case.stack)
    status = main(["validate", str(stack)])
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert status == 2, captured
    assert "Traceback" not in captured.err + captured.out
    for file, line, path, words in case.expect:
        prefix = f"{project / file}:{line}:"
        matching = [text for text in lines if text.startswith(prefix) and (f": {path}: " in text if path else True)]
        assert matching, f"no problem at {prefix} for '{path}' in:\n{captured.err}"
        assert any(words in text for text in matching), f"'{words}' missing from {matching}"


def test_the_console_script_exits_2_without_a_traceback(project: Path) -> None:
    (project / "stack.yaml").write_text(replace(BASELINE, "port: 8890", "port: eighty"))
    result = subprocess.run(
        [venv_bin() / "modelplane", "validate", str(project / "stack.yaml")], capture_output=True, text=True
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith(f"{project / 'stack.yaml'}:13:5: endpoints.web.port: ")


def test_an_aml_file_that_fails_gives_one_error_not_a_second_from_the_stack(project: Path) -> None:
    """The item's own keys (here `cluster`) are not judged as a local endpoint's once its file failed."""
    (project / "stack.yaml").write_text(AZURE_BASELINE + "    deployment_config: deploy.json\n")
    (project / "deploy.json").write_text('{\n  "computeType": "AKS",\n  "autoScaler": {"minReplicas": 1\n')
    result = subprocess.run(
        [venv_bin() / "modelplane", "validate", str(project / "stack.yaml")], capture_output=True, text=True
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(f"{project / 'deploy.json'}:"), result.stderr
