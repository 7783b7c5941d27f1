"""LocalEndpoint: a scoring container on the local Docker engine (AML's LocalWebservice)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi

from modelplane.providers.docker import Container
from modelplane.providers.keys import EndpointKeys
from modelplane.spec import LocalEndpointSpec

CONTAINER_PORT = 5001


@dataclass(frozen=True)
class LocalEndpointArgs:
    endpoint_name: str
    """The key under `endpoints:`."""
    spec: LocalEndpointSpec
    """Port, auth and limits from the stack."""
    image_ref: pulumi.Input[str]
    """The scoring image to run."""
    stack_name: str
    """Stack name, for the container's name and labels."""
    labels: dict[str, str] = field(default_factory=dict)
    """Extra container labels."""


def check_local_args(args: LocalEndpointArgs) -> None:
    if not 1024 <= args.spec.port <= 65535:
        raise ValueError(f"endpoint {args.endpoint_name}: port {args.spec.port} is outside 1024-65535")


def container_name(stack_name: str, endpoint_name: str) -> str:
    return f"modelplane-{stack_name}-{endpoint_name}"


class LocalEndpoint(pulumi.ComponentResource):
    """Runs the image on 127.0.0.1:<port> with restart policy unless-stopped; the keys reach the
    container as environment from secrets, so they stay encrypted in state."""

    scoring_uri: pulumi.Output[str]
    swagger_uri: pulumi.Output[str]
    keys: pulumi.Output[dict[str, str]]
    container_id: pulumi.Output[str]

    def __init__(self, name: str, args: LocalEndpointArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("modelplane:index:LocalEndpoint", name, None, opts)
        check_local_args(args)
        child = pulumi.ResourceOptions(parent=self)
        env: dict[str, pulumi.Input[str]] = {"MODELPLANE_PORT": str(CONTAINER_PORT)}
        if args.spec.auth_enabled:
            keys = EndpointKeys(f"{name}-keys", opts=child)
            env["MODELPLANE_PRIMARY_KEY"] = keys.primary_key
            env["MODELPLANE_SECONDARY_KEY"] = keys.secondary_key
            self.keys = keys.as_secret_dict()
        else:
            self.keys = pulumi.Output.secret({})
        props: dict[str, object] = {
            "name": container_name(args.stack_name, args.endpoint_name),
            "image": args.image_ref,
            "env": pulumi.Output.secret(env) if args.spec.auth_enabled else env,
            "ports": [{"internal": CONTAINER_PORT, "external": args.spec.port, "host_ip": "127.0.0.1"}],
            "labels": {
                "modelplane.stack": args.stack_name,
                "modelplane.endpoint": args.endpoint_name,
                # Known during preview (the keys are not), so the policy pack reads auth from here.
                "modelplane.auth": "key" if args.spec.auth_enabled else "none",
                **args.labels,
            },
            "restart": "unless-stopped",
        }
        if args.spec.cpu_cores:
            props["cpus"] = args.spec.cpu_cores
        if args.spec.memory_gb:
            props["memory_mb"] = int(args.spec.memory_gb * 1024)
        container = Container(f"{name}-container", props, opts=child)
        base = f"http://127.0.0.1:{args.spec.port}"
        self.scoring_uri = pulumi.Output.from_input(f"{base}/score")
        self.swagger_uri = pulumi.Output.from_input(f"{base}/swagger.json")
        self.container_id = container.container_id
        self.register_outputs({"scoring_uri": self.scoring_uri, "swagger_uri": self.swagger_uri, "keys": self.keys})
