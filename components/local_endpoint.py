"""LocalEndpoint: a scoring container on the local Docker engine (AML's LocalWebservice)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi

from modelplane.providers.docker import Container
from modelplane.providers.keys import endpoint_keys
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
        keys = endpoint_keys(name, args.spec.auth_enabled, self)
        env: dict[str, pulumi.Input[str]] = {"MODELPLANE_PORT": str(CONTAINER_PORT), **keys.by_variable}
        props: dict[str, object] = {
            "name": container_name(args.stack_name, args.endpoint_name),
            "image": args.image_ref,
            "env": pulumi.Output.secret(env) if keys.by_variable else env,
            "ports": [{"internal": CONTAINER_PORT, "external": args.spec.port, "host_ip": "127.0.0.1"}],
            "labels": {"modelplane.stack": args.stack_name, "modelplane.endpoint": args.endpoint_name, **args.labels},
            "restart": "unless-stopped",
            # Known during preview (the keys are not): whether the gate asks for a key.
            "auth": "key" if args.spec.auth_enabled else "none",
        }
        if args.spec.cpu_cores:
            props["cpus"] = args.spec.cpu_cores
        if args.spec.memory_gb:
            props["memory_mb"] = int(args.spec.memory_gb * 1024)
        container = Container(f"{name}-container", props, opts=pulumi.ResourceOptions(parent=self))
        base = f"http://127.0.0.1:{args.spec.port}"
        self.keys = keys.exported
        self.scoring_uri = pulumi.Output.from_input(f"{base}/score")
        self.swagger_uri = pulumi.Output.from_input(f"{base}/swagger.json")
        self.container_id = container.container_id
        self.register_outputs({"scoring_uri": self.scoring_uri, "swagger_uri": self.swagger_uri, "keys": self.keys})
