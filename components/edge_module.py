"""EdgeModule: an IoT hub and an IoT Edge deployment that runs a scoring image as a module."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pulumi
from pulumi_azure_native import iothub

from components.scoring_image import RegistryTarget
from modelplane.providers.iot_edge import EdgeDeployment, edge_manifest
from modelplane.spec import EdgeSpec

OWNER_POLICY = "iothubowner"


@dataclass(frozen=True)
class EdgeModuleArgs:
    edge_name: str
    """The key under `edge:`; the default module name."""
    spec: EdgeSpec
    """Hub, target devices, module settings and routes from the stack."""
    image_ref: pulumi.Input[str]
    """The scoring image in the workspace registry."""
    registry: RegistryTarget
    """Credentials the edge runtime pulls the image with."""
    resource_group_name: pulumi.Input[str]
    """Resource group for the hub (unless the spec names one)."""
    location: pulumi.Input[str]
    """Region of the hub."""
    tags: dict[str, str] = field(default_factory=dict)
    """Tags on the hub."""
    data_plane_endpoint: str | None = None
    """Base URL of the IoT Hub data plane; None means https://<hub>.azure-devices.net (tests set a double)."""


def _owner_key(keys: iothub.ListIotHubResourceKeysResult) -> str:
    for rule in keys.value or []:
        if rule.key_name == OWNER_POLICY:
            return rule.primary_key or ""
    raise ValueError(f"the IoT hub has no '{OWNER_POLICY}' shared access policy")


class EdgeModule(pulumi.ComponentResource):
    """`iothub.IotHubResource` plus the deployment manifest (edgeAgent, edgeHub and the scoring
    module with its image, createOptions port bindings, environment and routes)."""

    hub_host: pulumi.Output[str]
    deployment_id: pulumi.Output[str]

    def __init__(self, name: str, args: EdgeModuleArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("modelplane:index:EdgeModule", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        spec = args.spec
        resource_group = spec.iot_hub.resource_group or args.resource_group_name
        hub = iothub.IotHubResource(
            f"{name}-hub",
            resource_name_=spec.iot_hub.name,
            resource_group_name=resource_group,
            location=args.location,
            sku={"name": spec.iot_hub.sku, "capacity": 1},
            tags=args.tags,
            opts=child,
        )
        keys = iothub.list_iot_hub_resource_keys_output(resource_group_name=resource_group, resource_name=hub.name)
        self.hub_host = hub.name.apply(lambda hub_name: f"{hub_name}.azure-devices.net")
        module_name = spec.module_name or args.edge_name
        registry = pulumi.Output.all(args.registry.server, args.registry.username, args.registry.password)
        content = pulumi.Output.all(args.image_ref, registry).apply(
            lambda parts: edge_manifest(
                module_name,
                parts[0],
                spec.env,
                spec.ports,
                spec.routes,
                {"server": parts[1][0], "username": parts[1][1], "password": parts[1][2]},
            )
        )
        owner_key: pulumi.Output[str] = pulumi.Output.secret(keys.apply(_owner_key))
        secret_content: pulumi.Output[dict[str, Any]] = pulumi.Output.secret(content)
        props: dict[str, object] = {
            "name": args.edge_name,
            "hub_host": self.hub_host,
            "key_name": OWNER_POLICY,
            "shared_access_key": owner_key,
            "content": secret_content,
            "priority": spec.priority,
        }
        if spec.device_id is not None:
            props["device_id"] = spec.device_id
        else:
            props["target_condition"] = spec.target_condition
        if args.data_plane_endpoint is not None:
            props["endpoint"] = args.data_plane_endpoint
        deployment = EdgeDeployment(f"{name}-deployment", props, opts=child)
        self.deployment_id = deployment.deployment_id
        self.register_outputs({"hub_host": self.hub_host, "deployment_id": self.deployment_id})
