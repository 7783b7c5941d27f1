"""The stack declaration: `stacks/<name>.yaml` parsed, validated and normalised into a StackSpec.

Field names follow Azure ML's own parameter names in snake_case (AksWebservice.deploy_configuration,
AciWebservice.deploy_configuration, InferenceConfig, AksCompute.provisioning_configuration), and the
defaults are AML's where AML had one. An image may instead point at an AML v1
`inferenceconfig.json` and an endpoint at a `deploymentconfig.json` (camelCase keys); both are
translated into the same models, and problems in them are reported against the JSON file's lines.

`load_stack(path)` returns a frozen StackSpec or raises SpecError listing every problem as
`FILE:LINE:COL: path.to.field: what is wrong and what is allowed`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from modelplane.source import Document, PathKey, Problem, SpecError, dotted, load_document

DNS_NAME = re.compile(r"^[a-z]([-a-z0-9]{0,30}[a-z0-9])?$")
DNS_RULE = "lowercase letters, digits and '-', starting with a letter, 2-32 characters (an AML service name)"
FRAMEWORKS = ("scikit-learn", "tensorflow", "pytorch", "onnx", "xgboost", "lightgbm", "custom")
# AML's Model.Framework constants, accepted as written in the SDK.
FRAMEWORK_ALIASES = {
    "ScikitLearn": "scikit-learn",
    "TensorFlow": "tensorflow",
    "PyTorch": "pytorch",
    "Onnx": "onnx",
    "Custom": "custom",
}
FPGA_MODELS = ("resnet50", "resnet152", "densenet121", "vgg16", "ssdvgg")


class Strict(BaseModel):
    """Unknown keys are errors; specs are immutable once loaded."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ExistingWorkspace(Strict):
    name: str = Field(description="Name of the existing Azure ML workspace.")
    resource_group: str = Field(description="Resource group that holds it.")


class WorkspaceSpec(Strict):
    name: str | None = Field(None, description="Workspace to create (default: '<stack>-ws').")
    sku: Literal["basic", "enterprise"] = Field("basic", description="Workspace SKU.")
    existing: ExistingWorkspace | None = Field(None, description="Use this workspace instead of creating one.")


class AzureSpec(Strict):
    location: str = Field("eastus", description="Azure region of the workspace and its resources.")
    resource_group: str = Field(description="Resource group to create (or use) for the stack.")
    subscription_id: str | None = Field(None, description="Subscription; default from the environment.")
    workspace: WorkspaceSpec = Field(default_factory=WorkspaceSpec, description="The ML workspace.")


class ModelSpec(Strict):
    path: Path = Field(description="Model file or folder, relative to the stack file.")
    description: str | None = Field(None, description="Shown in the model registry.")
    tags: dict[str, str] = Field(default_factory=dict, description="Registry tags.")
    framework: str | None = Field(None, description=f"One of {', '.join(FRAMEWORKS)}.")

    @field_validator("framework")
    @classmethod
    def _framework(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = FRAMEWORK_ALIASES.get(value, value)
        if value not in FRAMEWORKS:
            raise ValueError(f"unknown framework '{value}'; allowed: {', '.join(FRAMEWORKS)}")
        return value


class RegistrySpec(Strict):
    address: str = Field(description="Registry host of a private base image.")
    username: str | None = Field(None, description="Registry user.")
    password: str | None = Field(None, description="Registry password (kept as a Pulumi secret).")


class ImageSpec(Strict):
    """AML's InferenceConfig: how a model is scored."""

    models: list[str] = Field(default_factory=list, description="Names of models (under `models`) in the image.")
    entry_script: Path = Field(description="Script with init() and run(), relative to source_directory.")
    source_directory: Path | None = Field(None, description="Folder copied into the image (default: the script's).")
    conda_file: Path | None = Field(None, description="Conda environment YAML for the scoring environment.")
    pip_requirements: Path | None = Field(None, description="pip requirements file (instead of conda_file).")
    runtime: str = Field("python", description="Only 'python' (AML's 'spark-py' is retired).")
    extra_docker_file_steps: Path | None = Field(None, description="File of Dockerfile steps to append.")
    enable_gpu: bool = Field(False, description="Build a CUDA image.")
    cuda_version: str | None = Field(None, description="CUDA version when enable_gpu.")
    base_image: str | None = Field(None, description="Custom base image (default: Modelplane's).")
    base_image_registry: RegistrySpec | None = Field(None, description="Registry of a private base_image.")
    description: str | None = Field(None, description="Free text.")

    @field_validator("runtime")
    @classmethod
    def _runtime(cls, value: str) -> str:
        if value.lower() == "spark-py":
            raise ValueError("runtime 'spark-py' is not supported (AML retired it); use 'python'")
        if value.lower() != "python":
            raise ValueError(f"unknown runtime '{value}'; allowed: python")
        return "python"

    @model_validator(mode="after")
    def _environment(self) -> ImageSpec:
        if self.conda_file is not None and self.pip_requirements is not None:
            raise ValueError("give conda_file or pip_requirements, not both")
        if self.cuda_version is not None and not self.enable_gpu:
            raise ValueError("cuda_version is set but enable_gpu is false")
        return self


class SslSpec(Strict):
    cname: str = Field(description="DNS name the certificate is for.")
    cert_file: Path = Field(description="PEM certificate, relative to the stack file.")
    key_file: Path = Field(description="PEM private key, relative to the stack file.")


class AttachSpec(Strict):
    resource_group: str | None = Field(None, description="Resource group of the existing AKS cluster.")
    cluster_name: str | None = Field(None, description="Name of the existing AKS cluster.")
    kubeconfig: Path | None = Field(None, description="Kubeconfig of any cluster (a local one in tests).")

    @model_validator(mode="after")
    def _target(self) -> AttachSpec:
        if self.kubeconfig is None and (self.resource_group is None or self.cluster_name is None):
            raise ValueError("attach needs resource_group and cluster_name, or kubeconfig")
        return self


class ClusterSpec(Strict):
    """AML's AksCompute.provisioning_configuration, or an attached cluster."""

    cluster_purpose: Literal["DEV_TEST", "FAST_PROD"] = Field("FAST_PROD", description="AML cluster purpose.")
    vm_size: str = Field("Standard_D3_v2", description="Agent VM size.")
    agent_count: int | None = Field(None, ge=1, le=100, description="Agents (default 3, or 1 for DEV_TEST).")
    location: str | None = Field(None, description="Region (default: the workspace's).")
    kubernetes_version: str | None = Field(None, description="AKS Kubernetes version.")
    vnet_resourcegroup_name: str | None = Field(None, description="Resource group of the virtual network.")
    vnet_name: str | None = Field(None, description="Virtual network name.")
    subnet_name: str | None = Field(None, description="Subnet for the agents.")
    service_cidr: str | None = Field(None, description="Kubernetes service address range.")
    dns_service_ip: str | None = Field(None, description="Kubernetes DNS service IP (inside service_cidr).")
    docker_bridge_cidr: str | None = Field(None, description="Docker bridge address range.")
    load_balancer_type: Literal["PublicIp", "InternalLoadBalancer"] = Field("PublicIp", description="Ingress.")
    service_type: Literal["LoadBalancer", "ClusterIP", "NodePort"] = Field(
        "LoadBalancer",
        description="Kubernetes Service type of its endpoints: ClusterIP where no cloud load balancer exists.",
    )
    ssl: SslSpec | None = Field(None, description="TLS for the cluster's scoring front end.")
    attach: AttachSpec | None = Field(None, description="Attach an existing cluster instead of creating one.")

    @property
    def agents(self) -> int:
        if self.agent_count is not None:
            return self.agent_count
        return 1 if self.cluster_purpose == "DEV_TEST" else 3

    @model_validator(mode="after")
    def _network(self) -> ClusterSpec:
        vnet = (self.vnet_resourcegroup_name, self.vnet_name, self.subnet_name)
        if any(vnet) and not all(vnet):
            raise ValueError("vnet_resourcegroup_name, vnet_name and subnet_name go together")
        return self


class Autoscale(Strict):
    enabled: bool = Field(True, description="Scale replicas on utilisation.")
    min_replicas: int = Field(1, ge=1, le=1000, description="AML default 1.")
    max_replicas: int = Field(10, ge=1, le=1000, description="AML default 10.")
    target_utilization: int = Field(70, ge=1, le=100, description="Percent; AML default 70.")
    refresh_seconds: int = Field(1, ge=1, le=3600, description="AML default 1.")

    @model_validator(mode="after")
    def _bounds(self) -> Autoscale:
        if self.min_replicas > self.max_replicas:
            raise ValueError(f"min_replicas ({self.min_replicas}) exceeds max_replicas ({self.max_replicas})")
        return self


class LivenessProbe(Strict):
    period_seconds: int = Field(10, ge=1, description="AML default 10.")
    initial_delay_seconds: int = Field(310, ge=0, description="AML default 310.")
    timeout_seconds: int = Field(2, ge=1, description="AML default 2.")
    success_threshold: int = Field(1, ge=1, description="AML default 1.")
    failure_threshold: int = Field(3, ge=1, description="AML default 3.")


class EndpointBase(Strict):
    image: str = Field(description="Name of an image under `images`.")
    description: str | None = Field(None, description="Free text.")
    tags: dict[str, str] = Field(default_factory=dict, description="Service tags.")


class LocalEndpointSpec(EndpointBase):
    """AML's LocalWebservice: a container on the local Docker engine."""

    compute_type: Literal["local"] = "local"
    port: int = Field(8890, ge=1024, le=65535, description="Host port on 127.0.0.1 (AML default 8890).")
    auth_enabled: bool = Field(True, description="Require a key (Modelplane's gate; on by default).")
    cpu_cores: float | None = Field(None, gt=0, le=64, description="CPU limit for the container.")
    memory_gb: float | None = Field(None, gt=0, le=256, description="Memory limit for the container.")


class AciEndpointSpec(EndpointBase):
    """AML's AciWebservice.deploy_configuration."""

    compute_type: Literal["aci"]
    cpu_cores: float = Field(0.1, gt=0, le=4, description="AML default 0.1; ACI allows up to 4.")
    memory_gb: float = Field(0.5, gt=0, le=16, description="AML default 0.5; ACI allows up to 16.")
    auth_enabled: bool = Field(False, description="AML default false for ACI.")
    dns_name_label: str | None = Field(None, description="DNS label of the public IP.")
    location: str | None = Field(None, description="Region (default: the workspace's).")
    ssl_enabled: bool = Field(False, description="Serve HTTPS (needs ssl_cname and files).")


class AksEndpointSpec(EndpointBase):
    """AML's AksWebservice.deploy_configuration."""

    compute_type: Literal["aks"]
    cluster: str = Field(description="Name of a cluster under `clusters`.")
    num_replicas: int | None = Field(None, ge=1, le=1000, description="Fixed replicas (disables autoscale).")
    autoscale: Autoscale | None = Field(None, description="Autoscaling (AML default: on, 1-10 at 70%).")
    cpu_cores: float = Field(0.1, gt=0, le=64, description="CPU request per replica (AML default 0.1).")
    memory_gb: float = Field(0.5, gt=0, le=256, description="Memory request per replica (AML default 0.5).")
    gpu_cores: int = Field(0, ge=0, le=8, description="GPUs per replica.")
    auth_enabled: bool = Field(True, description="Key auth (AML default true for AKS).")
    token_auth_enabled: bool = Field(False, description="Token auth (exclusive with key auth).")
    scoring_timeout_ms: int = Field(60000, ge=1, le=600000, description="AML default 60000.")
    replica_max_concurrent_requests: int = Field(1, ge=1, le=1000, description="AML default 1.")
    max_request_wait_time: int = Field(500, ge=0, le=3600000, description="ms in queue; AML default 500.")
    liveness_probe: LivenessProbe = Field(default_factory=LivenessProbe, description="Container probe.")
    namespace: str = Field("default", description="Kubernetes namespace.")

    @model_validator(mode="after")
    def _scaling(self) -> AksEndpointSpec:
        if self.num_replicas is not None and self.autoscale is not None and self.autoscale.enabled:
            raise ValueError("num_replicas and an enabled autoscale exclude each other")
        if self.auth_enabled and self.token_auth_enabled:
            raise ValueError("auth_enabled and token_auth_enabled exclude each other (as in AML)")
        return self

    @property
    def scaling(self) -> Autoscale | None:
        """The autoscaler in force: AML's default one unless replicas are fixed."""
        if self.num_replicas is not None:
            return None
        return self.autoscale if self.autoscale is not None else Autoscale()


EndpointSpec = Annotated[LocalEndpointSpec | AciEndpointSpec | AksEndpointSpec, Field(discriminator="compute_type")]


class IotHubSpec(Strict):
    name: str = Field(description="IoT hub name.")
    sku: Literal["F1", "S1", "S2", "S3", "B1", "B2", "B3"] = Field("S1", description="IoT hub SKU.")
    resource_group: str | None = Field(None, description="Default: the stack's.")


class EdgeSpec(Strict):
    """An IoT Edge deployment that runs an image as a module."""

    iot_hub: IotHubSpec = Field(description="The hub that manages the devices.")
    device_id: str | None = Field(None, description="One device.")
    target_condition: str | None = Field(None, description="Devices selected by tags (e.g. tags.env='prod').")
    image: str = Field(description="Name of an image under `images`.")
    module_name: str | None = Field(None, description="Module name (default: the edge entry's name).")
    env: dict[str, str] = Field(default_factory=dict, description="Module environment.")
    ports: dict[int, int] = Field(default_factory=lambda: {5001: 5001}, description="container→host ports.")
    routes: dict[str, str] = Field(default_factory=dict, description="edgeHub routes by name.")
    priority: int = Field(10, ge=0, le=1000, description="Deployment priority.")

    @model_validator(mode="after")
    def _target(self) -> EdgeSpec:
        if (self.device_id is None) == (self.target_condition is None):
            raise ValueError("give exactly one of device_id and target_condition")
        return self


class FpgaSpec(Strict):
    model: str = Field(description=f"Accelerated model: one of {', '.join(FPGA_MODELS)}.")
    location: str = Field("eastus", description="Region with PB-series VMs.")
    vm_size: str = Field("Standard_PB6s", description="PB-series VM size.")
    agent_count: int = Field(1, ge=1, le=20, description="FPGA nodes.")
    auth_enabled: bool = Field(True, description="Key auth.")
    cluster: str | None = Field(None, description="Cluster under `clusters` to add the FPGA pool to.")
    image: str | None = Field(None, description="Image serving the accelerated model (default: AML's).")

    @field_validator("model")
    @classmethod
    def _model(cls, value: str) -> str:
        if value not in FPGA_MODELS:
            raise ValueError(f"unknown accelerated model '{value}'; allowed: {', '.join(FPGA_MODELS)}")
        return value


class StackSpec(Strict):
    """One declared stack."""

    target: Literal["local", "azure"] = Field("local", description="Where Azure-less items run.")
    azure: AzureSpec | None = Field(None, description="Azure settings (needed for any Azure item).")
    tags: dict[str, str] = Field(default_factory=dict, description="Tags on every Azure resource.")
    models: dict[str, ModelSpec] = Field(default_factory=dict, description="Models to register.")
    images: dict[str, ImageSpec] = Field(default_factory=dict, description="Inference configs.")
    clusters: dict[str, ClusterSpec] = Field(default_factory=dict, description="AKS clusters.")
    endpoints: dict[str, EndpointSpec] = Field(default_factory=dict, description="Web services.")
    edge: dict[str, EdgeSpec] = Field(default_factory=dict, description="IoT Edge modules.")
    fpga: dict[str, FpgaSpec] = Field(default_factory=dict, description="FPGA services.")

    # Set by load_stack: the file it came from and its folder (paths above are resolved against it).
    source: Path = Field(Path("."), exclude=True, description="The stack file.")
    name: str = Field("stack", description="Stack name (the file's stem).")


# ------------------------------------------------------------------------------------------------
# AML v1 JSON files → the same fields.

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


class _Origins:
    """Where each value of the merged stack data came from, for error positions."""

    def __init__(self, stack: Document) -> None:
        self.stack = stack
        # A path prefix in the merged data → (document, path in that document).
        self.redirects: dict[PathKey, tuple[Document, dict[PathKey, PathKey]]] = {}

    def problem(self, path: PathKey, message: str) -> Problem:
        for prefix, (doc, mapping) in self.redirects.items():
            if path[: len(prefix)] == prefix:
                rest = path[len(prefix) :]
                probe = rest
                while probe and probe not in mapping:
                    probe = probe[:-1]
                if probe:
                    source_path = mapping[probe]
                    return doc.problem(source_path, message, label=dotted(source_path))
        return self.stack.problem(path, message)


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


def _translate_deployment_config(
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


def _translate_inference_config(
    doc: Document, problems: list[Problem]
) -> tuple[dict[str, Any], dict[PathKey, PathKey]]:
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


def _include(
    item: dict[str, Any],
    key: str,
    path: PathKey,
    stack_dir: Path,
    origins: _Origins,
    problems: list[Problem],
    translate: Any,
) -> dict[str, Any]:
    """Replace `key: file.json` in an item by the translated file, item keys taking precedence."""
    reference = item.get(key)
    if not isinstance(reference, str):
        problems.append(origins.stack.problem((*path, key), "must be a path to a JSON file"))
        return {k: v for k, v in item.items() if k != key}
    file = (stack_dir / reference).resolve()
    if not file.is_file():
        problems.append(origins.stack.problem((*path, key), f"file not found: {reference}"))
        return {k: v for k, v in item.items() if k != key}
    try:
        doc = load_document(file, display=_display(file))
    except SpecError as error:
        problems.extend(error.problems)
        return {k: v for k, v in item.items() if k != key}
    # Paths inside an AML file are relative to that file.
    fields, mapping = translate(doc, problems)
    relative = ["conda_file", "source_directory", "extra_docker_file_steps"]
    if "source_directory" not in fields:
        relative.append("entry_script")  # else relative to source_directory, as in AML
    for name in relative:
        if isinstance(fields.get(name), str):
            fields[name] = str((file.parent / fields[name]).resolve())
    origins.redirects[path] = (doc, mapping)
    merged = {**fields, **{k: v for k, v in item.items() if k != key}}
    return merged


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _pydantic_problems(error: ValidationError, origins: _Origins, data: dict[str, Any]) -> list[Problem]:
    problems = []
    for item in error.errors():
        loc: list[str | int] = []
        for part in item["loc"]:
            # Drop the discriminator tag pydantic puts in union locations.
            if part in ("local", "aci", "aks") and loc and loc[0] == "endpoints" and len(loc) == 2:
                continue
            loc.append(part)
        path = tuple(loc)
        kind = item["type"]
        if kind == "extra_forbidden":
            message = f"unknown field '{path[-1]}'; allowed: {_allowed_fields(path, data)}"
        elif kind == "missing":
            message = "required field is missing"
        elif kind == "union_tag_invalid" or kind == "union_tag_not_found":
            message = "compute_type must be one of: local, aci, aks"
            path = (*path, "compute_type") if kind == "union_tag_invalid" else path
        elif kind == "value_error":
            message = str(item["msg"]).removeprefix("Value error, ")
        else:
            message = f"{item['msg']} (got {item.get('input')!r})"
        problems.append(origins.problem(path, message))
    return problems


def _allowed_fields(path: PathKey, data: dict[str, Any]) -> str:
    """The field names a model at `path` accepts, for 'unknown field' messages."""
    model: Any = StackSpec
    node: Any = data
    for part in path[:-1]:
        if isinstance(node, dict):
            node = node.get(part)
        fields = getattr(model, "model_fields", None)
        if fields is None:
            continue
        if part in fields:
            annotation = fields[part].annotation
            model = _model_of(annotation, node)
    names = sorted(n for n in getattr(model, "model_fields", {}) if n not in ("source", "name"))
    return ", ".join(names)


def _model_of(annotation: Any, node: Any) -> Any:
    """The model class inside an annotation (dict values, optionals, the endpoint union)."""
    args = getattr(annotation, "__args__", ())
    metadata = getattr(annotation, "__metadata__", None)
    if metadata is not None:
        return _model_of(args[0] if args else annotation.__origin__, node)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    candidates = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
    if len(candidates) > 1 and isinstance(node, dict):
        tag = node.get("compute_type", "local")
        for candidate in candidates:
            if candidate.model_fields.get("compute_type") and tag in str(
                candidate.model_fields["compute_type"].annotation
            ):
                return candidate
    if candidates:
        return candidates[0]
    for arg in args:
        inner = _model_of(arg, node)
        if inner is not None and inner is not arg:
            return inner
    return annotation


# ------------------------------------------------------------------------------------------------
# Cross-references and files.


def _items(data: dict[str, Any], section: str) -> dict[str, dict[str, Any]]:
    """The well-formed items of a section (malformed ones are reported by the models)."""
    items = data.get(section)
    if not isinstance(items, dict):
        return {}
    return {name: item for name, item in items.items() if isinstance(item, dict)}


def _kubeconfig_cluster(data: dict[str, Any], name: Any) -> bool:
    """Whether cluster `name` is attached through a kubeconfig (any Kubernetes, no Azure needed)."""
    cluster = _items(data, "clusters").get(name) if isinstance(name, str) else None
    attach = cluster.get("attach") if cluster else None
    return isinstance(attach, dict) and bool(attach.get("kubeconfig"))


def _check_references(data: dict[str, Any], origins: _Origins, base: Path) -> list[Problem]:
    """Names, cross-references, ports and files, checked on the raw data so that they are reported
    together with type errors rather than after them."""
    problems: list[Problem] = []

    def need_file(path: PathKey, value: Any, folder: bool = False) -> None:
        if not isinstance(value, str):
            return
        resolved = Path(value) if Path(value).is_absolute() else base / value
        if not (resolved.is_dir() if folder else resolved.exists()):
            kind = "folder" if folder else "file"
            problems.append(origins.problem(path, f"{kind} not found: {value}"))

    def need_name(path: PathKey, value: Any, section: str, kind: str) -> None:
        declared = _items(data, section)
        if isinstance(value, str) and value not in declared:
            problems.append(
                origins.problem(path, f"unknown {kind} '{value}'; declared {section}: {', '.join(declared) or 'none'}")
            )

    for section in ("models", "images", "clusters", "endpoints", "edge", "fpga"):
        for name in data.get(section) or {}:
            if not DNS_NAME.match(str(name)):
                problems.append(origins.problem((section, name), f"invalid name '{name}': {DNS_RULE}"))

    service_names: dict[str, str] = {}
    for section in ("endpoints", "edge", "fpga"):
        for name in data.get(section) or {}:
            if name in service_names:
                problems.append(
                    origins.problem((section, name), f"service name '{name}' is already used in {service_names[name]}")
                )
            service_names[name] = section

    for name, model in _items(data, "models").items():
        need_file(("models", name, "path"), model.get("path"))

    for name, image in _items(data, "images").items():
        models = image.get("models")
        for index, model_name in enumerate(models if isinstance(models, list) else []):
            need_name(("images", name, "models", index), model_name, "models", "model")
        source_dir = image.get("source_directory")
        need_file(("images", name, "source_directory"), source_dir, folder=True)
        script = image.get("entry_script")
        if isinstance(script, str) and isinstance(source_dir, str):
            script = str(Path(source_dir) / script)
        need_file(("images", name, "entry_script"), script)
        for key in ("conda_file", "pip_requirements", "extra_docker_file_steps"):
            need_file(("images", name, key), image.get(key))

    for name, cluster in _items(data, "clusters").items():
        for key in ("ssl", "attach"):
            if isinstance(cluster.get(key), dict):
                for file_key in ("cert_file", "key_file", "kubeconfig"):
                    need_file(("clusters", name, key, file_key), cluster[key].get(file_key))

    ports: dict[Any, str] = {}
    needs_azure: list[PathKey] = []
    for name, endpoint in _items(data, "endpoints").items():
        need_name(("endpoints", name, "image"), endpoint.get("image"), "images", "image")
        compute = endpoint.get("compute_type", "local")
        if compute == "aks":
            need_name(("endpoints", name, "cluster"), endpoint.get("cluster"), "clusters", "cluster")
        if compute == "local":
            port = endpoint.get("port", 8890)
            if port in ports:
                problems.append(
                    origins.problem(
                        ("endpoints", name, "port"), f"port {port} is already used by endpoint '{ports[port]}'"
                    )
                )
            ports[port] = name
        elif compute == "aci" or (compute == "aks" and not _kubeconfig_cluster(data, endpoint.get("cluster"))):
            needs_azure.append(("endpoints", name, "compute_type"))

    for name, edge in _items(data, "edge").items():
        need_name(("edge", name, "image"), edge.get("image"), "images", "image")
        needs_azure.append(("edge", name))
    for name, fpga in _items(data, "fpga").items():
        if fpga.get("cluster") is not None:
            need_name(("fpga", name, "cluster"), fpga.get("cluster"), "clusters", "cluster")
        needs_azure.append(("fpga", name))
    for name in _items(data, "clusters"):
        if not _kubeconfig_cluster(data, name):
            needs_azure.append(("clusters", name))
    if data.get("target") == "azure" and data.get("azure") is None:
        problems.append(origins.problem(("target",), "target 'azure' needs an `azure:` section"))
    if data.get("target") != "azure" or data.get("azure") is None:
        for path in needs_azure:
            problems.append(
                origins.problem(
                    path, "runs on Azure: needs `target: azure` and an `azure:` section (location, resource_group)"
                )
            )
    return problems


def _resolve_paths(data: dict[str, Any], base: Path) -> None:
    """Make the file fields of the stack absolute, relative to the stack file's folder."""

    def fix(item: dict[str, Any], key: str) -> None:
        if isinstance(item.get(key), str):
            item[key] = str((base / item[key]).resolve())

    for model in (data.get("models") or {}).values():
        if isinstance(model, dict):
            fix(model, "path")
    for image in (data.get("images") or {}).values():
        if isinstance(image, dict):
            for key in ("source_directory", "conda_file", "pip_requirements", "extra_docker_file_steps"):
                fix(image, key)
            # entry_script is relative to source_directory, as in AML.
            if isinstance(image.get("entry_script"), str) and not image.get("source_directory"):
                fix(image, "entry_script")
    for cluster in (data.get("clusters") or {}).values():
        if isinstance(cluster, dict):
            if isinstance(cluster.get("ssl"), dict):
                fix(cluster["ssl"], "cert_file")
                fix(cluster["ssl"], "key_file")
            if isinstance(cluster.get("attach"), dict):
                fix(cluster["attach"], "kubeconfig")


def load_stack(path: Path | str, name: str | None = None) -> StackSpec:
    """Parse, validate and normalise a stack declaration; raise SpecError with every problem."""
    file = Path(path)
    doc = load_document(file, display=_display(file))
    origins = _Origins(doc)
    if not isinstance(doc.data, dict):
        raise SpecError([doc.problem((), "a stack declaration must be a mapping of sections")])
    data: dict[str, Any] = dict(doc.data)
    problems: list[Problem] = []
    stack_dir = file.resolve().parent

    for section, key, translate in (
        ("images", "inference_config", _translate_inference_config),
        ("endpoints", "deployment_config", _translate_deployment_config),
    ):
        items = data.get(section)
        if isinstance(items, dict):
            data[section] = {
                item_name: _include(item, key, (section, item_name), stack_dir, origins, problems, translate)
                if isinstance(item, dict) and key in item
                else item
                for item_name, item in items.items()
            }
    if isinstance(data.get("endpoints"), dict):
        for item in data["endpoints"].values():
            if isinstance(item, dict) and "compute_type" not in item:
                item["compute_type"] = "local"
    _resolve_paths(data, stack_dir)
    data["source"] = file.resolve()
    data["name"] = name or file.stem
    problems.extend(_check_references(data, origins, stack_dir))
    try:
        spec = StackSpec.model_validate(data)
    except ValidationError as error:
        problems.extend(_pydantic_problems(error, origins, data))
    if problems:
        raise SpecError(problems)
    return spec
