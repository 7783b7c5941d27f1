"""OnlineEndpoint: an Azure ML v2 online endpoint (managed, or on an attached Kubernetes compute) with
one OnlineDeployment per declared deployment, its images registered as v2 code and environment
assets, and the traffic between deployments set once they exist."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pulumi
from pulumi_azure_native import authorization, machinelearningservices

from components.registered_model import AzureModelTarget, BlobFiles, blob_uri, upload_files
from modelplane.aml_v2 import code_of, environment_of, iso_duration
from modelplane.content import files_under, text_digest
from modelplane.naming import compact_name
from modelplane.providers.online_traffic import OnlineTraffic
from modelplane.spec import ImageSpec
from modelplane.spec.schema import OnlineDeploymentSpec, OnlineEndpointSpec, OnlineProbe, OnlineRequestSettings

AUTH_MODES = {"key": "Key", "aml_token": "AMLToken", "aad_token": "AADToken"}
NETWORK_ACCESS = {"enabled": "Enabled", "disabled": "Disabled"}
COMPUTE_TYPES = {"managed": "Managed", "kubernetes_online": "Kubernetes"}


@dataclass(frozen=True)
class OnlineEndpointArgs:
    endpoint_name: str
    """The key under `endpoints:`; also the endpoint's name in the workspace (unique in its region)."""
    spec: OnlineEndpointSpec
    """Auth mode, network access, deployments and traffic from the stack."""
    images: dict[str, ImageSpec]
    """The inference configs its deployments name, by image name."""
    model_ids: dict[str, pulumi.Input[str] | None]
    """The resource ID of the model version each image serves (None: an image without a model)."""
    workspace: AzureModelTarget
    """The workspace, and the storage account the code is uploaded to."""
    location: pulumi.Input[str]
    """Region of the workspace."""
    tags: dict[str, str] = field(default_factory=dict)
    """Stack-wide tags, under the endpoint's and each deployment's own."""
    arm_endpoint: str | None = None
    """ARM base URL for the traffic update (a local double in tests)."""


def probe(settings: OnlineProbe | None) -> dict[str, Any] | None:
    """AML v2's probe settings as the REST API takes them (durations in ISO 8601)."""
    if settings is None:
        return None
    durations = {"initial_delay": settings.initial_delay, "period": settings.period, "timeout": settings.timeout}
    found: dict[str, Any] = {k: iso_duration(v * 1000) for k, v in durations.items() if v is not None}
    counts = {"success_threshold": settings.success_threshold, "failure_threshold": settings.failure_threshold}
    found.update({k: v for k, v in counts.items() if v is not None})
    return found


def request_settings(settings: OnlineRequestSettings | None) -> dict[str, Any] | None:
    if settings is None:
        return None
    found: dict[str, Any] = {}
    if settings.request_timeout_ms is not None:
        found["request_timeout"] = iso_duration(settings.request_timeout_ms)
    if settings.max_queue_wait_ms is not None:
        found["max_queue_wait"] = iso_duration(settings.max_queue_wait_ms)
    if settings.max_concurrent_requests_per_instance is not None:
        found["max_concurrent_requests_per_instance"] = settings.max_concurrent_requests_per_instance
    return found


def scale_settings(deployment: OnlineDeploymentSpec) -> Any:
    """Default or target-utilisation scaling (a union in the API: only its Args classes name the keys)."""
    scale = deployment.scale_settings
    if scale is None or scale.type == "default":
        return machinelearningservices.DefaultScaleSettingsArgs(scale_type="Default")
    interval = iso_duration(scale.polling_interval * 1000) if scale.polling_interval is not None else None
    return machinelearningservices.TargetUtilizationScaleSettingsArgs(
        scale_type="TargetUtilization",
        polling_interval=interval,
        min_instances=scale.min_instances,
        max_instances=scale.max_instances,
        target_utilization_percentage=scale.target_utilization_percentage,
    )


def container_resources(deployment: OnlineDeploymentSpec) -> dict[str, Any] | None:
    """A Kubernetes deployment's requests and limits (AML's containerResourceRequirements)."""
    if deployment.resources is None:
        return None
    found: dict[str, Any] = {}
    for side, key in (("requests", "container_resource_requests"), ("limits", "container_resource_limits")):
        settings = getattr(deployment.resources, side)
        if settings is not None:
            found[key] = settings.model_dump(exclude_none=True)
    return found


class OnlineEndpoint(pulumi.ComponentResource):
    """The endpoint, its v2 assets, its deployments and their traffic; keys from the workspace."""

    scoring_uri: pulumi.Output[str]
    swagger_uri: pulumi.Output[str]
    keys: pulumi.Output[dict[str, str]]

    def __init__(self, name: str, args: OnlineEndpointArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("modelplane:index:OnlineEndpoint", name, None, opts)
        spec = args.spec
        workspace = args.workspace
        placed = {"resource_group_name": workspace.resource_group_name, "workspace_name": workspace.workspace_name}
        endpoint = self._endpoint(name, args, placed)
        assets = {
            image: v2_assets(
                self, f"{name}-{image}", f"{args.endpoint_name}-{image}", args.images[image], args.workspace
            )
            for image in _images_used(spec)
        }
        deployments = [
            self._deployment(name, deployment_name, deployment, args, endpoint, assets[deployment.image], placed)
            for deployment_name, deployment in spec.deployments.items()
        ]
        OnlineTraffic(
            f"{name}-traffic",
            {
                "endpoint_name": args.endpoint_name,
                "endpoint_id": endpoint.id,
                "traffic": spec.live_traffic,
                "mirror_traffic": spec.mirror_traffic,
                # An update of the endpoint writes it whole, without traffic: its declaration's digest
                # here makes the traffic follow every such update.
                "endpoint_digest": endpoint_digest(args),
                "arm_endpoint": args.arm_endpoint,
            },
            pulumi.ResourceOptions(parent=self, depends_on=deployments),
        )
        self.scoring_uri = endpoint.properties.apply(lambda p: p.scoring_uri or "")
        self.swagger_uri = endpoint.properties.apply(lambda p: p.swagger_uri or "")
        self.keys = self._keys(endpoint, args, placed)
        self.register_outputs({"scoring_uri": self.scoring_uri, "swagger_uri": self.swagger_uri, "keys": self.keys})

    def _endpoint(
        self, name: str, args: OnlineEndpointArgs, placed: dict[str, Any]
    ) -> machinelearningservices.OnlineEndpoint:
        spec = args.spec
        properties: dict[str, Any] = {"auth_mode": AUTH_MODES[spec.auth_mode], "description": spec.description}
        if spec.compute_type == "managed":
            properties["public_network_access"] = NETWORK_ACCESS[spec.public_network_access]
        else:
            properties["compute"] = compute_id(args.workspace, str(spec.compute))
        return machinelearningservices.OnlineEndpoint(
            f"{name}-endpoint",
            endpoint_name=args.endpoint_name,
            kind=COMPUTE_TYPES[spec.compute_type],
            location=args.location,
            identity={"type": machinelearningservices.ManagedServiceIdentityType.SYSTEM_ASSIGNED},
            properties=properties,
            tags={**args.tags, **spec.tags},
            # The shares are OnlineTraffic's: it sets them once the deployments exist.
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=["properties.traffic", "properties.mirrorTraffic"]),
            **placed,
        )

    def _deployment(
        self,
        name: str,
        deployment_name: str,
        deployment: OnlineDeploymentSpec,
        args: OnlineEndpointArgs,
        endpoint: machinelearningservices.OnlineEndpoint,
        assets: V2Assets,
        placed: dict[str, Any],
    ) -> machinelearningservices.OnlineDeployment:
        properties = deployment_properties(args.spec.compute_type, deployment, assets)
        properties["model"] = args.model_ids.get(deployment.image)
        # The properties are a union of two types: only their Args classes name the keys as the API does.
        typed = (
            machinelearningservices.KubernetesOnlineDeploymentArgs
            if args.spec.compute_type == "kubernetes_online"
            else machinelearningservices.ManagedOnlineDeploymentArgs
        )
        return machinelearningservices.OnlineDeployment(
            f"{name}-{deployment_name}",
            endpoint_name=endpoint.name,
            deployment_name=deployment_name,
            location=args.location,
            properties=typed(**properties),
            sku={"name": "Default", "capacity": deployment.instance_count},
            tags={**args.tags, **args.spec.tags, **deployment.tags},
            opts=pulumi.ResourceOptions(parent=self),
            **placed,
        )

    def _keys(
        self, endpoint: machinelearningservices.OnlineEndpoint, args: OnlineEndpointArgs, placed: dict[str, Any]
    ) -> pulumi.Output[dict[str, str]]:
        """The endpoint's two keys (AML makes them), read once it exists; none for token auth."""
        if args.spec.auth_mode != "key":
            return pulumi.Output.secret({})
        keys = machinelearningservices.list_online_endpoint_keys_output(endpoint_name=endpoint.name, **placed)
        return pulumi.Output.secret(
            pulumi.Output.all(keys.primary_key, keys.secondary_key).apply(
                lambda pair: {"primary_key": pair[0] or "", "secondary_key": pair[1] or ""}
            )
        )


def v2_assets(
    parent: pulumi.Resource, name: str, asset_name: str, image: ImageSpec, workspace: AzureModelTarget
) -> V2Assets:
    """An image's code (uploaded to the workspace's storage) and environment as v2 asset versions,
    named `asset_name-code`/`-env` and versioned by content (AML asset versions are immutable)."""
    placed = {"resource_group_name": workspace.resource_group_name, "workspace_name": workspace.workspace_name}
    code = code_of(image)
    upload = BlobFiles(compact_name("code", asset_name, 63), code.folder, files_under(code.folder), code.version)
    container, blobs = upload_files(f"{name}-code", upload, workspace, parent)
    code_version = machinelearningservices.CodeVersion(
        f"{name}-code",
        name=f"{asset_name}-code",
        version=code.version,
        properties={"code_uri": blob_uri(workspace, container, code.version)},
        opts=pulumi.ResourceOptions(parent=parent, depends_on=blobs),
        **placed,
    )
    environment = environment_of(image, f"{asset_name}-env")
    environment_version = machinelearningservices.EnvironmentVersion(
        f"{name}-environment",
        name=f"{asset_name}-env",
        version=environment.version,
        properties={
            "image": environment.image,
            "conda_file": environment.conda_yaml,
            "os_type": machinelearningservices.OperatingSystemType.LINUX,
            "description": image.description,
        },
        opts=pulumi.ResourceOptions(parent=parent),
        **placed,
    )
    return V2Assets(code_version.id, code.scoring_script, environment_version.id, environment.variables)


@dataclass(frozen=True)
class V2Assets:
    """What a deployment takes from its image: code, scoring script, environment and its variables."""

    code_id: pulumi.Output[str]
    scoring_script: str
    environment_id: pulumi.Output[str]
    variables: dict[str, str]


def deployment_properties(compute_type: str, deployment: OnlineDeploymentSpec, assets: V2Assets) -> dict[str, Any]:
    """An online deployment's properties as the REST API takes them."""
    properties: dict[str, Any] = {
        "endpoint_compute_type": COMPUTE_TYPES[compute_type],
        "description": deployment.description,
        "code_configuration": {"code_id": assets.code_id, "scoring_script": assets.scoring_script},
        "environment_id": assets.environment_id,
        "environment_variables": {**assets.variables, **deployment.environment_variables},
        "instance_type": deployment.instance_type,
        "app_insights_enabled": deployment.app_insights_enabled,
        "request_settings": request_settings(deployment.request_settings),
        "liveness_probe": probe(deployment.liveness_probe),
        "readiness_probe": probe(deployment.readiness_probe),
        "scale_settings": scale_settings(deployment),
    }
    if deployment.egress_public_network_access is not None:
        properties["egress_public_network_access"] = NETWORK_ACCESS[deployment.egress_public_network_access]
    if compute_type == "kubernetes_online":
        properties["container_resource_requirements"] = container_resources(deployment)
    return {key: value for key, value in properties.items() if value is not None}


def endpoint_digest(args: OnlineEndpointArgs) -> str:
    """What an update of the endpoint resource would change, as a digest."""
    declared = args.spec.model_dump(include={"compute_type", "compute", "auth_mode", "public_network_access"})
    text = json.dumps([declared, args.spec.description, {**args.tags, **args.spec.tags}], sort_keys=True)
    return text_digest(text)[:16]


def compute_id(workspace: AzureModelTarget, compute: str) -> pulumi.Output[str]:
    """The resource ID of a compute attached to the workspace."""
    subscription = authorization.get_client_config_output().subscription_id
    return pulumi.Output.concat(
        "/subscriptions/",
        subscription,
        "/resourceGroups/",
        workspace.resource_group_name,
        "/providers/Microsoft.MachineLearningServices/workspaces/",
        workspace.workspace_name,
        f"/computes/{compute}",
    )


def _images_used(spec: OnlineEndpointSpec) -> list[str]:
    return list(dict.fromkeys(deployment.image for deployment in spec.deployments.values()))
