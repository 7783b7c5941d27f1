"""AML v1 files → the stack's fields: `inference_config: inferenceconfig.json` on an image and
`deployment_config: deploymentconfig.json` on an endpoint are read, translated from AML's camelCase
keys into the same fields as the stack's own, and merged under the item's own keys.

Each translated field remembers where it came from, so a problem in it is reported against the AML
file's line (`positions.Origins`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from modelplane.source import Document, PathKey, Problem, SpecError, load_document
from modelplane.spec.positions import Origins, display
from modelplane.spec.references import resolve_paths
from modelplane.spec.schema import ImageSpec

INFERENCE_CONFIG_KEYS = {
    "entryScript": "entry_script",
    "runtime": "runtime",
    "condaFile": "conda_file",
    "extraDockerfileSteps": "extra_docker_file_steps",
    "extraDockerFileSteps": "extra_docker_file_steps",
    "sourceDirectory": "source_directory",
    "enableGpu": "enable_gpu",
    "baseImage": "base_image",
    "baseImageRegistry": "base_image_registry",
    "cudaVersion": "cuda_version",
    "description": "description",
}
# Keys AML wrote that have no meaning here; accepted so that users' files work unchanged.
INFERENCE_CONFIG_IGNORED = {"schemaFile", "dependencies", "sourceDirectoryData", "environment"}

DEPLOYMENT_CONFIG_KEYS: dict[str, PathKey] = {
    "computeType": ("compute_type",),
    "containerResourceRequirements.cpu": ("cpu_cores",),
    "containerResourceRequirements.memoryInGB": ("memory_gb",),
    "containerResourceRequirements.gpu": ("gpu_cores",),
    "authEnabled": ("auth_enabled",),
    "tokenAuthEnabled": ("token_auth_enabled",),
    "autoScaler.autoscaleEnabled": ("autoscale", "enabled"),
    "autoScaler.minReplicas": ("autoscale", "min_replicas"),
    "autoScaler.maxReplicas": ("autoscale", "max_replicas"),
    "autoScaler.targetUtilization": ("autoscale", "target_utilization"),
    "autoScaler.refreshPeriodInSeconds": ("autoscale", "refresh_seconds"),
    "scoringTimeoutMs": ("scoring_timeout_ms",),
    "maxConcurrentRequestsPerContainer": ("replica_max_concurrent_requests",),
    "maxQueueWaitMs": ("max_request_wait_time",),
    "numReplicas": ("num_replicas",),
    "livenessProbeRequirements.periodSeconds": ("liveness_probe", "period_seconds"),
    "livenessProbeRequirements.initialDelaySeconds": ("liveness_probe", "initial_delay_seconds"),
    "livenessProbeRequirements.timeoutSeconds": ("liveness_probe", "timeout_seconds"),
    "livenessProbeRequirements.successThreshold": ("liveness_probe", "success_threshold"),
    "livenessProbeRequirements.failureThreshold": ("liveness_probe", "failure_threshold"),
    "namespace": ("namespace",),
    "port": ("port",),
    "dnsNameLabel": ("dns_name_label",),
    "location": ("location",),
    "sslEnabled": ("ssl_enabled",),
    "description": ("description",),
    "tags": ("tags",),
}
DEPLOYMENT_CONFIG_IGNORED = {
    "appInsightsEnabled",
    "collectModelData",
    "computeTargetName",
    "containerResourceRequirements.cpuLimit",
    "containerResourceRequirements.memoryInGBLimit",
    "sslCertificate",
    "sslKey",
    "sslCname",
    "cname",
    "primaryKey",
    "secondaryKey",
    "namespaceName",
    "isDefaultVersion",
    "version",
    "trafficPercentile",
    "type",
    "keyVaultSecretName",
    "vnetConfiguration",
}
COMPUTE_TYPES = {"local": "local", "aci": "aci", "aks": "aks"}


NESTED_DEPLOYMENT_KEYS = ("containerResourceRequirements", "autoScaler", "livenessProbeRequirements")


def _flatten(data: dict[str, Any]) -> dict[str, Any]:
    """Dotted keys for AML's nested objects: {"autoScaler": {"minReplicas": 1}} → {"autoScaler.minReplicas": 1}."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key in NESTED_DEPLOYMENT_KEYS and isinstance(value, dict):
            out.update({f"{key}.{inner}": inner_value for inner, inner_value in value.items()})
        else:
            out[key] = value
    return out


def translate_deployment_config(
    doc: Document, problems: list[Problem]
) -> tuple[dict[str, Any], dict[PathKey, PathKey]]:
    """deploymentconfig.json → endpoint fields, and a map from field path to JSON path."""
    if not isinstance(doc.data, dict):
        problems.append(doc.problem((), "a deployment config must be a JSON object"))
        return {}, {}
    fields: dict[str, Any] = {}
    mapping: dict[PathKey, PathKey] = {}
    for dotted_key, value in _flatten(doc.data).items():
        json_path: PathKey = tuple(dotted_key.split("."))
        if dotted_key in DEPLOYMENT_CONFIG_IGNORED:
            continue
        target = DEPLOYMENT_CONFIG_KEYS.get(dotted_key)
        if target is None:
            allowed = ", ".join(sorted(DEPLOYMENT_CONFIG_KEYS))
            problems.append(
                doc.problem(json_path, f"unknown deployment config key; allowed: {allowed}", label=dotted_key)
            )
            continue
        if target == ("compute_type",) and isinstance(value, str):
            value = COMPUTE_TYPES.get(value.lower(), value)
        node = fields
        for part in target[:-1]:
            node = node.setdefault(str(part), {})
        node[str(target[-1])] = value
        mapping[target] = json_path
        for depth in range(1, len(target)):
            mapping.setdefault(target[:depth], json_path[:depth])
    return fields, mapping


def translate_inference_config(doc: Document, problems: list[Problem]) -> tuple[dict[str, Any], dict[PathKey, PathKey]]:
    if not isinstance(doc.data, dict):
        problems.append(doc.problem((), "an inference config must be a JSON object"))
        return {}, {}
    fields: dict[str, Any] = {}
    mapping: dict[PathKey, PathKey] = {}
    for key, value in doc.data.items():
        if key in INFERENCE_CONFIG_IGNORED:
            continue
        target = INFERENCE_CONFIG_KEYS.get(key)
        if target is None:
            allowed = ", ".join(sorted(INFERENCE_CONFIG_KEYS))
            problems.append(doc.problem((key,), f"unknown inference config key; allowed: {allowed}"))
            continue
        if value is None:
            continue
        fields[target] = value
        mapping[(target,)] = (key,)
    return fields, mapping


Translate = Callable[[Document, list[Problem]], tuple[dict[str, Any], dict[PathKey, PathKey]]]


def include(
    item: dict[str, Any],
    key: str,
    path: PathKey,
    stack_dir: Path,
    origins: Origins,
    problems: list[Problem],
    translate: Translate,
) -> dict[str, Any]:
    """Replace `key: file.json` in an item by the translated file, item keys taking precedence."""
    own = {k: v for k, v in item.items() if k != key}
    loaded = _referenced_document(item.get(key), (*path, key), stack_dir, origins, problems)
    if loaded is None:
        return own
    doc, file = loaded
    fields, mapping = translate(doc, problems)
    # Paths inside an AML file are relative to that file (entry_script to source_directory).
    resolve_paths(fields, ImageSpec, file.parent)
    origins.redirects[path] = (doc, mapping)
    return {**fields, **own}


def _referenced_document(
    reference: Any, where: PathKey, stack_dir: Path, origins: Origins, problems: list[Problem]
) -> tuple[Document, Path] | None:
    """The AML file an item names, parsed; None (with the problem recorded) when it cannot be read."""
    if not isinstance(reference, str):
        problems.append(origins.stack.problem(where, "must be a path to a JSON file"))
        return None
    file = (stack_dir / reference).resolve()
    if not file.is_file():
        problems.append(origins.stack.problem(where, f"file not found: {reference}"))
        return None
    try:
        return load_document(file, display=display(file)), file
    except SpecError as error:
        problems.extend(error.problems)
        return None
