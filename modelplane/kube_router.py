"""The router of an AKS endpoint with named deployments, as Kubernetes objects: the same nginx and the
same configuration as a local endpoint's router (modelplane/router.py), sending each request to a
deployment's ClusterIP Service.

The configuration lives in a ConfigMap that also holds the traffic shares (`traffic.<deployment>`,
for plans and the policy pack). A changed configuration is a new ConfigMap and a rolled router
Deployment: new router pods are Ready (they answer the configuration probe) before old ones leave the
Service, and an old pod finishes its requests before nginx quits.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pulumi

from modelplane.constants import COMPONENT_LABEL, ROUTER_COMPONENT
from modelplane.router import (
    CONFIG_PATH,
    CONFIG_PROBE,
    PID_FILE,
    ROUTER_PORT,
    ROUTER_SYSCTLS,
    Route,
    render_config,
)
from modelplane.traffic import share_entries

__all__ = ["ROUTER_PORT", "router_config_data", "router_labels", "router_pod_spec"]

CONFIG_FILE = "nginx.conf"
ROUTER_REPLICAS = 2
"""Two: the router is on every request's path, and a node that goes takes one of them, not the endpoint."""
ROUTER_RESOURCES = {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"cpu": "500m", "memory": "128Mi"}}
SAFE_SYSCTLS = ("net.ipv4.ip_local_port_range",)
# How long an old router pod may finish its requests once it has left the Service (scoring takes up to
# the endpoint's timeout; requests still running after this are cut).
DRAIN_SECONDS = 60


def router_labels(endpoint: str) -> dict[str, str]:
    """The labels that select an endpoint's router pods (its Service's selector)."""
    return {"app.kubernetes.io/name": endpoint, COMPONENT_LABEL: ROUTER_COMPONENT}


def router_config_data(
    endpoint: str,
    addresses: pulumi.Output[dict[str, Any]],
    port: int,
    shares: tuple[Mapping[str, int], Mapping[str, int]],
    max_body_bytes: int,
) -> dict[str, pulumi.Input[str]]:
    """The ConfigMap's data: nginx.conf over the deployments' Service addresses, and the shares (live
    and mirrored; known during a preview, when new Services' addresses are not)."""
    traffic, mirror = shares
    routes = addresses.apply(
        lambda found: [
            Route(deployment, str(found[deployment]), port, traffic.get(deployment, 0), mirror.get(deployment, 0))
            for deployment in found
        ]
    )
    config: pulumi.Output[str] = routes.apply(
        lambda listed: render_config(endpoint, listed, resolver=None, max_body_bytes=max_body_bytes)
    )
    return {CONFIG_FILE: config, **share_entries(traffic, mirror)}


def quit_gracefully(pre_stop_seconds: int) -> list[str]:
    """The router's preStop: leave the Service's endpoints first, then let nginx finish what it has."""
    return [
        "/bin/sh",
        "-c",
        f"sleep {pre_stop_seconds}; nginx -c {CONFIG_PATH} -s quit; while [ -e {PID_FILE} ]; do sleep 0.2; done",
    ]


def router_pod_spec(
    endpoint: str,
    labels: dict[str, str],
    image: pulumi.Input[str],
    config_map: pulumi.Input[str],
    pod_spec: dict[str, object],
    pre_stop_seconds: int,
) -> dict[str, object]:
    """The router Deployment's spec: ROUTER_REPLICAS nginx pods reading the ConfigMap, Ready when they
    answer the configuration probe, rolled with no pod unavailable."""
    config_dir = CONFIG_PATH.rsplit("/", 1)[0]
    container = {
        "name": "router",
        "image": image,
        "ports": [{"container_port": ROUTER_PORT, "name": "http"}],
        "resources": ROUTER_RESOURCES,
        "volume_mounts": [{"name": "config", "mount_path": config_dir, "read_only": True}],
        "readiness_probe": {"http_get": {"path": CONFIG_PROBE, "port": ROUTER_PORT}, "period_seconds": 2},
        "liveness_probe": {"http_get": {"path": CONFIG_PROBE, "port": ROUTER_PORT}, "period_seconds": 10},
        "lifecycle": {"pre_stop": {"exec": {"command": quit_gracefully(pre_stop_seconds)}}},
    }
    return {
        "replicas": ROUTER_REPLICAS,
        "selector": {"match_labels": router_labels(endpoint)},
        "strategy": {"type": "RollingUpdate", "rolling_update": {"max_unavailable": 0, "max_surge": 1}},
        "template": {
            "metadata": {"labels": labels},
            "spec": {
                **pod_spec,
                "termination_grace_period_seconds": pre_stop_seconds + DRAIN_SECONDS,
                # Kubernetes counts only the port range among the router's sysctls as safe (allowed
                # everywhere): the range alone doubles the ports for connections to deployments.
                "security_context": {
                    "sysctls": [{"name": name, "value": ROUTER_SYSCTLS[name]} for name in SAFE_SYSCTLS]
                },
                "containers": [container],
                "volumes": [
                    {
                        "name": "config",
                        "config_map": {"name": config_map, "items": [{"key": CONFIG_FILE, "path": CONFIG_FILE}]},
                    }
                ],
            },
        },
    }
