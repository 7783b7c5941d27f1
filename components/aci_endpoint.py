"""AciEndpoint: a scoring container group on Azure Container Instances (AML's AciWebservice)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
from pulumi_azure_native import authorization, containerinstance

from components.scoring_image import RegistryTarget
from modelplane.app_insights import app_insights_env
from modelplane.providers.keys import KeySettings, endpoint_keys
from modelplane.spec import AciEndpointSpec

ACI_PORT = 80
TLS_PORT = 443


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
    subscription_id: str | None = None
    """Subscription of the virtual network (default: the provider's), for a subnet's resource ID."""
    app_insights_key: pulumi.Input[str] | None = None
    """The workspace's Application Insights instrumentation key, for `enable_app_insights`."""


def scoring_port(spec: AciEndpointSpec) -> int:
    """443 when the container serves TLS itself (AML's sslEnabled), else 80."""
    return TLS_PORT if spec.ssl_enabled else ACI_PORT


def tls_env(spec: AciEndpointSpec) -> list[dict[str, pulumi.Input[str]]]:
    """The certificate and key as secure environment variables, which the runtime serves TLS with."""
    if not spec.ssl_enabled or spec.ssl_cert_pem_file is None or spec.ssl_key_pem_file is None:
        return []
    return [
        {"name": "MODELPLANE_TLS_CERT", "secure_value": pulumi.Output.secret(spec.ssl_cert_pem_file.read_text())},
        {"name": "MODELPLANE_TLS_KEY", "secure_value": pulumi.Output.secret(spec.ssl_key_pem_file.read_text())},
    ]


def subnet_ids(args: AciEndpointArgs) -> list[dict[str, pulumi.Input[str]]] | None:
    """The subnet of AML's vnetName/subnetName, in the workspace's resource group."""
    if args.spec.vnet_name is None or args.spec.subnet_name is None:
        return None
    subscription = args.subscription_id or authorization.get_client_config_output().subscription_id
    subnet = pulumi.Output.concat(
        "/subscriptions/",
        subscription,
        "/resourceGroups/",
        args.resource_group_name,
        f"/providers/Microsoft.Network/virtualNetworks/{args.spec.vnet_name}/subnets/{args.spec.subnet_name}",
    )
    return [{"id": subnet}]


def encryption(spec: AciEndpointSpec) -> dict[str, str] | None:
    """A customer-managed key of AML's vaultBaseUrl/keyName/keyVersion."""
    if spec.cmk_vault_base_url is None or spec.cmk_key_name is None or spec.cmk_key_version is None:
        return None
    return {
        "vault_base_url": spec.cmk_vault_base_url,
        "key_name": spec.cmk_key_name,
        "key_version": spec.cmk_key_version,
    }


def ip_address(spec: AciEndpointSpec) -> dict[str, object]:
    """Public with the DNS label, or private inside a subnet."""
    port = [{"port": scoring_port(spec), "protocol": containerinstance.ContainerGroupNetworkProtocol.TCP}]
    if spec.subnet_name is not None:
        return {"type": containerinstance.ContainerGroupIpAddressType.PRIVATE, "ports": port}
    return {
        "type": containerinstance.ContainerGroupIpAddressType.PUBLIC,
        "dns_name_label": spec.dns_name_label,
        "ports": port,
    }


class AciEndpoint(pulumi.ComponentResource):
    """One Linux container group with a public IP; keys go in as secure environment variables."""

    scoring_uri: pulumi.Output[str]
    swagger_uri: pulumi.Output[str]
    keys: pulumi.Output[dict[str, str]]

    def __init__(self, name: str, args: AciEndpointArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("modelplane:index:AciEndpoint", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        spec = args.spec
        settings = KeySettings(args.endpoint_name, spec.auth_enabled, spec.supplied_keys, spec.key_rotation_days)
        keys = endpoint_keys(name, settings, self)
        port = scoring_port(spec)
        env: list[dict[str, pulumi.Input[str]]] = [{"name": "MODELPLANE_PORT", "value": str(port)}]
        env += [{"name": variable, "secure_value": key} for variable, key in keys.by_variable.items()]
        env += tls_env(spec)
        env += app_insights_env(spec.enable_app_insights, args.app_insights_key, secure=True)
        self.keys = keys.exported
        group = containerinstance.ContainerGroup(
            f"{name}-aci",
            container_group_name=args.endpoint_name,
            resource_group_name=args.resource_group_name,
            location=spec.location or args.location,
            os_type=containerinstance.OperatingSystemTypes.LINUX,
            restart_policy=containerinstance.ContainerGroupRestartPolicy.ALWAYS,
            containers=[
                {
                    "name": args.endpoint_name,
                    "image": args.image_ref,
                    "resources": {"requests": {"cpu": args.spec.cpu_cores, "memory_in_gb": args.spec.memory_gb}},
                    "ports": [{"port": port, "protocol": containerinstance.ContainerNetworkProtocol.TCP}],
                    "environment_variables": env,
                }
            ],
            ip_address=ip_address(spec),
            subnet_ids=subnet_ids(args),
            encryption_properties=encryption(spec),
            image_registry_credentials=[
                {
                    "server": args.registry.server,
                    "username": args.registry.username,
                    "password": args.registry.password,
                }
            ],
            tags={**args.tags, **spec.tags},
            opts=child,
        )
        address = group.ip_address.apply(lambda ip: (ip.fqdn or ip.ip or "") if ip else "")
        host = pulumi.Output.from_input(spec.ssl_cname) if spec.ssl_enabled and spec.ssl_cname else address
        scheme = "https" if spec.ssl_enabled else "http"
        self.scoring_uri = host.apply(lambda h: f"{scheme}://{h}/score")
        self.swagger_uri = host.apply(lambda h: f"{scheme}://{h}/swagger.json")
        self.register_outputs({"scoring_uri": self.scoring_uri, "swagger_uri": self.swagger_uri, "keys": self.keys})
