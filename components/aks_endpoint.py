"""AksEndpoint: a scoring service on an AksCluster (AML's AksWebservice), as Kubernetes objects."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s

from components.aks_cluster import MANAGED_ANNOTATIONS, AksCluster
from components.scoring_image import RegistryTarget
from modelplane.providers.keys import EndpointKeys
from modelplane.spec import AksEndpointSpec, SslSpec

CONTAINER_PORT = 5001
SERVICE_PORT = 80


@dataclass(frozen=True)
class AksEndpointArgs:
    endpoint_name: str
    """The key under `endpoints:`; Kubernetes objects are named after it."""
    spec: AksEndpointSpec
    """Replicas/autoscale, resources, probes, auth and namespace from the stack."""
    image_ref: pulumi.Input[str]
    """The scoring image."""
    cluster: AksCluster
    """The cluster it runs on (its Kubernetes provider, load balancer type and TLS)."""
    registry: RegistryTarget | None = None
    """Pull credentials for a private registry; None when the cluster can pull already."""
    service_type: str = "LoadBalancer"
    """Kubernetes Service type (ClusterIP on clusters without a cloud load balancer)."""
    labels: dict[str, str] = field(default_factory=dict)
    """Extra labels on every object."""
    environment: str | None = None
    """The stack's `environment` tag, as label modelplane.io/environment (the policy pack reads it)."""


def check_aks_args(args: AksEndpointArgs) -> None:
    scaling = args.spec.scaling
    if scaling is not None and scaling.min_replicas > scaling.max_replicas:
        raise ValueError(f"endpoint {args.endpoint_name}: autoscale min_replicas exceeds max_replicas")
    if args.service_type not in ("LoadBalancer", "ClusterIP", "NodePort"):
        raise ValueError(f"endpoint {args.endpoint_name}: unknown service type {args.service_type}")


def cpu_quantity(cores: float) -> str:
    return f"{round(cores * 1000)}m"


def memory_quantity(gigabytes: float) -> str:
    return f"{round(gigabytes * 1024)}Mi"


def container_resources(spec: AksEndpointSpec) -> dict[str, dict[str, str]]:
    """Requests as declared; limits equal to requests (AML's behaviour), plus GPUs if asked."""
    requests = {"cpu": cpu_quantity(spec.cpu_cores), "memory": memory_quantity(spec.memory_gb)}
    limits = dict(requests)
    if spec.gpu_cores:
        limits["nvidia.com/gpu"] = str(spec.gpu_cores)
    return {"requests": requests, "limits": limits}


def liveness_probe(spec: AksEndpointSpec) -> dict[str, object]:
    probe = spec.liveness_probe
    return {
        "http_get": {"path": "/", "port": CONTAINER_PORT},
        "period_seconds": probe.period_seconds,
        "initial_delay_seconds": probe.initial_delay_seconds,
        "timeout_seconds": probe.timeout_seconds,
        "success_threshold": probe.success_threshold,
        "failure_threshold": probe.failure_threshold,
    }


def docker_config(registry: RegistryTarget) -> pulumi.Output[str]:
    return pulumi.Output.all(registry.server, registry.username, registry.password).apply(
        lambda parts: json.dumps(
            {
                "auths": {
                    parts[0]: {
                        "username": parts[1],
                        "password": parts[2],
                        "auth": base64.b64encode(f"{parts[1]}:{parts[2]}".encode()).decode(),
                    }
                }
            }
        )
    )


class AksEndpoint(pulumi.ComponentResource):
    """Secret (keys), Deployment (requests, probes, keys from the Secret), Service,
    HorizontalPodAutoscaler and, on a cluster with TLS, an Ingress with its certificate."""

    scoring_uri: pulumi.Output[str]
    swagger_uri: pulumi.Output[str]
    keys: pulumi.Output[dict[str, str]]

    def __init__(self, name: str, args: AksEndpointArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("modelplane:index:AksEndpoint", name, None, opts)
        check_aks_args(args)
        spec = args.spec
        namespace = args.cluster.namespaces.get(spec.namespace)
        on_cluster = pulumi.ResourceOptions(
            parent=self, provider=args.cluster.provider, depends_on=[namespace] if namespace is not None else []
        )
        labels = {
            "app.kubernetes.io/name": args.endpoint_name,
            "app.kubernetes.io/managed-by": "modelplane",
            **({"modelplane.io/environment": args.environment} if args.environment else {}),
            **args.labels,
        }
        metadata: dict[str, object] = {
            "name": args.endpoint_name,
            "namespace": spec.namespace,
            "labels": labels,
            "annotations": MANAGED_ANNOTATIONS,
        }
        env: list[dict[str, object]] = [
            {"name": "MODELPLANE_PORT", "value": str(CONTAINER_PORT)},
            {"name": "MODELPLANE_SCORING_TIMEOUT_MS", "value": str(spec.scoring_timeout_ms)},
            {"name": "MODELPLANE_MAX_CONCURRENT_REQUESTS", "value": str(spec.replica_max_concurrent_requests)},
            {"name": "MODELPLANE_MAX_REQUEST_WAIT_MS", "value": str(spec.max_request_wait_time)},
            {"name": "MODELPLANE_WORKERS", "value": str(spec.replica_max_concurrent_requests)},
            {"name": "MODELPLANE_PATH_PREFIX", "value": f"/api/v1/service/{args.endpoint_name}"},
        ]
        if spec.auth_enabled:
            keys = EndpointKeys(f"{name}-keys", opts=pulumi.ResourceOptions(parent=self))
            key_secret = k8s.core.v1.Secret(
                f"{name}-keys-secret",
                metadata={**metadata, "name": f"{args.endpoint_name}-keys"},
                string_data={"primary-key": keys.primary_key, "secondary-key": keys.secondary_key},
                opts=on_cluster,
            )
            for variable, key in (
                ("MODELPLANE_PRIMARY_KEY", "primary-key"),
                ("MODELPLANE_SECONDARY_KEY", "secondary-key"),
            ):
                env.append(
                    {
                        "name": variable,
                        "value_from": {"secret_key_ref": {"name": key_secret.metadata.name, "key": key}},
                    }
                )
            self.keys = keys.as_secret_dict()
        else:
            self.keys = pulumi.Output.secret({})
        pod_spec: dict[str, object] = {
            "containers": [
                {
                    "name": "scoring",
                    "image": args.image_ref,
                    "ports": [{"container_port": CONTAINER_PORT, "name": "http"}],
                    "env": env,
                    "resources": container_resources(spec),
                    "liveness_probe": liveness_probe(spec),
                    "readiness_probe": {
                        "http_get": {"path": "/ready", "port": CONTAINER_PORT},
                        "period_seconds": 5,
                        "failure_threshold": 3,
                    },
                }
            ]
        }
        if args.registry is not None:
            config: pulumi.Output[str] = pulumi.Output.secret(docker_config(args.registry))
            pull_secret = k8s.core.v1.Secret(
                f"{name}-pull-secret",
                metadata={**metadata, "name": f"{args.endpoint_name}-registry"},
                type="kubernetes.io/dockerconfigjson",
                string_data={".dockerconfigjson": config},
                opts=on_cluster,
            )
            pod_spec["image_pull_secrets"] = [{"name": pull_secret.metadata.name}]
        scaling = spec.scaling
        deployment = k8s.apps.v1.Deployment(
            f"{name}-deployment",
            metadata=metadata,
            spec={
                "replicas": spec.num_replicas if scaling is None else scaling.min_replicas,
                "selector": {"match_labels": {"app.kubernetes.io/name": args.endpoint_name}},
                # Zero-downtime updates: a new replica is Ready before an old one goes.
                "strategy": {"type": "RollingUpdate", "rolling_update": {"max_unavailable": 0, "max_surge": 1}},
                "template": {"metadata": {"labels": labels}, "spec": pod_spec},
            },
            opts=on_cluster,
        )
        service_annotations = dict(MANAGED_ANNOTATIONS)
        if args.cluster.load_balancer_type == "InternalLoadBalancer":
            service_annotations["service.beta.kubernetes.io/azure-load-balancer-internal"] = "true"
        service = k8s.core.v1.Service(
            f"{name}-service",
            metadata={**metadata, "annotations": service_annotations},
            spec={
                "type": args.service_type,
                "selector": {"app.kubernetes.io/name": args.endpoint_name},
                "ports": [{"name": "http", "port": SERVICE_PORT, "target_port": CONTAINER_PORT}],
            },
            opts=on_cluster,
        )
        if scaling is not None and scaling.enabled:
            k8s.autoscaling.v2.HorizontalPodAutoscaler(
                f"{name}-hpa",
                metadata=metadata,
                spec={
                    "scale_target_ref": {
                        "api_version": "apps/v1",
                        "kind": "Deployment",
                        "name": deployment.metadata.name,
                    },
                    "min_replicas": scaling.min_replicas,
                    "max_replicas": scaling.max_replicas,
                    "metrics": [
                        {
                            "type": "Resource",
                            "resource": {
                                "name": "cpu",
                                "target": {"type": "Utilization", "average_utilization": scaling.target_utilization},
                            },
                        }
                    ],
                    "behavior": {
                        "scale_up": {
                            "policies": [{"type": "Pods", "value": 4, "period_seconds": scaling.refresh_seconds}]
                        },
                    },
                },
                opts=on_cluster,
            )
        path = f"/api/v1/service/{args.endpoint_name}"
        if args.cluster.ssl is not None:
            self._ingress(name, args, args.cluster.ssl, metadata, path, on_cluster)
            base = pulumi.Output.from_input(f"https://{args.cluster.ssl.cname}{path}")
        else:
            host = service.status.apply(
                lambda status: (
                    (status.load_balancer.ingress[0].ip or status.load_balancer.ingress[0].hostname or "")
                    if status and status.load_balancer and status.load_balancer.ingress
                    else ""
                )
            )
            base = pulumi.Output.all(host, service.spec.cluster_ip).apply(
                lambda parts: f"http://{parts[0] or parts[1] or args.endpoint_name}"
            )
        self.scoring_uri = base.apply(lambda b: f"{b}/score")
        self.swagger_uri = base.apply(lambda b: f"{b}/swagger.json")
        self.register_outputs({"scoring_uri": self.scoring_uri, "swagger_uri": self.swagger_uri, "keys": self.keys})

    def _ingress(
        self,
        name: str,
        args: AksEndpointArgs,
        ssl: SslSpec,
        metadata: dict[str, object],
        path: str,
        on_cluster: pulumi.ResourceOptions,
    ) -> None:
        tls = k8s.core.v1.Secret(
            f"{name}-tls",
            metadata={**metadata, "name": f"{args.endpoint_name}-tls"},
            type="kubernetes.io/tls",
            string_data={
                "tls.crt": ssl.cert_file.read_text(),
                "tls.key": pulumi.Output.secret(ssl.key_file.read_text()),
            },
            opts=on_cluster,
        )
        k8s.networking.v1.Ingress(
            f"{name}-ingress",
            metadata=metadata,
            spec={
                "tls": [{"hosts": [ssl.cname], "secret_name": tls.metadata.name}],
                "rules": [
                    {
                        "host": ssl.cname,
                        "http": {
                            "paths": [
                                {
                                    "path": path,
                                    "path_type": "Prefix",
                                    "backend": {
                                        "service": {"name": args.endpoint_name, "port": {"number": SERVICE_PORT}}
                                    },
                                }
                            ]
                        },
                    }
                ],
            },
            opts=on_cluster,
        )
