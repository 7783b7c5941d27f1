"""AML v1 files → the stack's fields: `inference_config: inferenceconfig.json` on an image and
`deployment_config: deploymentconfig.json` on an endpoint are read as Azure ML reads them, translated
from AML's camelCase keys into the stack's own fields, and merged under the item's own keys.

The key tables follow azureml-core: `deploy_config_dict_to_obj` (which keys it reads for each
computeType) and `InferenceConfig`/`Environment` (the inference config and its inline environment).
A key AML does not read for that file is ignored, as AML ignores it, with a warning that says so;
a key Modelplane cannot honour is translated into a field that warns (`schema.NoEffect`).

Each translated field remembers where it came from, so a problem in it is reported against the AML
file's line (`positions.Origins`). Paths inside an AML file are resolved as the v1 CLI resolves them,
from the folder it ran in (the stack's folder here), in `references`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelplane.source import Document, PathKey, SpecError, dotted, load_document
from modelplane.spec.positions import Findings, Origins, display

SERVICE_KEYS: dict[str, PathKey] = {
    "computeType": ("compute_type",),
    "description": ("description",),
    "tags": ("tags",),
}
RESOURCE_KEYS: dict[str, PathKey] = {
    "containerResourceRequirements.cpu": ("cpu_cores",),
    "containerResourceRequirements.memoryInGB": ("memory_gb",),
}
SUPPLIED_KEYS: dict[str, PathKey] = {
    "keys.primaryKey": ("primary_key",),
    "keys.secondaryKey": ("secondary_key",),
}
# LocalWebservice.deploy_configuration reads `port`; auth and resources are Modelplane's own.
LOCAL_KEYS: dict[str, PathKey] = {
    **SERVICE_KEYS,
    **RESOURCE_KEYS,
    "port": ("port",),
    "authEnabled": ("auth_enabled",),
}
ACI_KEYS: dict[str, PathKey] = {
    **SERVICE_KEYS,
    **RESOURCE_KEYS,
    **SUPPLIED_KEYS,
    "location": ("location",),
    "authEnabled": ("auth_enabled",),
    "sslEnabled": ("ssl_enabled",),
    "sslCertificate": ("ssl_cert_pem_file",),
    "sslKey": ("ssl_key_pem_file",),
    "cname": ("ssl_cname",),
    "sslCname": ("ssl_cname",),
    "appInsightsEnabled": ("enable_app_insights",),
    "dnsNameLabel": ("dns_name_label",),
    "vaultBaseUrl": ("cmk_vault_base_url",),
    "keyName": ("cmk_key_name",),
    "keyVersion": ("cmk_key_version",),
    "vnetName": ("vnet_name",),
    "subnetName": ("subnet_name",),
}
AKS_KEYS: dict[str, PathKey] = {
    **SERVICE_KEYS,
    **RESOURCE_KEYS,
    **SUPPLIED_KEYS,
    "containerResourceRequirements.cpuLimit": ("cpu_cores_limit",),
    "containerResourceRequirements.memoryInGBLimit": ("memory_gb_limit",),
    "autoScaler.autoscaleEnabled": ("autoscale", "enabled"),
    "autoScaler.minReplicas": ("autoscale", "min_replicas"),
    "autoScaler.maxReplicas": ("autoscale", "max_replicas"),
    "autoScaler.targetUtilization": ("autoscale", "target_utilization"),
    "autoScaler.refreshPeriodInSeconds": ("autoscale", "refresh_seconds"),
    "dataCollection.storageEnabled": ("collect_model_data",),
    "authEnabled": ("auth_enabled",),
    "tokenAuthEnabled": ("token_auth_enabled",),
    "appInsightsEnabled": ("enable_app_insights",),
    "scoringTimeoutMs": ("scoring_timeout_ms",),
    "maxConcurrentRequestsPerContainer": ("replica_max_concurrent_requests",),
    "maxQueueWaitMs": ("max_request_wait_time",),
    "numReplicas": ("num_replicas",),
    "gpuCores": ("gpu_cores",),
    "livenessProbeRequirements.periodSeconds": ("liveness_probe", "period_seconds"),
    "livenessProbeRequirements.initialDelaySeconds": ("liveness_probe", "initial_delay_seconds"),
    "livenessProbeRequirements.timeoutSeconds": ("liveness_probe", "timeout_seconds"),
    "livenessProbeRequirements.successThreshold": ("liveness_probe", "success_threshold"),
    "livenessProbeRequirements.failureThreshold": ("liveness_probe", "failure_threshold"),
    "namespace": ("namespace",),
    "computeTargetName": ("compute_target_name",),
}
DEPLOYMENT_KEYS: dict[str, dict[str, PathKey]] = {"local": LOCAL_KEYS, "aci": ACI_KEYS, "aks": AKS_KEYS}
AML_COMPUTE_TYPES = {"local": "local", "aci": "ACI", "aks": "AKS"}
AKS_ENDPOINT_MESSAGE = (
    "computeType AKSENDPOINT (versions of one endpoint splitting traffic by versionName/trafficPercentile)"
    " is not read from a deployment config: declare the versions as `deployments` of an AKS endpoint, with"
    " `traffic` for their trafficPercentile"
)

INFERENCE_KEYS: dict[str, PathKey] = {
    "entryScript": ("entry_script",),
    "sourceDirectory": ("source_directory",),
    "description": ("description",),
    "runtime": ("runtime",),
    "condaFile": ("conda_file",),
    "extraDockerfileSteps": ("extra_docker_file_steps",),
    "extraDockerFileSteps": ("extra_docker_file_steps",),
    "enableGpu": ("enable_gpu",),
    "cudaVersion": ("cuda_version",),
    "baseImage": ("base_image",),
    "baseImageRegistry": ("base_image_registry",),
}
# The keys AML's CLI takes from `environment` instead, when one is given.
ENVIRONMENT_OVERRIDES = (
    "runtime",
    "condaFile",
    "extraDockerfileSteps",
    "extraDockerFileSteps",
    "enableGpu",
    "cudaVersion",
    "baseImage",
    "baseImageRegistry",
)
# Values that say nothing beside an environment (the only runtime there is).
INFERENCE_DEFAULTS = {"runtime": "python"}
ENVIRONMENT_KEYS: dict[str, PathKey] = {
    "name": ("environment", "name"),
    "version": ("environment", "version"),
    "environmentVariables": ("environment", "environment_variables"),
    "python.userManagedDependencies": ("environment", "user_managed_dependencies"),
    "python.condaDependencies": ("environment", "conda_dependencies"),
    "docker.baseImage": ("environment", "base_image"),
    "docker.baseDockerfile": ("environment", "base_dockerfile"),
    "docker.baseImageRegistry": ("environment", "base_image_registry"),
}
# Values an AML-saved environment carries by default; they say nothing, so they draw no warning.
ENVIRONMENT_DEFAULTS: dict[str, Any] = {
    "python.interpreterPath": "python",
    "docker.sharedVolumes": True,
    # Images here are linux/amd64, as these say.
    "docker.platform.os": "Linux",
    "docker.platform.architecture": "amd64",
    "spark.precachePackages": True,
}


@dataclass
class Translation:
    """An AML file as stack fields, with where each field came from and what was said about it."""

    fields: dict[str, Any] = field(default_factory=dict)
    mapping: dict[PathKey, PathKey] = field(default_factory=dict)
    findings: Findings = field(default_factory=Findings)

    def set(self, target: PathKey, value: Any, source: PathKey) -> None:
        node = self.fields
        for part in target[:-1]:
            node = node.setdefault(str(part), {})
        node[str(target[-1])] = value
        self.mapping[target] = source
        for depth in range(1, len(target)):
            self.mapping.setdefault(target[:depth], source[:depth])


def unset(value: Any) -> bool:
    """Null, empty or false all through: what AML writes for a setting nobody made."""
    if isinstance(value, dict):
        return all(unset(inner) for inner in value.values())
    return value is None or value is False or value == "" or value == []


def camel(key: str) -> str:
    """`environment_variables` → `environmentVariables` (AML's loaders take either spelling)."""
    head, *rest = key.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def flatten(data: dict[str, Any], leaves: set[str], prefix: str = "") -> dict[str, Any]:
    """Dotted keys for nested objects down to the keys in `leaves`: {"autoScaler": {"minReplicas": 1}}
    → {"autoScaler.minReplicas": 1}."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        dotted_key = f"{prefix}{camel(key)}"
        if isinstance(value, dict) and dotted_key not in leaves and value:
            out.update(flatten(value, leaves, f"{dotted_key}."))
        else:
            out[dotted_key] = value
    return out


def _path_of(dotted_key: str) -> PathKey:
    return tuple(dotted_key.split("."))


# --- deploymentconfig.json ------------------------------------------------------------------------


def translate_deployment_config(doc: Document, declared_type: str | None) -> Translation:
    """deploymentconfig.json → endpoint fields; the stack item's compute_type when the file has none."""
    result = Translation()
    if not isinstance(doc.data, dict):
        result.findings.problems.append(doc.problem((), "a deployment config must be a JSON object"))
        return result
    compute_type = _compute_type(doc, declared_type, result)
    if compute_type is None:
        return result
    table = DEPLOYMENT_KEYS[compute_type]
    leaves = {key for keys in DEPLOYMENT_KEYS.values() for key in keys} | {"tags"}
    for dotted_key, value in flatten(doc.data, leaves).items():
        source = _path_of(dotted_key)
        target = table.get(dotted_key)
        if target is None:
            result.findings.warnings.append(doc.problem(source, _not_read(dotted_key, compute_type), dotted_key))
        elif value is not None:
            result.set(target, compute_type if source == ("computeType",) else value, source)
    return result


def _compute_type(doc: Document, declared_type: str | None, result: Translation) -> str | None:
    written = doc.data.get("computeType")
    if written is None:
        return declared_type if declared_type in DEPLOYMENT_KEYS else "local"
    compute_type = str(written).lower()
    if compute_type == "aksendpoint":
        result.findings.problems.append(doc.problem(("computeType",), AKS_ENDPOINT_MESSAGE))
        return None
    if compute_type not in DEPLOYMENT_KEYS:
        allowed = ", ".join(AML_COMPUTE_TYPES.values())
        result.findings.problems.append(
            doc.problem(("computeType",), f"unknown computeType '{written}'; allowed: {allowed}")
        )
        return None
    return compute_type


def _not_read(dotted_key: str, compute_type: str) -> str:
    others = [AML_COMPUTE_TYPES[other] for other, keys in DEPLOYMENT_KEYS.items() if dotted_key in keys]
    if others:
        return (
            f"Azure ML reads this key for computeType {' and '.join(others)} only;"
            f" ignored for computeType {AML_COMPUTE_TYPES[compute_type]}"
        )
    return "not a key Azure ML reads in a deployment config; ignored"


# --- inferenceconfig.json -------------------------------------------------------------------------


def translate_inference_config(doc: Document, _declared_type: str | None = None) -> Translation:
    """inferenceconfig.json → image fields, its inline `environment` included."""
    result = Translation()
    if not isinstance(doc.data, dict):
        result.findings.problems.append(doc.problem((), "an inference config must be a JSON object"))
        return result
    environment = doc.data.get("environment")
    for key, value in doc.data.items():
        source = (key,)
        if key == "environment":
            _translate_environment(doc, value, result)
        elif key not in INFERENCE_KEYS:
            message = "not a key Azure ML's InferenceConfig reads; ignored"
            result.findings.warnings.append(doc.problem(source, message, key))
        elif unset(value):
            continue
        elif environment is not None and key in ENVIRONMENT_OVERRIDES:
            if str(value).lower() != INFERENCE_DEFAULTS.get(key):
                message = "ignored: `environment` is set, and Azure ML then takes this setting from it"
                result.findings.warnings.append(doc.problem(source, message, key))
        else:
            result.set(INFERENCE_KEYS[key], value, source)
    return result


def _translate_environment(doc: Document, environment: Any, result: Translation) -> None:
    """An inline AML Environment (or a reference to a registered one by name and version)."""
    if environment is None:
        return
    if not isinstance(environment, dict):
        result.findings.problems.append(doc.problem(("environment",), "an environment must be an object"))
        return
    result.set(("environment",), {}, ("environment",))
    for dotted_key, value in flatten(environment, set(ENVIRONMENT_KEYS)).items():
        source = ("environment", *_path_of(dotted_key))
        target = ENVIRONMENT_KEYS.get(dotted_key)
        if target is not None:
            if not unset(value) or dotted_key == "python.userManagedDependencies":
                result.set(target, value, source)
        elif not unset(value) and ENVIRONMENT_DEFAULTS.get(dotted_key, object()) != value:
            message = "has no effect on a deployment here; ignored"
            result.findings.warnings.append(doc.problem(source, message, f"environment.{dotted_key}"))


# --- merging into the stack -----------------------------------------------------------------------


Translate = Callable[[Document, str | None], Translation]


def include(
    item: dict[str, Any],
    key: str,
    path: PathKey,
    stack_dir: Path,
    origins: Origins,
    findings: Findings,
    translate: Translate,
) -> dict[str, Any]:
    """Replace `key: file.json` in an item by the translated file, item keys taking precedence."""
    own = {k: v for k, v in item.items() if k != key}
    doc = _referenced_document(item.get(key), (*path, key), stack_dir, origins, findings)
    if doc is None:
        # One error per cause: the item's own keys are not judged without the file's.
        origins.broken.add(path)
        return own
    declared = own.get("compute_type")
    translation = translate(doc, declared if isinstance(declared, str) else None)
    findings.extend(translation.findings)
    if translation.findings.problems:
        origins.broken.add(path)
    origins.redirects[path] = (doc, translation.mapping)
    return {**translation.fields, **own}


def _referenced_document(
    reference: Any, where: PathKey, stack_dir: Path, origins: Origins, findings: Findings
) -> Document | None:
    """The AML file an item names, parsed; None (with the problem recorded) when it cannot be read."""
    if not isinstance(reference, str):
        findings.problems.append(origins.stack.problem(where, "must be a path to a JSON file"))
        return None
    file = (stack_dir / reference).resolve()
    if not file.is_file():
        findings.problems.append(origins.stack.problem(where, f"file not found: {reference}"))
        return None
    try:
        return load_document(file, display=display(file), aml=True)
    except SpecError as error:
        findings.problems.extend(error.problems)
        return None


def translated_keys() -> dict[str, dict[str, str]]:
    """Every AML key Modelplane translates, by file and compute type, as dotted field names (docs)."""
    tables = {"inferenceconfig.json": INFERENCE_KEYS, "environment": ENVIRONMENT_KEYS}
    tables.update(
        {f"deploymentconfig.json ({AML_COMPUTE_TYPES[name]})": keys for name, keys in DEPLOYMENT_KEYS.items()}
    )
    return {name: {key: dotted(target) for key, target in table.items()} for name, table in tables.items()}
