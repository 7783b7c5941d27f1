"""AksEndpoint: a scoring service on an AksCluster (AML's AksWebservice), as Kubernetes objects."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.aks_cluster import MANAGED_ANNOTATIONS, AksCluster
from components.scoring_image import RegistryTarget
from modelplane.app_insights import ENABLED_VARIABLE, KEY_VARIABLE
from modelplane.constants import DEPLOYMENT_LABEL, ENVIRONMENT_LABEL, MANAGED_BY_LABEL
from modelplane.kube_router import ROUTER_PORT, router_config_data, router_labels, router_pod_spec
from modelplane.providers.keys import EndpointKeyPair, KeySettings, endpoint_keys, gate_env
from modelplane.runtime.ports import MAX_BODY_BYTES, METRICS_PORT
from modelplane.spec import AksEndpointSpec, Autoscale, SslSpec
from modelplane.spec.schema import DEFAULT_DEPLOYMENT, AksDeploymentSpec

CONTAINER_PORT = 5001
SERVICE_PORT = 80
# pulumi-kubernetes waits this long for a Deployment to roll out, then fails the update.
ROLLOUT_TIMEOUT_ANNOTATION = "pulumi.com/timeoutSeconds"
SKIP_AWAIT_ANNOTATION = "pulumi.com/skipAwait"
IMAGE_START_SECONDS = 60
# A replica leaves the Service's endpoints before it is told to stop, so that no new request
# reaches a stopping server (kube-proxy needs a moment to drop it).
PRE_STOP_SECONDS = 5
KEY_GENERATION_ANNOTATION = "modelplane.io/key-generation"


@dataclass(frozen=True)
class AksEndpointArgs:
    endpoint_name: str
    """The key under `endpoints:`; Kubernetes objects are named after it."""
    spec: AksEndpointSpec
    """Replicas/autoscale, resources, probes, auth and namespace from the stack."""
    image_refs: dict[str, pulumi.Input[str]]
    """The scoring image of each deployment, by name (a plain `image` is the deployment `default`)."""
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
    app_insights_key: pulumi.Input[str] | None = None
    """The workspace's Application Insights instrumentation key, for `enable_app_insights`."""
    router_image: pulumi.Input[str] | None = None
    """The router's image (nginx), for an endpoint with named deployments."""
    max_body_bytes: int = MAX_BODY_BYTES
    """The largest request body the deployments take: the router refuses larger ones itself."""


@dataclass(frozen=True)
class Served:
    """One Deployment of the endpoint: the whole endpoint (a plain `image`), or one named deployment."""

    name: str
    """The deployment's name (`default` for a plain `image`)."""
    spec: AksDeploymentSpec
    """Its image and sizing, the endpoint's where it sets none."""
    image_ref: pulumi.Input[str]
    """Its scoring image."""
    metadata: dict[str, Any]
    """Name, namespace, labels and annotations of its Deployment, Service and autoscaler."""
    selector: dict[str, str]
    """The labels that select its pods."""


def cpu_quantity(cores: float) -> str:
    return f"{round(cores * 1000)}m"


def memory_quantity(gigabytes: float) -> str:
    return f"{round(gigabytes * 1024)}Mi"


def container_resources(spec: AksEndpointSpec, deployment: AksDeploymentSpec) -> dict[str, dict[str, str]]:
    """Requests as declared; limits as declared, else equal to requests (AML's default), plus GPUs if asked."""
    cpu, memory = deployment.cpu_cores or spec.cpu_cores, deployment.memory_gb or spec.memory_gb
    requests = {"cpu": cpu_quantity(cpu), "memory": memory_quantity(memory)}
    limits = {
        "cpu": cpu_quantity(spec.cpu_cores_limit or cpu),
        "memory": memory_quantity(spec.memory_gb_limit or memory),
    }
    if spec.gpu_cores:
        limits["nvidia.com/gpu"] = str(spec.gpu_cores)
    return {"requests": requests, "limits": limits}


def rollout_timeout_seconds(spec: AksEndpointSpec) -> int:
    """How long `up` waits for a roll-out: the liveness probe's window (a replica that has not become
    Ready by then will not) plus a minute to pull the image and start."""
    probe = spec.liveness_probe
    return probe.initial_delay_seconds + probe.period_seconds * probe.failure_threshold + IMAGE_START_SECONDS


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


def key_secret_env(
    component_name: str,
    keys: EndpointKeyPair,
    metadata: dict[str, object],
    opts: pulumi.ResourceOptions,
) -> list[dict[str, object]]:
    """The keys as a Kubernetes Secret (`<object>-keys`), and the container's environment reading it."""
    if not keys.by_variable:
        return []
    entries = {
        variable: variable.removeprefix("MODELPLANE_").lower().replace("_", "-") for variable in keys.by_variable
    }
    secret = k8s.core.v1.Secret(
        f"{component_name}-keys-secret",
        metadata={**metadata, "name": f"{metadata['name']}-keys"},
        string_data={entries[variable]: key for variable, key in keys.by_variable.items()},
        opts=opts,
    )
    return [
        {"name": variable, "value_from": {"secret_key_ref": {"name": secret.metadata.name, "key": entry}}}
        for variable, entry in entries.items()
    ]


def app_insights_secret_env(
    component_name: str, args: AksEndpointArgs, metadata: dict[str, object], opts: pulumi.ResourceOptions
) -> list[dict[str, object]]:
    """AML's Application Insights settings, the instrumentation key read from a Secret (`<object>-app-insights`)."""
    if not args.spec.enable_app_insights or args.app_insights_key is None:
        return []
    secret = k8s.core.v1.Secret(
        f"{component_name}-app-insights",
        metadata={**metadata, "name": f"{metadata['name']}-app-insights"},
        string_data={"instrumentation-key": pulumi.Output.secret(args.app_insights_key)},
        opts=opts,
    )
    key_ref = {"secret_key_ref": {"name": secret.metadata.name, "key": "instrumentation-key"}}
    return [{"name": ENABLED_VARIABLE, "value": "true"}, {"name": KEY_VARIABLE, "value_from": key_ref}]


def object_metadata(args: AksEndpointArgs) -> dict[str, object]:
    """Name, namespace, labels and ownership annotation of every object of the endpoint."""
    labels = {
        "app.kubernetes.io/name": args.endpoint_name,
        MANAGED_BY_LABEL: "modelplane",
        **({ENVIRONMENT_LABEL: args.environment} if args.environment else {}),
        **args.labels,
    }
    return {
        "name": args.endpoint_name,
        "namespace": args.spec.namespace,
        "labels": labels,
        "annotations": MANAGED_ANNOTATIONS,
    }


def runtime_env(args: AksEndpointArgs) -> list[dict[str, object]]:
    """The scoring runtime's settings from the deployment config."""
    spec = args.spec
    settings = {
        "MODELPLANE_PORT": str(CONTAINER_PORT),
        # The AML inference server's own scoring timeout; the runtime also stretches gunicorn's to it.
        "SCORING_TIMEOUT_MS": str(spec.scoring_timeout_ms),
        "MODELPLANE_WORKERS": str(spec.replica_max_concurrent_requests),
        "MODELPLANE_PATH_PREFIX": service_path(args.endpoint_name),
        **gate_env(args.endpoint_name, spec.auth_mode),
    }
    return [{"name": name, "value": value} for name, value in settings.items()]


def service_path(endpoint_name: str) -> str:
    """AML's scoring path on an AKS front end."""
    return f"/api/v1/service/{endpoint_name}"


def scoring_container(args: AksEndpointArgs, served: Served, env: list[dict[str, object]]) -> dict[str, object]:
    return {
        "name": "scoring",
        "image": served.image_ref,
        "ports": [
            {"container_port": CONTAINER_PORT, "name": "http"},
            {"container_port": METRICS_PORT, "name": "metrics"},
        ],
        "env": env,
        "resources": container_resources(args.spec, served.spec),
        "liveness_probe": liveness_probe(args.spec),
        "lifecycle": {"pre_stop": {"sleep": {"seconds": PRE_STOP_SECONDS}}},
        "readiness_probe": {
            "http_get": {"path": "/ready", "port": CONTAINER_PORT},
            "period_seconds": 5,
            "failure_threshold": 3,
        },
    }


def pod_annotations(key_generation: pulumi.Output[str]) -> dict[str, pulumi.Input[str]]:
    """Where Prometheus finds the scoring metrics (its scrape annotations), and the keys' generation."""
    return {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(METRICS_PORT),
        "prometheus.io/path": "/metrics",
        KEY_GENERATION_ANNOTATION: key_generation,
    }


def autoscaler_spec(scaling: Autoscale, deployment_name: pulumi.Input[str]) -> dict[str, object]:
    """An autoscaling/v2 HPA on CPU utilisation, scaling up at most 4 pods per refresh period."""
    return {
        "scale_target_ref": {"api_version": "apps/v1", "kind": "Deployment", "name": deployment_name},
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
            "scale_up": {"policies": [{"type": "Pods", "value": 4, "period_seconds": scaling.refresh_seconds}]},
        },
    }


def served_deployments(args: AksEndpointArgs, metadata: dict[str, Any]) -> list[Served]:
    """The endpoint's Deployments: one named after the endpoint for a plain `image`, else one per
    named deployment (`<endpoint>-<deployment>`, its pods labelled with the deployment)."""
    if not args.spec.routed:
        (default,) = args.spec.serving.values()
        selector = {"app.kubernetes.io/name": args.endpoint_name}
        return [Served(DEFAULT_DEPLOYMENT, default, args.image_refs[DEFAULT_DEPLOYMENT], metadata, selector)]
    served = []
    for deployment, spec in args.spec.serving.items():
        selector = {"app.kubernetes.io/name": args.endpoint_name, DEPLOYMENT_LABEL: deployment}
        labels = {**metadata["labels"], DEPLOYMENT_LABEL: deployment}
        named = {**metadata, "name": f"{args.endpoint_name}-{deployment}", "labels": labels}
        served.append(Served(deployment, spec, args.image_refs[deployment], named, selector))
    return served


def resource_name(component_name: str, served: Served, kind: str) -> str:
    """Pulumi's name for one object of a Deployment (the names of a plain `image`'s are unchanged)."""
    if served.metadata["name"] == served.selector.get("app.kubernetes.io/name"):
        return f"{component_name}-{kind}"
    return f"{component_name}-{served.name}-{kind}"


def deployment_scaling(deployment: AksDeploymentSpec, spec: AksEndpointSpec) -> Autoscale | None:
    """The autoscaler of one Deployment: none when its replicas are fixed, else the endpoint's."""
    return None if deployment.num_replicas is not None else spec.scaling


def http_service(
    resource: str,
    metadata: dict[str, Any],
    service_type: str,
    selector: dict[str, str],
    opts: pulumi.ResourceOptions,
    target_port: int = CONTAINER_PORT,
) -> k8s.core.v1.Service:
    """A Service on SERVICE_PORT in front of the pods `selector` picks."""
    return k8s.core.v1.Service(
        resource,
        metadata=metadata,
        spec={
            "type": service_type,
            "selector": selector,
            "ports": [{"name": "http", "port": SERVICE_PORT, "target_port": target_port}],
        },
        opts=opts,
    )


def load_balancer_host(status: Any) -> str:
    if status and status.load_balancer and status.load_balancer.ingress:
        ingress = status.load_balancer.ingress[0]
        return str(ingress.ip or ingress.hostname or "")
    return ""


class AksEndpoint(pulumi.ComponentResource):
    """Secret (keys), Deployment (requests, probes, keys from the Secret), Service,
    HorizontalPodAutoscaler and, on a cluster with TLS, an Ingress with its certificate. With named
    `deployments`: a Deployment, a ClusterIP Service and an autoscaler per deployment, and a router
    (nginx, its configuration in a ConfigMap) behind the endpoint's Service."""

    scoring_uri: pulumi.Output[str]
    swagger_uri: pulumi.Output[str]
    keys: pulumi.Output[dict[str, str]]

    def __init__(self, name: str, args: AksEndpointArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("modelplane:index:AksEndpoint", name, None, opts)
        namespace = args.cluster.namespaces.get(args.spec.namespace)
        on_cluster = pulumi.ResourceOptions(
            parent=self, provider=args.cluster.provider, depends_on=[namespace] if namespace is not None else []
        )
        metadata = object_metadata(args)
        spec = args.spec
        settings = KeySettings(args.endpoint_name, spec.auth_mode != "none", spec.supplied_keys, spec.key_rotation_days)
        keys = endpoint_keys(name, settings, self)
        env = runtime_env(args) + key_secret_env(name, keys, metadata, on_cluster)
        env += app_insights_secret_env(name, args, metadata, on_cluster)
        pod_spec = self._pull_secret(name, args, metadata, on_cluster)
        served = served_deployments(args, metadata)
        deployments = [self._deployment(name, args, s, {**pod_spec}, env, keys.generation, on_cluster) for s in served]
        if spec.routed:
            backends = {s.name: self._backend_service(name, s, on_cluster) for s in served}
            self._router(name, args, metadata, backends, deployments, pod_spec, on_cluster)
            service = self._service(name, args, metadata, router_labels(args.endpoint_name), ROUTER_PORT, on_cluster)
        else:
            selector = {"app.kubernetes.io/name": args.endpoint_name}
            service = self._service(name, args, metadata, selector, CONTAINER_PORT, on_cluster)
        base = self._base_uri(name, args, service, metadata, on_cluster)
        self.keys = keys.exported
        self.scoring_uri = base.apply(lambda b: f"{b}/score")
        self.swagger_uri = base.apply(lambda b: f"{b}/swagger.json")
        self.register_outputs({"scoring_uri": self.scoring_uri, "swagger_uri": self.swagger_uri, "keys": self.keys})

    def _pull_secret(
        self, name: str, args: AksEndpointArgs, metadata: dict[str, object], on_cluster: pulumi.ResourceOptions
    ) -> dict[str, object]:
        """The pod spec's `image_pull_secrets` for a private registry (a Secret of its own), else nothing."""
        if args.registry is None:
            return {}
        config: pulumi.Output[str] = pulumi.Output.secret(docker_config(args.registry))
        pull_secret = k8s.core.v1.Secret(
            f"{name}-pull-secret",
            metadata={**metadata, "name": f"{args.endpoint_name}-registry"},
            type="kubernetes.io/dockerconfigjson",
            string_data={".dockerconfigjson": config},
            opts=on_cluster,
        )
        return {"image_pull_secrets": [{"name": pull_secret.metadata.name}]}

    def _deployment(
        self,
        name: str,
        args: AksEndpointArgs,
        served: Served,
        pod_spec: dict[str, object],
        env: list[dict[str, object]],
        key_generation: pulumi.Output[str],
        on_cluster: pulumi.ResourceOptions,
    ) -> k8s.apps.v1.Deployment:
        pod_spec["containers"] = [scoring_container(args, served, env)]
        scaling = deployment_scaling(served.spec, args.spec)
        annotations = {**MANAGED_ANNOTATIONS, ROLLOUT_TIMEOUT_ANNOTATION: str(rollout_timeout_seconds(args.spec))}
        # An autoscaled Deployment leaves `replicas` to its HPA (starting at min_replicas): a manifest
        # that sets it would put every update back to that count, under whatever load made the HPA scale.
        replicas = {"replicas": served.spec.num_replicas} if scaling is None else {}
        deployment = k8s.apps.v1.Deployment(
            resource_name(name, served, "deployment"),
            metadata={**served.metadata, "annotations": annotations},
            spec={
                **replicas,
                "selector": {"match_labels": served.selector},
                # Zero-downtime updates: a new replica is Ready before an old one goes.
                "strategy": {"type": "RollingUpdate", "rolling_update": {"max_unavailable": 0, "max_surge": 1}},
                # Pods read the keys once, at start: a rotation rolls them (new keys ready first).
                "template": {
                    "metadata": {"labels": served.metadata["labels"], "annotations": pod_annotations(key_generation)},
                    "spec": pod_spec,
                },
            },
            opts=on_cluster,
        )
        if scaling is not None and scaling.enabled:
            k8s.autoscaling.v2.HorizontalPodAutoscaler(
                resource_name(name, served, "hpa"),
                metadata=served.metadata,
                spec=autoscaler_spec(scaling, deployment.metadata.name),
                opts=on_cluster,
            )
        return deployment

    def _backend_service(self, name: str, served: Served, on_cluster: pulumi.ResourceOptions) -> k8s.core.v1.Service:
        """A named deployment's ClusterIP Service: the address its router sends requests to. Its
        Deployment's roll-out is what `up` waits for: a deployment that never gets ready fails there,
        within its probe window, not ten minutes later for want of endpoints behind its Service."""
        metadata = {**served.metadata, "annotations": {**MANAGED_ANNOTATIONS, SKIP_AWAIT_ANNOTATION: "true"}}
        return http_service(resource_name(name, served, "service"), metadata, "ClusterIP", served.selector, on_cluster)

    def _router(
        self,
        name: str,
        args: AksEndpointArgs,
        metadata: dict[str, object],
        backends: dict[str, k8s.core.v1.Service],
        deployments: list[k8s.apps.v1.Deployment],
        pod_spec: dict[str, object],
        on_cluster: pulumi.ResourceOptions,
    ) -> k8s.apps.v1.Deployment:
        """The router's configuration (a new ConfigMap for each: pods never see theirs change) and its
        Deployment, rolled once every deployment it routes to has rolled out."""
        spec = args.spec
        addresses = pulumi.Output.all(
            **{deployment: service.spec.cluster_ip for deployment, service in backends.items()}
        )
        labels = {**metadata["labels"], **router_labels(args.endpoint_name)}  # type: ignore[dict-item]
        # No name: Pulumi names it, so that a changed configuration is a new ConfigMap made before the old goes.
        config = k8s.core.v1.ConfigMap(
            f"{name}-router-config",
            metadata={"namespace": spec.namespace, "labels": labels, "annotations": MANAGED_ANNOTATIONS},
            data=router_config_data(
                args.endpoint_name,
                addresses,
                SERVICE_PORT,
                (spec.live_traffic, spec.mirror_traffic),
                args.max_body_bytes,
            ),
            opts=on_cluster,
        )
        if args.router_image is None:
            raise ValueError(f"endpoint {args.endpoint_name} has deployments and no router image")
        annotations = {**MANAGED_ANNOTATIONS, ROLLOUT_TIMEOUT_ANNOTATION: str(IMAGE_START_SECONDS * 2)}
        return k8s.apps.v1.Deployment(
            f"{name}-router",
            metadata={**metadata, "name": f"{args.endpoint_name}-router", "labels": labels, "annotations": annotations},
            spec=router_pod_spec(
                args.endpoint_name, labels, args.router_image, config.metadata.name, pod_spec, PRE_STOP_SECONDS
            ),
            opts=pulumi.ResourceOptions.merge(on_cluster, pulumi.ResourceOptions(depends_on=deployments)),
        )

    def _service(
        self,
        name: str,
        args: AksEndpointArgs,
        metadata: dict[str, object],
        selector: dict[str, str],
        target_port: int,
        on_cluster: pulumi.ResourceOptions,
    ) -> k8s.core.v1.Service:
        annotations = dict(MANAGED_ANNOTATIONS)
        if args.cluster.load_balancer_type == "InternalLoadBalancer":
            annotations["service.beta.kubernetes.io/azure-load-balancer-internal"] = "true"
        service_metadata = {**metadata, "annotations": annotations}
        return http_service(f"{name}-service", service_metadata, args.service_type, selector, on_cluster, target_port)

    def _base_uri(
        self,
        name: str,
        args: AksEndpointArgs,
        service: k8s.core.v1.Service,
        metadata: dict[str, object],
        on_cluster: pulumi.ResourceOptions,
    ) -> pulumi.Output[str]:
        """https://<cname>/api/v1/service/<name> behind the cluster's TLS Ingress, else the Service's address."""
        path = service_path(args.endpoint_name)
        if args.cluster.ssl is not None:
            self._ingress(name, args, args.cluster.ssl, metadata, path, on_cluster)
            return pulumi.Output.from_input(f"https://{args.cluster.ssl.cname}{path}")
        node_address = args.cluster.node_address
        if node_address is not None:
            node_port: pulumi.Output[Any] = service.spec.ports.apply(
                lambda ports: ports[0].node_port if ports else None
            )
            return node_port.apply(lambda port: f"http://{node_address}:{port}")
        host = service.status.apply(load_balancer_host)
        return pulumi.Output.all(host, service.spec.cluster_ip).apply(
            lambda parts: f"http://{parts[0] or parts[1] or args.endpoint_name}"
        )

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
