"""`modelplane migrate`: a v1 stack's ACI and AKS endpoints as Azure ML v2 managed online endpoints.

Writes a stack with `compute_type: managed` endpoints (one `blue` deployment each, all traffic) and,
for teams that use the `az ml` CLI, the v2 YAML files of each endpoint, deployment and environment.
Every v1 setting without a v2 equivalent is reported by name with what to do instead; nothing is
dropped in silence. The v2 YAML follows azure-ai-ml's schemas (the tests load it with its loaders).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from modelplane.aml_v2 import code_of, environment_of
from modelplane.constants import PRODUCTION_MIN_INSTANCES, PRODUCTION_MIN_VCPUS, is_production
from modelplane.spec import AciEndpointSpec, AksEndpointSpec, StackSpec
from modelplane.spec.schema import AksDeploymentSpec, ImageSpec, LivenessProbe, path_fields

SCHEMAS = "https://azuremlschemas.azureedge.net/latest"
MIGRATED_DEPLOYMENT = "blue"
PLACEHOLDER_GROUP = "change-me"
# AML v2's general-purpose managed instance types, smallest first: (name, vCPUs, memory GB).
INSTANCE_TYPES = (
    ("Standard_DS2_v2", 2, 7.0),
    ("Standard_DS3_v2", 4, 14.0),
    ("Standard_DS4_v2", 8, 28.0),
    ("Standard_DS5_v2", 16, 56.0),
)
GPU_INSTANCE_TYPES = (("Standard_NC6s_v3", 1), ("Standard_NC12s_v3", 2), ("Standard_NC24s_v3", 4))
MAX_REQUEST_TIMEOUT_MS = 180000
# v1 settings with no v2 equivalent, by endpoint type: what to do instead.
UNMAPPED = {
    "dns_name_label": "a managed endpoint's scoring URI is <name>.<region>.inference.ml.azure.com; map your own DNS "
    "name to it (CNAME)",
    "location": "a managed endpoint runs in the workspace's region",
    "ssl_enabled": "managed endpoints serve HTTPS with Azure's certificate",
    "ssl_cert_pem_file": "managed endpoints serve HTTPS with Azure's certificate",
    "ssl_key_pem_file": "managed endpoints serve HTTPS with Azure's certificate",
    "ssl_cname": "managed endpoints serve HTTPS with Azure's certificate; map your name to the scoring URI",
    "vnet_name": "use public_network_access: disabled with the workspace's private endpoint (network isolation)",
    "subnet_name": "use public_network_access: disabled with the workspace's private endpoint (network isolation)",
    "cmk_vault_base_url": "encrypt the workspace with the customer-managed key instead",
    "cmk_key_name": "encrypt the workspace with the customer-managed key instead",
    "cmk_key_version": "encrypt the workspace with the customer-managed key instead",
    "primary_key": "v2 endpoints generate their keys (regenerate with `az ml online-endpoint regenerate-keys`)",
    "secondary_key": "v2 endpoints generate their keys (regenerate with `az ml online-endpoint regenerate-keys`)",
    "cluster": "a managed endpoint needs no cluster (or use compute_type: kubernetes_online on an attached compute)",
    "namespace": "a managed endpoint has no Kubernetes namespace",
    "cpu_cores_limit": "a managed instance's size is its limit",
    "memory_gb_limit": "a managed instance's size is its limit",
    "collect_model_data": "use the deployment's data_collector (AML v2 model data collection)",
    "compute_target_name": "a managed endpoint needs no compute target",
}


@dataclass
class Migration:
    """What a migration wrote and what it could not carry over."""

    files: list[Path] = field(default_factory=list)
    unmapped: list[str] = field(default_factory=list)
    """`endpoints.NAME.setting: why, and what to do instead`, one per v1 setting left behind."""
    notes: list[str] = field(default_factory=list)
    """Choices made on the way (instance types picked, packages replaced)."""


def instance_type_for(cpu_cores: float, memory_gb: float, gpus: int = 0) -> str:
    """The smallest managed instance type with at least these cores, memory and GPUs."""
    if gpus:
        return next((name for name, count in GPU_INSTANCE_TYPES if count >= gpus), GPU_INSTANCE_TYPES[-1][0])
    for name, cores, memory in INSTANCE_TYPES:
        if cores >= cpu_cores and memory >= memory_gb:
            return name
    return INSTANCE_TYPES[-1][0]


def production_sized(where: str, deployment: dict[str, Any], migration: Migration) -> dict[str, Any]:
    """A production deployment raised to what Azure ML recommends (and the policy pack requires):
    3 instances, 4 vCPUs each."""
    count = max(deployment["instance_count"], PRODUCTION_MIN_INSTANCES)
    cores = next((c for name, c, _ in INSTANCE_TYPES if name == deployment["instance_type"]), PRODUCTION_MIN_VCPUS)
    sized = dict(deployment, instance_count=count)
    if cores < PRODUCTION_MIN_VCPUS:
        sized["instance_type"] = instance_type_for(PRODUCTION_MIN_VCPUS, 0)
    if sized != deployment:
        migration.notes.append(
            f"{where}: production: {sized['instance_count']} x {sized['instance_type']} (Azure ML recommends at least"
            f" {PRODUCTION_MIN_INSTANCES} instances of {PRODUCTION_MIN_VCPUS} vCPUs for production)"
        )
    return sized


def probe_of(probe: LivenessProbe) -> dict[str, int]:
    return {
        "initial_delay": probe.initial_delay_seconds,
        "period": probe.period_seconds,
        "timeout": probe.timeout_seconds,
        "success_threshold": probe.success_threshold,
        "failure_threshold": probe.failure_threshold,
    }


def online_deployment(
    name: str,
    endpoint: AciEndpointSpec | AksEndpointSpec,
    migration: Migration,
    served: AksDeploymentSpec | None = None,
) -> dict[str, Any]:
    """A v1 endpoint's settings as one v2 deployment's (the stack's `deployments.blue`); `served`: one of
    an AKS endpoint's named deployments, with its own image and sizing."""
    where = f"endpoints.{name}"
    gpus = endpoint.gpu_cores if isinstance(endpoint, AksEndpointSpec) else 0
    cpu = (served.cpu_cores if served else None) or endpoint.cpu_cores
    memory = (served.memory_gb if served else None) or endpoint.memory_gb
    instance_type = instance_type_for(cpu, memory, gpus)
    migration.notes.append(
        f"{where}: instance_type {instance_type} holds cpu_cores {cpu}, memory_gb {memory}"
        + (f", gpu_cores {gpus}" if gpus else "")
    )
    image = served.image if served else endpoint.image
    instances = (served.num_replicas if served else None) or 1
    deployment: dict[str, Any] = {"image": image, "instance_type": instance_type, "instance_count": instances}
    if endpoint.enable_app_insights:
        deployment["app_insights_enabled"] = True
    if isinstance(endpoint, AksEndpointSpec):
        deployment.update(_aks_settings(where, endpoint, migration))
    return deployment


def _aks_settings(where: str, endpoint: AksEndpointSpec, migration: Migration) -> dict[str, Any]:
    timeout = min(endpoint.scoring_timeout_ms, MAX_REQUEST_TIMEOUT_MS)
    if timeout != endpoint.scoring_timeout_ms:
        migration.unmapped.append(f"{where}.scoring_timeout_ms: AML v2 allows at most {MAX_REQUEST_TIMEOUT_MS} ms")
    settings: dict[str, Any] = {
        "request_settings": {
            "request_timeout_ms": timeout,
            "max_concurrent_requests_per_instance": endpoint.replica_max_concurrent_requests,
            "max_queue_wait_ms": endpoint.max_request_wait_time,
        },
        "liveness_probe": probe_of(endpoint.liveness_probe),
    }
    scaling = endpoint.scaling
    if endpoint.num_replicas is not None:
        settings["instance_count"] = endpoint.num_replicas
    elif scaling is not None:
        settings["instance_count"] = scaling.min_replicas
        migration.unmapped.append(
            f"{where}.autoscale: managed deployments autoscale through Azure Monitor; instance_count starts at"
            f" min_replicas ({scaling.min_replicas}); add an autoscale setting for {scaling.min_replicas}-"
            f"{scaling.max_replicas} instances at {scaling.target_utilization}% CPU (`az monitor autoscale create`)"
        )
    return settings


def online_endpoint(
    name: str, endpoint: AciEndpointSpec | AksEndpointSpec, migration: Migration, production: bool = False
) -> dict[str, Any]:
    """A v1 endpoint as a v2 managed endpoint in the stack, its unmapped settings reported."""
    where = f"endpoints.{name}"
    given = endpoint.model_dump(exclude_defaults=True)
    migration.unmapped += [f"{where}.{key}: {UNMAPPED[key]}" for key in UNMAPPED if key in given]
    auth_mode = "key"
    if isinstance(endpoint, AksEndpointSpec) and endpoint.token_auth_enabled:
        auth_mode = "aml_token"
    elif not (endpoint.key_auth if isinstance(endpoint, AksEndpointSpec) else endpoint.auth_enabled):
        migration.unmapped.append(f"{where}.auth_enabled: false: v2 endpoints always authenticate (auth_mode key)")
    migrated: dict[str, Any] = {"compute_type": "managed", "auth_mode": auth_mode}
    if endpoint.description:
        migrated["description"] = endpoint.description
    if endpoint.tags:
        migrated["tags"] = dict(endpoint.tags)
    migrated.update(online_deployments(name, endpoint, migration, production))
    return migrated


def online_deployments(
    name: str, endpoint: AciEndpointSpec | AksEndpointSpec, migration: Migration, production: bool
) -> dict[str, Any]:
    """`deployments`, `traffic` and `mirror_traffic` of the v2 endpoint: an AKS endpoint's named
    deployments keep their names and shares; a single deployment becomes MIGRATED_DEPLOYMENT."""
    if isinstance(endpoint, AksEndpointSpec) and endpoint.routed:
        declared = {d: online_deployment(name, endpoint, migration, served) for d, served in endpoint.serving.items()}
        shares: dict[str, Any] = {"traffic": endpoint.live_traffic}
        if endpoint.mirror_traffic:
            shares["mirror_traffic"] = dict(endpoint.mirror_traffic)
    else:
        declared = {MIGRATED_DEPLOYMENT: online_deployment(name, endpoint, migration)}
        shares = {"traffic": {MIGRATED_DEPLOYMENT: 100}}
    if production:
        where = f"endpoints.{name}"
        declared = {d: production_sized(where, deployment, migration) for d, deployment in declared.items()}
    return {"deployments": declared, **shares}


def relative(path: Path, base: Path) -> str:
    return Path(os.path.relpath(path, base)).as_posix()


def stack_data(spec: StackSpec, out: Path, migration: Migration, beside_v1: bool = True) -> dict[str, Any]:
    """The migrated stack, its paths relative to `out` (source-relative ones to their source folder)."""
    data = spec.model_dump(mode="json", exclude_unset=True, exclude={"source", "name", "warnings"})
    for name, model in spec.models.items():
        if isinstance(model.path, Path):
            data["models"][name]["path"] = relative(model.path, out)
    for name, image in spec.images.items():
        data["images"][name].update(_image_paths(image, out))
    endpoints: dict[str, Any] = data.get("endpoints", {})
    for name, endpoint in spec.endpoints.items():
        if isinstance(endpoint, AciEndpointSpec | AksEndpointSpec):
            endpoints[name] = online_endpoint(name, endpoint, migration, is_production(spec.tags.get("environment")))
    if spec.azure is not None and beside_v1:
        data["azure"].update(_workspace_beside(spec, migration))
    used = {e.cluster for e in spec.endpoints.values() if isinstance(e, AksEndpointSpec)}
    for cluster in used - {f.cluster for f in spec.fpga.values()}:
        data["clusters"].pop(cluster, None)
        migration.notes.append(f"clusters.{cluster}: dropped: managed endpoints need no cluster")
    migration.unmapped += [f"fpga.{name}: Azure ML retired FPGA (Project Brainwave) deployment" for name in spec.fpga]
    return {key: value for key, value in data.items() if value not in ({}, None)}


def _workspace_beside(spec: StackSpec, migration: Migration) -> dict[str, Any]:
    """Where the v2 stack lives so that it serves beside the v1 stack until v1 is retired: a resource
    group and workspace of its own when v1 created them (two stacks must not own one resource)."""
    assert spec.azure is not None
    if spec.azure.workspace.existing is not None:
        for name in spec.models:
            migration.notes.append(
                f"models.{name}: the v1 stack registers it in the same existing workspace; apply the v2 stack once"
                " the v1 stack no longer declares it (a stack must not take over another's registration)"
            )
        return {}
    group = f"{spec.azure.resource_group}-v2"
    workspace = f"{spec.azure.workspace.name or f'{spec.name}-ws'}-v2"
    migration.notes.append(
        f"azure: resource group {group} and workspace {workspace} of its own, so v1 and v2 serve side by side;"
        " destroy the v1 stack once the v2 endpoints serve"
    )
    return {
        "resource_group": group,
        "workspace": {**spec.azure.workspace.model_dump(exclude_unset=True), "name": workspace},
    }


def _image_paths(image: ImageSpec, out: Path) -> dict[str, str]:
    paths: dict[str, str] = {}
    for key, marker in path_fields(ImageSpec).items():
        value = getattr(image, key)
        if value is None:
            continue
        base = getattr(image, marker.relative_to) if marker.relative_to else None
        paths[key] = relative(value, base) if base is not None else relative(value, out)
    return paths


def write_yaml(path: Path, data: Any, migration: Migration, header: str = "") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header + yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    migration.files.append(path)


def cli_files(spec: StackSpec, endpoints: dict[str, Any], folder: Path, migration: Migration) -> None:
    """The `az ml` YAML of each migrated endpoint: endpoint (headed by the commands that deploy it),
    deployments, environments and conda files."""
    for name, endpoint in endpoints.items():
        where = folder / name
        commands = "".join(f"# {command}\n" for command in deploy_commands(name, endpoint))
        write_yaml(where / "endpoint.yml", endpoint_yaml(name, endpoint), migration, header=commands)
        for deployment_name, deployment in endpoint["deployments"].items():
            image_name = deployment["image"]
            environment = environment_yaml(spec, image_name, where, migration)
            write_yaml(where / f"{image_name}-environment.yml", environment, migration)
            body = {
                **deployment_yaml(spec, name, deployment_name, deployment, where),
                "environment": _inline(environment),
            }
            write_yaml(where / f"{deployment_name}-deployment.yml", body, migration)


def _inline(environment: dict[str, Any]) -> dict[str, Any]:
    """An environment as a deployment carries it (anonymous: no name, no version)."""
    return {key: value for key, value in environment.items() if key in ("image", "conda_file")}


def endpoint_yaml(name: str, endpoint: dict[str, Any]) -> dict[str, Any]:
    found = {
        "$schema": f"{SCHEMAS}/managedOnlineEndpoint.schema.json",
        "name": name,
        "auth_mode": endpoint["auth_mode"],
    }
    for key in ("description", "tags"):
        if key in endpoint:
            found[key] = endpoint[key]
    return found


def deployment_yaml(
    spec: StackSpec, endpoint_name: str, name: str, deployment: dict[str, Any], folder: Path
) -> dict[str, Any]:
    image = spec.images[deployment["image"]]
    code = code_of(image)
    found: dict[str, Any] = {
        "$schema": f"{SCHEMAS}/managedOnlineDeployment.schema.json",
        "name": name,
        "endpoint_name": endpoint_name,
    }
    if image.models:
        model = spec.models[image.models[0]].path
        found["model"] = {"path": relative(model, folder) if isinstance(model, Path) else model}
    found["code_configuration"] = {"code": relative(code.folder, folder), "scoring_script": code.scoring_script}
    found.update({k: v for k, v in deployment.items() if k != "image"})
    return found


def environment_yaml(spec: StackSpec, image_name: str, folder: Path, migration: Migration) -> dict[str, Any]:
    """A v2 environment file and its conda file (written beside it)."""
    environment = environment_of(spec.images[image_name], f"{image_name}-env")
    found: dict[str, Any] = {
        "$schema": f"{SCHEMAS}/environment.schema.json",
        "name": f"{image_name}-env",
        "version": environment.version,
        "image": environment.image,
    }
    if environment.conda is not None:
        conda_file = folder / f"{image_name}-conda.yml"
        write_yaml(conda_file, environment.conda, migration)
        found["conda_file"] = conda_file.name
    migration.notes += [f"images.{image_name}: {note}" for note in environment.notes]
    return found


def deploy_commands(name: str, endpoint: dict[str, Any]) -> list[str]:
    """The `az ml` commands that create the endpoint from these files (traffic last: it needs the deployments)."""
    commands = [f"az ml online-endpoint create -f {name}/endpoint.yml"]
    commands += [f"az ml online-deployment create -f {name}/{d}-deployment.yml" for d in endpoint["deployments"]]
    shares = ",".join(f"{d}={share}" for d, share in endpoint.get("traffic", {}).items())
    commands.append(f'az ml online-endpoint update -n {name} --traffic "{shares}"')
    return commands


def migrate(spec: StackSpec, out: Path, beside_v1: bool = True) -> Migration:
    """Write `<out>/<stack>-v2.yaml` and `<out>/azureml/…`; return what was written and left behind.
    `beside_v1`: a v1 stack keeps serving, so the v2 stack must not take over what it owns."""
    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    migration = Migration()
    data = stack_data(spec, out, migration, beside_v1)
    header = f"# {spec.name} on Azure ML v2 (modelplane migrate from {spec.source.name}).\n"
    write_yaml(out / f"{spec.name}-v2.yaml", data, migration, header=header)
    migrated = {
        name: endpoint
        for name, endpoint in data.get("endpoints", {}).items()
        if isinstance(spec.endpoints[name], AciEndpointSpec | AksEndpointSpec)
    }
    cli_files(spec, migrated, out / "azureml", migration)
    if not migrated:
        migration.notes.append(
            "no ACI or AKS endpoint to migrate: local endpoints already take deployments and traffic as v2 does"
        )
    return migration


def v1_files_stack(
    inference_config: Path, deployment_config: Path, models: list[Path], name: str, out: Path
) -> tuple[Path, list[str]]:
    """A stack that names a pair of AML v1 files (what `az ml model deploy --ic --dc` took), written to
    `out` so that it loads like any other; and what the user must fill in."""
    out.mkdir(parents=True, exist_ok=True)
    try:
        compute = str(json.loads(deployment_config.read_text(encoding="utf-8")).get("computeType", "")).lower()
    except (OSError, ValueError):
        compute = ""  # load_stack reports the file, with its line
    endpoint: dict[str, Any] = {"deployment_config": relative(deployment_config.resolve(), out), "image": name}
    data: dict[str, Any] = {
        "target": "azure",
        "azure": {"resource_group": PLACEHOLDER_GROUP},
        "models": {path.name: {"path": relative(path.resolve(), out)} for path in models},
        "images": {
            name: {
                "inference_config": relative(inference_config.resolve(), out),
                "source_directory": relative(inference_config.resolve().parent, out),
                "models": [path.name for path in models],
            }
        },
        "endpoints": {name: endpoint},
    }
    if compute in ("aks", "aksendpoint"):
        data["clusters"] = {"aks": {}}
        endpoint["cluster"] = "aks"
    stack = out / f"{name}.yaml"
    stack.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    todo = [
        f"azure.resource_group: '{PLACEHOLDER_GROUP}' stands in for your resource group; azure.workspace.name"
        f" (default {name}-v2-ws) and azure.location (default eastus) are yours to set"
    ]
    if not models:
        todo.append("models: none given (--model PATH): the deployment gets no model")
    return stack, todo
