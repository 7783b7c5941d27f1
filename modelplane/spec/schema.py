"""The stack declaration's schema: frozen pydantic models, one per section item.

Field names follow Azure ML's own parameter names in snake_case (AksWebservice.deploy_configuration,
AciWebservice.deploy_configuration, InferenceConfig, AksCompute.provisioning_configuration), and the
defaults are AML's where AML had one. Every rule about one item lives here, as a validator; rules
across items (names, references, files) live in `references.py`. Components trust these models.

Path-valued fields are typed `FilePath` or `FolderPath`: the loader finds, checks and resolves them
through that annotation (`path_fields`), so the list of paths is written nowhere else.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from modelplane.constants import ACI_MAX_CPU, ACI_MAX_MEMORY_GB, FPGA_VM_PREFIX
from modelplane.runtime.ports import MAX_BODY_BYTES
from modelplane.source import Problem
from modelplane.traffic import MIRROR_MAX, live_shares, mirror_problems, traffic_problems, unrouted_problem


@dataclass(frozen=True)
class PathField:
    """Marks a field as a path to a file or folder that must exist.

    `relative_to` names a sibling field whose value is the base when it is set (AML's InferenceConfig
    joins `source_directory` with `entry_script`, `conda_file` and `extra_docker_file_steps`); the
    stack file's folder otherwise, as the folder the v1 CLI ran in.
    """

    folder: bool = False
    relative_to: str | None = None
    remote: bool = False
    """A URI where Azure keeps the files (`azureml://…`) is taken as it is: nothing is read here."""


# Where teams keep models on Azure: a datastore path, a job's output, a registered model, blob storage.
REMOTE_PREFIXES = ("azureml://", "https://", "wasbs://", "abfss://")


def is_remote(value: object) -> bool:
    return isinstance(value, str) and value.startswith(REMOTE_PREFIXES)


FilePath = Annotated[Path, PathField()]
FolderPath = Annotated[Path, PathField(folder=True)]
SourcePath = Annotated[Path, PathField(relative_to="source_directory")]


@dataclass(frozen=True)
class NoEffect:
    """Marks a field Azure ML has and Modelplane accepts but cannot honour: setting it to anything but
    its default draws a warning that gives `reason`."""

    reason: str


def no_effect_fields(model: type[BaseModel]) -> dict[str, NoEffect]:
    """The fields of a model that have no effect here, by name."""
    return {
        name: marker
        for name, info in model.model_fields.items()
        if (marker := next((m for m in info.metadata if isinstance(m, NoEffect)), None)) is not None
    }


def path_fields(model: type[BaseModel]) -> dict[str, PathField]:
    """The path-valued fields of a model, by name."""
    found: dict[str, PathField] = {}
    for name, info in model.model_fields.items():
        marker = _path_marker(info.metadata) or _path_marker_in(info.annotation)
        if marker is not None:
            found[name] = marker
    return found


def _path_marker(metadata: Any) -> PathField | None:
    return next((m for m in metadata or () if isinstance(m, PathField)), None)


def _path_marker_in(annotation: Any) -> PathField | None:
    """The marker inside `FilePath | None` (pydantic lifts metadata only from the outer level)."""
    for arg in getattr(annotation, "__args__", ()):
        marker = _path_marker(getattr(arg, "__metadata__", None))
        if marker is not None:
            return marker
    return None


PRIVATE_BASE = NoEffect("the base image is pulled with the Docker engine's own login (`docker login ADDRESS`)")
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
# azureml-core's Model name rule (a file name such as sklearn_regression_model.pkl is a valid name).
MODEL_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9\-._]{0,254}$")
MODEL_NAME_RULE = "letters, digits, '-', '.' and '_', starting with a letter or digit, 1-255 characters (AML's rule)"
# azure-ai-ml's validate_endpoint_or_deployment_name; a plain `image` is the deployment of this name.
DEPLOYMENT_NAME = re.compile(r"^(?=.{3,32}$)[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$")
DEPLOYMENT_NAME_RULE = (
    "letters, digits and '-', starting with a letter and not ending with '-', 3-32 characters (AML v2's rule)"
)
DEFAULT_DEPLOYMENT = "default"
# InferenceConfig's SUPPORTED_CUDA_VERSIONS (azureml-core); AML refuses others before deploying.
CUDA_VERSIONS = ("9.0", "9.1", "10.0")


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
    resource_group: str = Field(
        min_length=1,
        max_length=90,
        description="Resource group to create (or use) for the stack (Azure: 1-90 characters).",
    )
    subscription_id: str | None = Field(None, description="Subscription; default from the environment.")
    workspace: WorkspaceSpec = Field(default_factory=WorkspaceSpec, description="The ML workspace.")


class ModelSpec(Strict):
    path: Annotated[Path | str, PathField(remote=True)] = Field(
        description="Model file or folder, relative to the stack file (a folder keeps its name in the image); on"
        " Azure, an azureml:// (or https://) URI of files already there, registered without a copy."
    )
    description: str | None = Field(None, description="Shown in the model registry.")
    tags: dict[str, str] = Field(default_factory=dict, description="Registry tags.")
    framework: str | None = Field(None, description=f"One of {', '.join(FRAMEWORKS)}.")

    @field_validator("path", mode="before")
    @classmethod
    def _local_or_remote(cls, value: object) -> object:
        """A local path as a Path; a remote URI kept as written (a Path would fold its `//`)."""
        if isinstance(value, Path) or is_remote(value):
            return value
        if not isinstance(value, str):
            raise ValueError(f"must be a path, or an azureml:// URI on Azure (got {value!r})")
        return Path(value)

    @property
    def remote(self) -> bool:
        return is_remote(self.path)

    @property
    def local_path(self) -> Path:
        """The model's files here (the spec refuses a remote model wherever files are needed)."""
        if not isinstance(self.path, Path):
            raise ValueError(f"model files are on Azure ({self.path}), not here")
        return self.path

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


MAX_BODY_VARIABLE = "MODELPLANE_MAX_BODY_BYTES"
ENV_MAX_BODY = re.compile(rf"^\s*ENV\s+{MAX_BODY_VARIABLE}[=\s]\s*\"?(\d+)", re.MULTILINE)


class EnvironmentSpec(Strict):
    """AML's Environment as an inference config gives it inline (`environment:` in inferenceconfig.json)."""

    name: str | None = Field(None, description="Environment name (a registered one when nothing else is given).")
    version: str | None = Field(None, description="Environment version.")
    environment_variables: dict[str, str] = Field(default_factory=dict, description="Set in the image.")
    conda_dependencies: dict[str, Any] | None = Field(
        None, description="An inline conda environment (name, channels, dependencies) installed into the image."
    )
    user_managed_dependencies: bool = Field(
        False, description="Install nothing: the base image already holds the user's packages."
    )
    base_image: str | None = Field(None, description="Base image of the scoring image.")
    base_dockerfile: str | None = Field(None, description="Dockerfile text of the base image (instead of base_image).")
    base_image_registry: Annotated[RegistrySpec | None, PRIVATE_BASE] = Field(
        None, description="Registry of a private base_image."
    )

    @model_validator(mode="after")
    def _base(self) -> EnvironmentSpec:
        if self.base_image is not None and self.base_dockerfile is not None:
            raise ValueError("give docker.base_image or docker.base_dockerfile, not both (as in AML)")
        return self


class ImageSpec(Strict):
    """AML's InferenceConfig: how a model is scored."""

    models: list[str] = Field(default_factory=list, description="Names of models (under `models`) in the image.")
    entry_script: SourcePath = Field(description="Script with init() and run(), relative to source_directory.")
    source_directory: FolderPath | None = Field(
        None, description="Folder copied into the image (default: the script's)."
    )
    conda_file: SourcePath | None = Field(
        None, description="Conda environment YAML for the scoring environment, relative to source_directory."
    )
    pip_requirements: SourcePath | None = Field(
        None, description="pip requirements file (instead of conda_file), relative to source_directory."
    )
    runtime: str = Field("python", description="Only 'python' (AML's 'spark-py' is retired).")
    extra_docker_file_steps: SourcePath | None = Field(
        None, description="File of Dockerfile steps to append, relative to source_directory."
    )
    enable_gpu: bool = Field(False, description="Build a CUDA image.")
    cuda_version: str | None = Field(None, description=f"CUDA version when enable_gpu: {', '.join(CUDA_VERSIONS)}.")
    base_image: str | None = Field(None, description="Custom base image (default: Modelplane's).")
    base_image_registry: Annotated[RegistrySpec | None, PRIVATE_BASE] = Field(
        None, description="Registry of a private base_image."
    )
    environment: EnvironmentSpec | None = Field(
        None, description="An inline AML Environment (instead of conda_file, pip_requirements and base_image)."
    )
    description: str | None = Field(None, description="Free text.")

    @property
    def max_body_bytes(self) -> int:
        """The largest request body its scoring server takes: MODELPLANE_MAX_BODY_BYTES as the image sets
        it (an inline environment's variable, or an ENV line of extra_docker_file_steps), else the default."""
        variables = dict((self.environment or EnvironmentSpec()).environment_variables)
        steps = self.extra_docker_file_steps
        if steps is not None and Path(steps).is_file():
            for found in ENV_MAX_BODY.finditer(Path(steps).read_text(errors="replace")):
                variables[MAX_BODY_VARIABLE] = found.group(1)
        try:
            return int(variables.get(MAX_BODY_VARIABLE, MAX_BODY_BYTES))
        except ValueError:
            return MAX_BODY_BYTES

    @field_validator("runtime")
    @classmethod
    def _runtime(cls, value: str) -> str:
        if value.lower() == "spark-py":
            raise ValueError("runtime 'spark-py' is not supported (AML retired it); use 'python'")
        if value.lower() != "python":
            raise ValueError(f"unknown runtime '{value}'; allowed: python")
        return "python"

    @field_validator("cuda_version")
    @classmethod
    def _cuda_version(cls, value: str | None) -> str | None:
        if value is not None and value not in CUDA_VERSIONS:
            raise ValueError(f"cuda_version '{value}' is not one AML supports: {', '.join(CUDA_VERSIONS)}")
        return value

    @model_validator(mode="after")
    def _environment(self) -> ImageSpec:
        if self.conda_file is not None and self.pip_requirements is not None:
            raise ValueError("give conda_file or pip_requirements, not both")
        if self.cuda_version is not None and not self.enable_gpu:
            raise ValueError("cuda_version is set but enable_gpu is false")
        if self.enable_gpu and self.base_image is None:
            raise ValueError("enable_gpu needs a CUDA base_image (Modelplane makes none locally)")
        given = [name for name in ENVIRONMENT_EXCLUSIVE if getattr(self, name) not in (None, False)]
        if self.environment is not None and given:
            raise ValueError(f"environment excludes {', '.join(given)} (as in AML's InferenceConfig)")
        return self

    @property
    def base(self) -> str | None:
        """The base image the stack names, directly or through its environment."""
        return self.environment.base_image if self.environment is not None else self.base_image


# What AML's InferenceConfig refuses beside an environment (runtime aside: it has a default here).
ENVIRONMENT_EXCLUSIVE = (
    "conda_file",
    "pip_requirements",
    "extra_docker_file_steps",
    "enable_gpu",
    "cuda_version",
    "base_image",
    "base_image_registry",
)


# Settings of a v1 inference config that v2 environments have no field for, and what to do instead.
V2_UNMAPPED_IMAGE_SETTINGS = {
    "extra_docker_file_steps": "a v2 environment is built from a base image and a conda file; put the steps in a "
    "Dockerfile and register the environment from that build context",
    "enable_gpu": "choose a GPU base image (e.g. mcr.microsoft.com/azureml/openmpi4.1.0-cuda11.8-cudnn8-ubuntu22.04) "
    "and a GPU instance_type",
    "cuda_version": "the CUDA version comes with the GPU base image",
    "base_image_registry": "v2 pulls base images through the workspace's registry connection; attach the private "
    "registry to the workspace",
}


class SslSpec(Strict):
    cname: str = Field(description="DNS name the certificate is for.")
    cert_file: FilePath = Field(description="PEM certificate, relative to the stack file.")
    key_file: FilePath = Field(description="PEM private key, relative to the stack file.")


class AttachSpec(Strict):
    resource_group: str | None = Field(None, description="Resource group of the existing AKS cluster.")
    cluster_name: str | None = Field(None, description="Name of the existing AKS cluster.")
    kubeconfig: FilePath | None = Field(None, description="Kubeconfig of any cluster (a local one in tests).")
    registry: FilePath | None = Field(
        None,
        description="JSON file with the registry the cluster pulls from (address, username, password; the local"
        " cluster writes one): images are pushed there and pulled with a secret, as from ACR on AKS.",
    )
    node_address: str | None = Field(
        None, description="Call endpoints on their NodePort at this node address (the local cluster: 127.0.0.1)."
    )

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
        if self.attach is not None and self.attach.node_address is not None and self.service_type != "NodePort":
            raise ValueError("attach.node_address serves endpoints on NodePorts: it needs service_type NodePort")
        if self.attach is None and self.cluster_purpose == "DEV_TEST" and self.agents != 1:
            raise ValueError(f"DEV_TEST clusters have exactly 1 agent (AML refuses more), not {self.agents}")
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


AuthMode = Literal["key", "token", "none"]


def auth_mode(key_auth: bool, token_auth: bool) -> AuthMode:
    """What the gate asks of a request: a token (when token auth is on, keys only sign tokens), a
    key, or nothing."""
    if token_auth:
        return "token"
    return "key" if key_auth else "none"


def rotation_without_keys(key_rotation_days: int | None, auth_mode: AuthMode) -> None:
    """Refuse an age for keys on an endpoint that has none."""
    if key_rotation_days is not None and auth_mode == "none":
        raise ValueError("key_rotation_days rotates keys, and this endpoint has none (its auth is off)")


class EndpointBase(Strict):
    image: str = Field(description="Name of an image under `images`.")
    description: str | None = Field(None, description="Free text.")
    tags: dict[str, str] = Field(default_factory=dict, description="Service tags.")
    key_rotation_days: int | None = Field(
        None, ge=1, le=3650, description="Regenerate the older key once it is this many days old (one per update)."
    )


class SuppliedKeys(Strict):
    """AML's `keys` of a deployment config: keys the user chose instead of generated ones."""

    primary_key: SecretStr | None = Field(None, description="Your own primary key (a secret); default: generated.")
    secondary_key: SecretStr | None = Field(None, description="Your own secondary key (a secret); default: generated.")

    @model_validator(mode="after")
    def _rotated_keys_are_generated(self) -> SuppliedKeys:
        if getattr(self, "key_rotation_days", None) and self.primary_key and self.secondary_key:
            raise ValueError("key_rotation_days rotates generated keys: drop it, or primary_key/secondary_key")
        return self

    @property
    def supplied_keys(self) -> tuple[str | None, str | None]:
        return (
            self.primary_key.get_secret_value() if self.primary_key else None,
            self.secondary_key.get_secret_value() if self.secondary_key else None,
        )


def _valid_deployment_names(value: dict[str, Any]) -> dict[str, Any]:
    for name in value:
        if not DEPLOYMENT_NAME.match(name):
            raise ValueError(f"invalid deployment name '{name}': {DEPLOYMENT_NAME_RULE}")
    return value


def _valid_traffic(value: dict[str, int], info: ValidationInfo) -> dict[str, int]:
    names = _deployment_names(info.data)
    if names is not None and (problems := traffic_problems(value, names)):
        raise ValueError("; ".join(problems))
    return value


def _valid_mirror(value: dict[str, int], info: ValidationInfo) -> dict[str, int]:
    names = _deployment_names(info.data)
    traffic = info.data.get("traffic")
    if names is not None and traffic is not None and (problems := mirror_problems(value, traffic, names)):
        raise ValueError("; ".join(problems))
    return value


# Shares of live and mirrored traffic, checked against the endpoint's deployments (declared before them).
TrafficShares = Annotated[dict[str, int], AfterValidator(_valid_traffic)]
MirrorShares = Annotated[dict[str, int], AfterValidator(_valid_mirror)]
TRAFFIC_DESCRIPTION = "Percent of live requests per deployment: sums to 100, or 0."
MIRROR_DESCRIPTION = f"Percent of live requests copied to one deployment without live traffic (at most {MIRROR_MAX})."


DeploymentT = TypeVar("DeploymentT", bound=BaseModel)


def with_endpoint_defaults(
    endpoint: BaseModel, declared: dict[str, DeploymentT], fields: tuple[str, ...]
) -> dict[str, DeploymentT]:
    """Each deployment, with the endpoint's value of each of `fields` that it does not set itself."""
    return {
        name: deployment.model_copy(update={f: getattr(deployment, f) or getattr(endpoint, f) for f in fields})
        for name, deployment in declared.items()
    }


def one_way(image: str | None, deployments: dict[str, Any], traffic: dict[str, int]) -> None:
    """An endpoint gives `image` (one deployment taking all traffic) or `deployments` and where traffic goes."""
    if (image is None) == (not deployments):
        raise ValueError("give `image` (one deployment taking all traffic) or `deployments`, not both or neither")
    if (problem := unrouted_problem(deployments, traffic)) is not None:
        raise ValueError(problem)


class LocalDeploymentSpec(Strict):
    """One deployment of a local endpoint (AML v2's online deployment): a scoring container behind the
    endpoint's router."""

    image: str = Field(description="Name of an image under `images`.")
    cpu_cores: float | None = Field(None, gt=0, le=64, description="CPU limit (default: the endpoint's).")
    memory_gb: float | None = Field(None, gt=0, le=256, description="Memory limit (default: the endpoint's).")


class LocalEndpointSpec(EndpointBase):
    """AML's LocalWebservice, with AML v2's deployments: a router on the endpoint's port in front of one
    scoring container per deployment, on the local Docker engine."""

    compute_type: Literal["local"] = "local"
    image: str | None = Field(  # type: ignore[assignment]
        None, description="Name of an image under `images`: one deployment (`default`) taking all traffic."
    )
    port: int = Field(8890, ge=1024, le=65535, description="Host port on 127.0.0.1 (AML default 8890).")
    auth_enabled: bool = Field(True, description="Require a key (Modelplane's gate; on by default).")
    token_auth_enabled: bool = Field(
        False, description="Require a token from `modelplane token` instead of a key (AML's token auth)."
    )
    cpu_cores: float | None = Field(None, gt=0, le=64, description="CPU limit per container.")
    memory_gb: float | None = Field(None, gt=0, le=256, description="Memory limit per container.")
    deployments: Annotated[dict[str, LocalDeploymentSpec], AfterValidator(_valid_deployment_names)] = Field(
        default_factory=dict, description="Named deployments (AML v2's blue/green), instead of `image`."
    )
    traffic: TrafficShares = Field(default_factory=dict, description=TRAFFIC_DESCRIPTION)
    mirror_traffic: MirrorShares = Field(default_factory=dict, description=MIRROR_DESCRIPTION)

    @model_validator(mode="after")
    def _one_way(self) -> LocalEndpointSpec:
        one_way(self.image, self.deployments, self.traffic)
        rotation_without_keys(self.key_rotation_days, self.auth_mode)
        return self

    @property
    def auth_mode(self) -> AuthMode:
        return auth_mode(self.auth_enabled, self.token_auth_enabled)

    @property
    def serving(self) -> dict[str, LocalDeploymentSpec]:
        """Every deployment, with the endpoint's limits where it sets none; a plain `image` is `default`."""
        declared = self.deployments or {DEFAULT_DEPLOYMENT: LocalDeploymentSpec(image=str(self.image))}
        return with_endpoint_defaults(self, declared, ("cpu_cores", "memory_gb"))

    @property
    def live_traffic(self) -> dict[str, int]:
        """Percent of live requests per deployment (all of them to a single deployment)."""
        return live_shares(self.serving, self.traffic)


def _deployment_names(data: dict[str, Any]) -> list[str] | None:
    """The deployments of an endpoint being validated (None when they failed validation)."""
    if "deployments" not in data:
        return None
    return list(data["deployments"]) or [DEFAULT_DEPLOYMENT]


class AciEndpointSpec(EndpointBase, SuppliedKeys):
    """AML's AciWebservice.deploy_configuration."""

    compute_type: Literal["aci"]
    cpu_cores: float = Field(0.1, gt=0, le=ACI_MAX_CPU, description="AML default 0.1; ACI allows up to 4.")
    memory_gb: float = Field(0.5, gt=0, le=ACI_MAX_MEMORY_GB, description="AML default 0.5; ACI allows up to 16.")
    auth_enabled: bool = Field(False, description="AML default false for ACI.")
    dns_name_label: str | None = Field(None, description="DNS label of the public IP.")
    location: str | None = Field(None, description="Region (default: the workspace's).")
    ssl_enabled: bool = Field(False, description="Serve HTTPS on port 443 with ssl_cert_pem_file/ssl_key_pem_file.")
    ssl_cert_pem_file: FilePath | None = Field(None, description="PEM certificate for ssl_enabled.")
    ssl_key_pem_file: FilePath | None = Field(None, description="PEM private key for ssl_enabled (kept as a secret).")
    ssl_cname: str | None = Field(None, description="DNS name the certificate is for (the scoring URI's host).")
    enable_app_insights: bool = Field(
        False, description="Send the scoring server's telemetry to the workspace's Application Insights."
    )
    vnet_name: str | None = Field(None, description="Virtual network (in the workspace's resource group).")
    subnet_name: str | None = Field(None, description="Subnet delegated to ACI; the group gets a private IP.")
    cmk_vault_base_url: str | None = Field(None, description="Key Vault of a customer-managed encryption key.")
    cmk_key_name: str | None = Field(None, description="Name of the customer-managed key.")
    cmk_key_version: str | None = Field(None, description="Version of the customer-managed key.")

    @model_validator(mode="after")
    def _settings(self) -> AciEndpointSpec:
        if self.ssl_enabled and (self.ssl_cert_pem_file is None or self.ssl_key_pem_file is None):
            raise ValueError("ssl_enabled needs ssl_cert_pem_file and ssl_key_pem_file (AML's sslCertificate, sslKey)")
        rotation_without_keys(self.key_rotation_days, "key" if self.auth_enabled else "none")
        if (self.vnet_name is None) != (self.subnet_name is None):
            raise ValueError("vnet_name and subnet_name go together")
        cmk = (self.cmk_vault_base_url, self.cmk_key_name, self.cmk_key_version)
        if any(cmk) and not all(cmk):
            raise ValueError("cmk_vault_base_url, cmk_key_name and cmk_key_version go together")
        return self


class AksDeploymentSpec(Strict):
    """One deployment of an AKS endpoint (AML v2's online deployment, AML v1's endpoint version): a
    Kubernetes Deployment behind the endpoint's router."""

    image: str = Field(description="Name of an image under `images`.")
    num_replicas: int | None = Field(
        None, ge=1, le=1000, description="Fixed replicas (default: the endpoint's `num_replicas` or autoscale)."
    )
    cpu_cores: float | None = Field(None, gt=0, le=64, description="CPU request per replica (default: the endpoint's).")
    memory_gb: float | None = Field(
        None, gt=0, le=256, description="Memory request per replica (default: the endpoint's)."
    )


class AksEndpointSpec(EndpointBase, SuppliedKeys):
    """AML's AksWebservice.deploy_configuration, with AML v2's deployments and traffic: one Deployment
    per deployment behind a router."""

    compute_type: Literal["aks"]
    image: str | None = Field(  # type: ignore[assignment]
        None, description="Name of an image under `images`: one deployment taking all traffic, no router."
    )
    deployments: Annotated[dict[str, AksDeploymentSpec], AfterValidator(_valid_deployment_names)] = Field(
        default_factory=dict, description="Named deployments (AML v2's blue/green) behind a router, instead of `image`."
    )
    traffic: TrafficShares = Field(default_factory=dict, description=TRAFFIC_DESCRIPTION)
    mirror_traffic: MirrorShares = Field(default_factory=dict, description=MIRROR_DESCRIPTION)
    cluster: str = Field(description="Name of a cluster under `clusters`.")
    num_replicas: int | None = Field(None, ge=1, le=1000, description="Fixed replicas (disables autoscale).")
    autoscale: Autoscale | None = Field(None, description="Autoscaling (AML default: on, 1-10 at 70%).")
    cpu_cores: float = Field(0.1, gt=0, le=64, description="CPU request per replica (AML default 0.1).")
    memory_gb: float = Field(0.5, gt=0, le=256, description="Memory request per replica (AML default 0.5).")
    cpu_cores_limit: float | None = Field(
        None, gt=0, le=64, description="CPU limit per replica (default: the request)."
    )
    memory_gb_limit: float | None = Field(
        None, gt=0, le=256, description="Memory limit per replica (default: the request)."
    )
    gpu_cores: int = Field(0, ge=0, le=8, description="GPUs per replica.")
    auth_enabled: bool | None = Field(None, description="Key auth (AML default: on unless token auth is).")
    token_auth_enabled: bool = Field(
        False, description="Require a token from `modelplane token` (exclusive with key auth, as in AML)."
    )
    scoring_timeout_ms: int = Field(60000, ge=1, le=600000, description="AML default 60000.")
    replica_max_concurrent_requests: int = Field(1, ge=1, le=1000, description="AML default 1.")
    max_request_wait_time: Annotated[
        int, NoEffect("requests wait in the scoring server's socket backlog, which has no time limit")
    ] = Field(500, ge=0, le=3600000, description="ms in queue; AML default 500.")
    liveness_probe: LivenessProbe = Field(default_factory=LivenessProbe, description="Container probe.")
    namespace: str = Field("default", description="Kubernetes namespace.")
    enable_app_insights: bool = Field(
        False, description="Send the scoring server's telemetry to the workspace's Application Insights."
    )
    collect_model_data: Annotated[
        bool, NoEffect("model data collection writes to the workspace's storage, which Modelplane does not set up")
    ] = Field(False, description="AML's model data collection.")
    compute_target_name: Annotated[str | None, NoEffect("the stack's `cluster` names the cluster")] = Field(
        None, description="AML's compute target (the stack's `cluster` is used)."
    )

    @model_validator(mode="after")
    def _scaling(self) -> AksEndpointSpec:
        one_way(self.image, self.deployments, self.traffic)
        if self.num_replicas is not None and self.autoscale is not None and self.autoscale.enabled:
            raise ValueError("num_replicas and an enabled autoscale exclude each other")
        if self.auth_enabled and self.token_auth_enabled:
            raise ValueError("auth_enabled and token_auth_enabled exclude each other (as in AML)")
        rotation_without_keys(self.key_rotation_days, self.auth_mode)
        sizes = [("", self)] + [(f"deployment {name}'s ", d) for name, d in self.deployments.items()]
        for whose, sized in sizes:
            for limit, request, what in (
                (self.cpu_cores_limit, sized.cpu_cores, "cpu_cores"),
                (self.memory_gb_limit, sized.memory_gb, "memory_gb"),
            ):
                if limit is not None and request is not None and limit < request:
                    raise ValueError(f"{what}_limit ({limit}) is below {whose}{what} ({request})")
        return self

    @property
    def key_auth(self) -> bool:
        """Whether requests need a key (AML's default: unless token auth is on)."""
        return not self.token_auth_enabled and self.auth_enabled is not False

    @property
    def auth_mode(self) -> AuthMode:
        return auth_mode(self.key_auth, self.token_auth_enabled)

    @property
    def scaling(self) -> Autoscale | None:
        """The autoscaler in force: AML's default one unless replicas are fixed."""
        if self.num_replicas is not None:
            return None
        return self.autoscale if self.autoscale is not None else Autoscale()

    @property
    def serving(self) -> dict[str, AksDeploymentSpec]:
        """Each deployment, with the endpoint's sizing where it sets none; a plain `image` is `default`."""
        declared = self.deployments or {DEFAULT_DEPLOYMENT: AksDeploymentSpec(image=str(self.image))}
        return with_endpoint_defaults(self, declared, ("num_replicas", "cpu_cores", "memory_gb"))

    @property
    def live_traffic(self) -> dict[str, int]:
        """Percent of live requests per deployment (all of them to a single deployment)."""
        return live_shares(self.serving, self.traffic)

    @property
    def routed(self) -> bool:
        """Whether a router splits requests between named deployments (else one Deployment serves them)."""
        return bool(self.deployments)


class OnlineProbe(Strict):
    """AML v2's ProbeSettings (seconds); unset fields keep AML's defaults."""

    initial_delay: int | None = Field(None, ge=0, le=3600, description="Seconds before the first probe.")
    period: int | None = Field(None, ge=1, le=3600, description="Seconds between probes.")
    timeout: int | None = Field(None, ge=1, le=3600, description="Seconds a probe may take.")
    success_threshold: int | None = Field(None, ge=1, le=100, description="Successes that make it healthy.")
    failure_threshold: int | None = Field(None, ge=1, le=100, description="Failures that make it unhealthy.")


class OnlineRequestSettings(Strict):
    """AML v2's OnlineRequestSettings; unset fields keep AML's defaults (5000 ms, 1, 500 ms)."""

    request_timeout_ms: int | None = Field(None, ge=1, le=180000, description="Scoring timeout (AML: at most 180 s).")
    max_concurrent_requests_per_instance: int | None = Field(None, ge=1, le=1000, description="Per instance.")
    max_queue_wait_ms: int | None = Field(None, ge=0, le=3600000, description="Time a request may wait in queue.")


class OnlineScaleSettings(Strict):
    """AML v2's scale settings: `default` (instance_count, or Azure Monitor autoscale) or
    `target_utilization` (Kubernetes online deployments)."""

    type: Literal["default", "target_utilization"] = Field("default", description="Scale type.")
    min_instances: int | None = Field(None, ge=1, le=1000, description="target_utilization: fewest instances.")
    max_instances: int | None = Field(None, ge=1, le=1000, description="target_utilization: most instances.")
    polling_interval: int | None = Field(None, ge=1, le=3600, description="target_utilization: seconds.")
    target_utilization_percentage: int | None = Field(None, ge=1, le=100, description="target_utilization: CPU %.")

    @model_validator(mode="after")
    def _bounds(self) -> OnlineScaleSettings:
        given = [name for name in TARGET_UTILIZATION_FIELDS if getattr(self, name) is not None]
        if self.type == "default" and given:
            raise ValueError(f"{', '.join(given)} belong to scale type target_utilization, not default")
        low, high = self.min_instances, self.max_instances
        if low is not None and high is not None and low > high:
            raise ValueError(f"min_instances ({low}) exceeds max_instances ({high})")
        return self


TARGET_UTILIZATION_FIELDS = ("min_instances", "max_instances", "polling_interval", "target_utilization_percentage")


class OnlineResourceSettings(Strict):
    """Kubernetes quantities, as AML v2's ResourceSettings writes them (`"0.5"`, `"1Gi"`)."""

    cpu: str | None = Field(None, description="CPU (cores or millicores, e.g. '0.5', '500m').")
    memory: str | None = Field(None, description="Memory (e.g. '1Gi').")
    gpu: str | None = Field(None, description="GPUs (nvidia.com/gpu).")


class OnlineResources(Strict):
    requests: OnlineResourceSettings | None = Field(None, description="Requested per instance.")
    limits: OnlineResourceSettings | None = Field(None, description="Limit per instance.")


class OnlineDeploymentSpec(Strict):
    """One AML v2 online deployment: an image's model, code and environment on `instance_count` instances."""

    image: str = Field(description="Name of an image under `images` (its models, entry script and environment).")
    description: str | None = Field(None, description="Free text.")
    tags: dict[str, str] = Field(default_factory=dict, description="Deployment tags.")
    instance_type: str | None = Field(
        None, description="VM size of each instance (managed: required, e.g. Standard_DS3_v2)."
    )
    instance_count: int = Field(1, ge=1, le=1000, description="Instances (AML recommends 3 for production).")
    request_settings: OnlineRequestSettings | None = Field(None, description="Timeout and concurrency.")
    liveness_probe: OnlineProbe | None = Field(None, description="Liveness probe settings.")
    readiness_probe: OnlineProbe | None = Field(None, description="Readiness probe settings.")
    scale_settings: OnlineScaleSettings | None = Field(None, description="Scaling (default: `default`).")
    app_insights_enabled: bool = Field(False, description="Send the scoring server's logs to Application Insights.")
    egress_public_network_access: Literal["enabled", "disabled"] | None = Field(
        None, description="managed: whether the deployment may reach the internet."
    )
    environment_variables: dict[str, str] = Field(default_factory=dict, description="Set in the container.")
    resources: OnlineResources | None = Field(None, description="kubernetes_online: requests and limits.")


class OnlineEndpointSpec(Strict):
    """AML v2's online endpoint: `managed` (Azure runs the instances) or `kubernetes_online` (an
    attached Kubernetes compute), with deployments, traffic and mirrored traffic."""

    compute_type: Literal["managed", "kubernetes_online"]
    description: str | None = Field(None, description="Free text.")
    tags: dict[str, str] = Field(default_factory=dict, description="Endpoint tags.")
    compute: str | None = Field(
        None, description="kubernetes_online: the workspace's attached Kubernetes compute (its name)."
    )
    auth_mode: Literal["key", "aml_token", "aad_token"] = Field("key", description="AML v2 auth mode.")
    public_network_access: Literal["enabled", "disabled"] = Field(
        "enabled", description="managed: whether the scoring URI is reachable from the internet."
    )
    deployments: Annotated[dict[str, OnlineDeploymentSpec], AfterValidator(_valid_deployment_names)] = Field(
        min_length=1, description="Named deployments (AML v2's blue/green)."
    )
    traffic: TrafficShares = Field(default_factory=dict, description=TRAFFIC_DESCRIPTION)
    mirror_traffic: MirrorShares = Field(default_factory=dict, description=MIRROR_DESCRIPTION)

    @model_validator(mode="after")
    def _compute(self) -> OnlineEndpointSpec:
        kubernetes = self.compute_type == "kubernetes_online"
        if kubernetes and self.compute is None:
            raise ValueError("kubernetes_online needs `compute`: the Kubernetes compute attached to the workspace")
        if not kubernetes and self.compute is not None:
            raise ValueError("`compute` is for kubernetes_online; a managed endpoint runs on Azure's own instances")
        for name, deployment in self.deployments.items():
            problem = _online_deployment_problem(self.compute_type, deployment)
            if problem is not None:
                raise ValueError(f"deployment '{name}': {problem}")
        if (problem := unrouted_problem(self.deployments, self.traffic)) is not None:
            raise ValueError(problem)
        return self

    @property
    def live_traffic(self) -> dict[str, int]:
        """Percent of live requests per deployment (all of them to a single deployment)."""
        return live_shares(self.deployments, self.traffic)


def _online_deployment_problem(compute_type: str, deployment: OnlineDeploymentSpec) -> str | None:
    """What AML v2 refuses in a deployment of this compute type."""
    if compute_type == "managed":
        if deployment.instance_type is None:
            return "a managed deployment needs instance_type (a VM size such as Standard_DS3_v2)"
        if deployment.resources is not None:
            return "`resources` are for kubernetes_online; a managed deployment is sized by instance_type"
        if deployment.scale_settings is not None and deployment.scale_settings.type != "default":
            return "managed deployments scale with type default (autoscale is Azure Monitor's), not target_utilization"
    elif deployment.egress_public_network_access is not None:
        return "egress_public_network_access is for managed deployments"
    return None


EndpointSpec = Annotated[
    LocalEndpointSpec | AciEndpointSpec | AksEndpointSpec | OnlineEndpointSpec, Field(discriminator="compute_type")
]
ONLINE_COMPUTE_TYPES = ("managed", "kubernetes_online")


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
        for inner, outer in self.ports.items():
            if not (0 < inner < 65536 and 0 < outer < 65536):
                raise ValueError(f"port mapping {inner}:{outer} is out of range (1-65535)")
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

    @field_validator("vm_size")
    @classmethod
    def _vm_size(cls, value: str) -> str:
        if not value.startswith(FPGA_VM_PREFIX):
            raise ValueError(f"vm_size must be a PB-series size ({FPGA_VM_PREFIX}…), not {value}")
        return value


class BatchComputeSpec(Strict):
    """AML's AmlCompute cluster of a batch job on Azure (AmlCompute.provisioning_configuration)."""

    vm_size: str = Field("Standard_DS3_v2", description="VM size of the cluster's nodes.")
    vm_priority: Literal["dedicated", "low_priority"] = Field("dedicated", description="Low-priority VMs cost less.")
    min_nodes: int = Field(0, ge=0, le=1000, description="Nodes kept when idle (AML default 0).")
    max_nodes: int = Field(4, ge=1, le=1000, description="Most nodes the cluster scales to (AML default 4).")
    idle_seconds_before_scaledown: int = Field(120, ge=0, le=86400, description="AML default 120.")

    @model_validator(mode="after")
    def _bounds(self) -> BatchComputeSpec:
        if self.min_nodes > self.max_nodes:
            raise ValueError(f"min_nodes ({self.min_nodes}) exceeds max_nodes ({self.max_nodes})")
        return self


MINI_BATCH_SIZE = re.compile(r"^(?P<number>\d+(\.\d+)?)\s*(?P<unit>[KMG]B)?$", re.IGNORECASE)


class BatchSpec(Strict):
    """A batch scoring job: AML v1's ParallelRunConfig and v2's batch deployment. The image's entry
    script has `init()` and `run(mini_batch)`: a list of file paths, or a pandas DataFrame of rows."""

    image: str = Field(description="Name of an image under `images` whose entry script scores mini-batches.")
    description: str | None = Field(None, description="Free text.")
    input: str | None = Field(
        None,
        description="Default input: a folder of files, or a CSV/Parquet file of rows (local, relative to the stack"
        " file); on Azure, a datastore or azureml:// URI.",
    )
    input_type: Literal["files", "tabular"] | None = Field(
        None, description="files (FileDataset) or tabular (TabularDataset); default: a CSV/Parquet file is tabular."
    )
    output: str | None = Field(None, description="Output folder (local default: .modelplane/batch/<stack>/<name>).")
    mini_batch_size: int | str = Field(
        10, description="Files per mini-batch; for tabular input, rows, or a size such as '1MB' (AML's)."
    )
    error_threshold: int = Field(
        -1, ge=-1, description="Failed files (or rows) the job tolerates; -1 ignores failures (AML default)."
    )
    output_action: Literal["append_row", "summary_only"] = Field(
        "append_row", description="append_row: every returned row in one file; summary_only: the script writes."
    )
    output_file_name: str = Field("predictions.csv", description="The append_row file (AML v2 default).")
    max_retries: int = Field(3, ge=0, le=100, description="Retries of a failed mini-batch (AML v2 default 3).")
    timeout: int = Field(60, ge=1, le=86400, description="Seconds one run(mini_batch) may take (AML v1 default 60).")
    max_concurrency_per_instance: int | None = Field(
        None, ge=1, le=256, description="Worker processes per node (default: one per CPU, AML's for CPU nodes)."
    )
    instance_count: int = Field(1, ge=1, le=1000, description="Azure: nodes the job runs on.")
    cpu_cores: float | None = Field(None, gt=0, le=64, description="Local: CPUs of the job's container.")
    memory_gb: float | None = Field(None, gt=0, le=256, description="Local: memory of the job's container.")
    compute: BatchComputeSpec | None = Field(None, description="Azure: the AmlCompute cluster that runs the job.")

    @field_validator("mini_batch_size")
    @classmethod
    def _mini_batch_size(cls, value: int | str) -> int | str:
        if isinstance(value, int):
            if value < 1:
                raise ValueError("mini_batch_size is at least 1")
            return value
        if MINI_BATCH_SIZE.match(value.strip()) is None:
            raise ValueError(f"mini_batch_size '{value}' is a count (10) or a size such as '1MB', '512KB'")
        return value.strip()

    @property
    def mini_batch_bytes(self) -> int | None:
        """A size-based mini-batch in bytes (tabular input), or None for a count."""
        if isinstance(self.mini_batch_size, int):
            return None
        match = MINI_BATCH_SIZE.match(self.mini_batch_size)
        assert match is not None
        unit = (match["unit"] or "B").upper()
        return int(float(match["number"]) * {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3}[unit])


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
    batch: dict[str, BatchSpec] = Field(default_factory=dict, description="Batch scoring jobs.")

    # Set by load_stack: the file it came from and its folder (paths above are resolved against it).
    source: Path = Field(Path("."), exclude=True, description="The stack file.")
    name: str = Field("stack", description="Stack name (the file's stem).")
    warnings: tuple[Problem, ...] = Field((), exclude=True, description="Settings that have no effect here.")
