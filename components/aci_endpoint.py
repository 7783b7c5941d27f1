"""AciEndpoint: a scoring container group on Azure Container Instances (AML's AciWebservice)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
from pulumi_azure_native import containerinstance

from components.scoring_image import RegistryTarget
from modelplane.providers.keys import endpoint_keys
from modelplane.spec import AciEndpointSpec

ACI_PORT = 80


@dataclass(frozen=True)
class AciEndpointArgs:
    endpoint_name: str
    """The key under `endpoints:`; also the container group's name."""
    spec: AciEndpointSpec
    """Cores, memory, auth and DNS label from the stack."""
    image_ref: pulumi.Input[str]
    """The scoring image in the workspace registry."""
    registry: RegistryTarget
    """Credentials ACI pulls the image with."""
    resource_group_name: pulumi.Input[str]
    """Resource group of the workspace."""
    location: pulumi.Input[str]
    """Default region (the workspace's) when the endpoint names none."""
    tags: dict[str, str] = field(default_factory=dict)
    """Tags on the container group."""


class AciEndpoint(pulumi.ComponentResource):
    """One Linux container group with a public IP; keys go in as secure environment variables."""

    scoring_uri: pulumi.Output[str]
    swagger_uri: pulumi.Output[str]
    keys: pulumi.Output[dict[str, str]]

    def __init__(self, name: str, args: AciEndpointArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("modelplane:index:AciEndpoint", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        keys = endpoint_keys(name, args.spec.auth_enabled, self)
        env: list[dict[str, pulumi.Input[str]]] = [{"name": "MODELPLANE_PORT", "value": str(ACI_PORT)}]
        env += [{"name": variable, "secure_value": key} for variable, key in keys.by_variable.items()]
        self.keys = keys.exported
        group = containerinstance.ContainerGroup(
            f"{name}-aci",
            container_group_name=args.endpoint_name,
            resource_group_name=args.resource_group_name,
            location=args.spec.location or args.location,
            os_type=containerinstance.OperatingSystemTypes.LINUX,
            restart_policy=containerinstance.ContainerGroupRestartPolicy.ALWAYS,
            containers=[
                {
                    "name": args.endpoint_name,
                    "image": args.image_ref,
                    "resources": {"requests": {"cpu": args.spec.cpu_cores, "memory_in_gb": args.spec.memory_gb}},
                    "ports": [{"port": ACI_PORT, "protocol": containerinstance.ContainerNetworkProtocol.TCP}],
                    "environment_variables": env,
                }
            ],
            ip_address={
                "type": containerinstance.ContainerGroupIpAddressType.PUBLIC,
                "dns_name_label": args.spec.dns_name_label,
                "ports": [{"port": ACI_PORT, "protocol": containerinstance.ContainerGroupNetworkProtocol.TCP}],
            },
            image_registry_credentials=[
                {
                    "server": args.registry.server,
                    "username": args.registry.username,
                    "password": args.registry.password,
                }
            ],
            tags={**args.tags, **args.spec.tags},
            opts=child,
        )
        host = group.ip_address.apply(lambda ip: (ip.fqdn or ip.ip or "") if ip else "")
        self.scoring_uri = host.apply(lambda h: f"http://{h}/score")
        self.swagger_uri = host.apply(lambda h: f"http://{h}/swagger.json")
        self.register_outputs({"scoring_uri": self.scoring_uri, "swagger_uri": self.swagger_uri, "keys": self.keys})
