"""LocalEndpoint: a router on 127.0.0.1:<port> in front of one scoring container per deployment, on
the local Docker engine (AML's LocalWebservice, with AML v2's deployments and traffic)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pulumi

from modelplane.providers.docker import Container
from modelplane.providers.keys import KeySettings, endpoint_keys, gate_env
from modelplane.providers.router import Network, Router
from modelplane.runtime.ports import MAX_BODY_BYTES
from modelplane.spec import LocalEndpointSpec
from modelplane.spec.schema import DEFAULT_DEPLOYMENT, LocalDeploymentSpec

CONTAINER_PORT = 5001
READY_PATH = "/ready"
READY_TIMEOUT_S = 300
"""How long a new deployment may take to pass its readiness probe (AML v2's default probe allows 300 s)."""
STOP_TIMEOUT_S = 30
"""How long a replaced deployment may take to finish the requests it has (gunicorn's graceful timeout)."""


@dataclass(frozen=True)
class LocalEndpointArgs:
    endpoint_name: str
    """The key under `endpoints:`."""
    spec: LocalEndpointSpec
    """Port, auth, limits, deployments and traffic from the stack."""
    image_refs: Mapping[str, pulumi.Input[str]]
    """The scoring image of each deployment, by deployment name."""
    stack_name: str
    """Stack name, for container names and labels."""
    labels: dict[str, str] = field(default_factory=dict)
    """Extra container labels."""
    max_body_bytes: int = MAX_BODY_BYTES
    """The largest request body the deployments take: the router refuses larger ones itself."""


def container_name(stack_name: str, endpoint_name: str) -> str:
    """The name of the endpoint's router: the container on its port."""
    return f"modelplane-{stack_name}-{endpoint_name}"


class LocalEndpoint(pulumi.ComponentResource):
    """A Docker network, one scoring container per deployment on it (no host port: each is replaced by a
    successor that is ready first), and the router on the endpoint's port. The keys reach the
    containers as environment from secrets, so they stay encrypted in state."""

    scoring_uri: pulumi.Output[str]
    swagger_uri: pulumi.Output[str]
    keys: pulumi.Output[dict[str, str]]
    container_id: pulumi.Output[str]
    """The router's container."""

    def __init__(self, name: str, args: LocalEndpointArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("modelplane:index:LocalEndpoint", name, None, opts)
        spec = args.spec
        keys = endpoint_keys(
            name, KeySettings(args.endpoint_name, spec.auth_mode != "none", rotation_days=spec.key_rotation_days), self
        )
        env: dict[str, pulumi.Input[str]] = {
            "MODELPLANE_PORT": str(CONTAINER_PORT),
            **gate_env(args.endpoint_name, spec.auth_mode),
            **keys.by_variable,
        }
        labels = {"modelplane.stack": args.stack_name, "modelplane.endpoint": args.endpoint_name, **args.labels}
        network = Network(
            f"{name}-network",
            {"name": container_name(args.stack_name, args.endpoint_name), "labels": labels},
            opts=pulumi.ResourceOptions(parent=self),
        )
        secret_env = pulumi.Output.secret(env) if keys.by_variable else env
        containers = {
            deployment: self._deployment(name, args, deployment, spec, network, secret_env, labels)
            for deployment, spec in args.spec.serving.items()
        }
        router = self._router(name, args, network, containers, labels)
        base = f"http://127.0.0.1:{args.spec.port}"
        self.keys = keys.exported
        self.scoring_uri = pulumi.Output.from_input(f"{base}/score")
        self.swagger_uri = pulumi.Output.from_input(f"{base}/swagger.json")
        self.container_id = router.container_id
        self.register_outputs({"scoring_uri": self.scoring_uri, "swagger_uri": self.swagger_uri, "keys": self.keys})

    def _deployment(
        self,
        name: str,
        args: LocalEndpointArgs,
        deployment: str,
        spec: LocalDeploymentSpec,
        network: Network,
        env: pulumi.Input[dict[str, pulumi.Input[str]]],
        labels: dict[str, str],
    ) -> Container:
        props: dict[str, object] = {
            "name": f"{container_name(args.stack_name, args.endpoint_name)}-{deployment}",
            "unique_name": True,
            "image": args.image_refs[deployment],
            "env": env,
            "ports": [],
            "network": network.name,
            "labels": {**labels, "modelplane.deployment": deployment},
            "restart": "unless-stopped",
            # Known during preview (the keys are not): whether the gate asks for a key.
            "auth": args.spec.auth_mode,
            "ready": {"path": READY_PATH, "port": CONTAINER_PORT, "timeout": READY_TIMEOUT_S},
            "stop_timeout": STOP_TIMEOUT_S,
        }
        if spec.cpu_cores:
            props["cpus"] = spec.cpu_cores
        if spec.memory_gb:
            props["memory_mb"] = int(spec.memory_gb * 1024)
        # The single container of an endpoint deployed before deployments existed is this one.
        aliases = [pulumi.Alias(name=f"{name}-container")] if deployment == DEFAULT_DEPLOYMENT else []
        return Container(f"{name}-{deployment}", props, opts=pulumi.ResourceOptions(parent=self, aliases=aliases))

    def _router(
        self,
        name: str,
        args: LocalEndpointArgs,
        network: Network,
        containers: dict[str, Container],
        labels: dict[str, str],
    ) -> Router:
        traffic, mirror = args.spec.live_traffic, args.spec.mirror_traffic
        hosts = pulumi.Output.all(**{deployment: c.container_name for deployment, c in containers.items()})
        routes = hosts.apply(
            lambda found: [
                {
                    "name": deployment,
                    "host": found[deployment],
                    "port": CONTAINER_PORT,
                    "traffic": traffic.get(deployment, 0),
                    "mirror": mirror.get(deployment, 0),
                }
                for deployment in containers
            ]
        )
        props = {
            "name": container_name(args.stack_name, args.endpoint_name),
            "endpoint": args.endpoint_name,
            "port": args.spec.port,
            "network": network.name,
            "labels": labels,
            "routes": routes,
            "max_body_bytes": args.max_body_bytes,
            # Known during preview, for the plan's traffic line and the policy pack.
            "traffic": traffic,
            "mirror_traffic": mirror,
        }
        return Router(f"{name}-router", props, opts=pulumi.ResourceOptions(parent=self))
