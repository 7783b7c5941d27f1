"""metrics-server for the local cluster's real node: the kubelet's resource metrics (CPU and memory of
each pod), served as `metrics.k8s.io` through the API server's aggregation layer, where the
HorizontalPodAutoscaler and `kubectl top` read them.

metrics-server runs as a process of the cluster, on the node's address (no pod, no image to pull);
a Service without a selector and its Endpoints point the aggregator at it. It scrapes the kubelet
with a client certificate of the cluster's CA, as on AKS.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelplane.local_node import NODE_IP

if TYPE_CHECKING:
    from modelplane.local_cluster import Credentials, LocalCluster

METRICS_GROUP = "metrics.k8s.io"
METRICS_VERSION = "v1beta1"
SERVICE = "metrics-server"
NAMESPACE = "kube-system"


def metrics_server_args(cluster: LocalCluster, port: int, kubeconfig: Path) -> list[str]:
    return [
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        f"--bind-address={NODE_IP}",
        f"--secure-port={port}",
        f"--cert-dir={cluster.workdir / 'metrics-server'}",
        # The kubelet serves a self-signed certificate and listens on the port its Node reports.
        "--kubelet-insecure-tls",
        "--kubelet-use-node-status-port",
        "--kubelet-preferred-address-types=InternalIP",
        # The shortest resolution metrics-server allows (above the scrape timeout): the HPA sees load
        # within seconds.
        "--metric-resolution=10s",
        "--kubelet-request-timeout=5s",
    ]


def registration(port: int) -> list[dict[str, Any]]:
    """The Service, its Endpoints (the process on the node's address) and the APIService."""
    named_port = {"name": "https", "port": port, "protocol": "TCP"}
    return [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": SERVICE, "namespace": NAMESPACE},
            "spec": {"ports": [{"name": "https", "port": 443, "targetPort": port, "protocol": "TCP"}]},
        },
        {
            "apiVersion": "v1",
            "kind": "Endpoints",
            "metadata": {"name": SERVICE, "namespace": NAMESPACE},
            "subsets": [{"addresses": [{"ip": NODE_IP}], "ports": [named_port]}],
        },
        {
            "apiVersion": "apiregistration.k8s.io/v1",
            "kind": "APIService",
            "metadata": {"name": f"{METRICS_VERSION}.{METRICS_GROUP}"},
            "spec": {
                "group": METRICS_GROUP,
                "version": METRICS_VERSION,
                "service": {"name": SERVICE, "namespace": NAMESPACE, "port": 443},
                # Its serving certificate is self-signed; the connection never leaves the machine.
                "insecureSkipTLSVerify": True,
                "groupPriorityMinimum": 100,
                "versionPriority": 100,
            },
        },
    ]


def start_metrics_server(cluster: LocalCluster, binary: Path, credentials: Credentials) -> None:
    """Start metrics-server and register it with the aggregator (its first metrics follow a scrape later)."""
    from modelplane.local_cluster import kubeconfig_text

    port = cluster.free_port()
    kubeconfig = cluster.workdir / "metrics-server.kubeconfig"
    user = {
        "client-certificate": str(credentials.metrics_client_cert),
        "client-key": str(credentials.metrics_client_key),
    }
    kubeconfig.touch(mode=0o600)
    kubeconfig.write_text(kubeconfig_text(cluster.server, credentials, user=user))
    cluster.spawn("metrics-server", metrics_server_args(cluster, port, kubeconfig), binary=binary)
    cluster.wait_for("metrics-server /livez", lambda: _answers(port))
    items = registration(port)
    cluster.kubectl("apply", "-f", "-", input_text=json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))


def _answers(port: int) -> bool:
    """Whether metrics-server serves on `port` (its self-signed certificate is not checked: loopback)."""
    import ssl
    import urllib.error
    import urllib.request

    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    try:
        urllib.request.urlopen(f"https://{NODE_IP}:{port}/livez", context=context, timeout=2)
    except urllib.error.HTTPError:
        return True  # it answers (401/403 without credentials): it is up
    return True


def pod_metrics(cluster: LocalCluster, namespace: str) -> list[dict[str, Any]]:
    """The PodMetrics of `namespace` (empty until metrics-server has scraped the node twice)."""
    path = f"/apis/{METRICS_GROUP}/{METRICS_VERSION}/namespaces/{namespace}/pods"
    return list(json.loads(cluster.kubectl("get", "--raw", path))["items"])
