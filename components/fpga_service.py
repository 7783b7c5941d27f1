"""FpgaService: an accelerated model served from a pool of FPGA (PB-series) nodes on AKS."""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s
from pulumi_azure_native import containerservice

from components.aks_cluster import MANAGED_ANNOTATIONS, AksCluster, AksClusterArgs, AzureClusterTarget
from components.aks_endpoint import key_secret_env, load_balancer_host
from modelplane.constants import MANAGED_BY_LABEL
from modelplane.providers.keys import KeySettings, endpoint_keys
from modelplane.spec import ClusterSpec, FpgaSpec

FPGA_RESOURCE = "microsoft.com/fpga"
# Repository of AML's accelerated (Project Brainwave) model servers; override with `image:`.
ACCELERATED_IMAGE = "mcr.microsoft.com/azureml/accelerated-models/{model}:latest"
SERVING_PORT = 50051


@dataclass(frozen=True)
class FpgaServiceArgs:
    service_name: str
    """The key under `fpga:`."""
    spec: FpgaSpec
    """Model, region, VM size and node count from the stack."""
    azure: AzureClusterTarget
    """Workspace and resource group."""
    cluster: AksCluster | None = None
    """Existing cluster to add the FPGA pool to; None creates a dedicated one."""
    tags: dict[str, str] = field(default_factory=dict)
    """Tags on Azure resources."""


def pod_template(args: FpgaServiceArgs, labels: dict[str, str], env: list[dict[str, object]]) -> dict[str, object]:
    """Pods on the FPGA nodes only (their selector and taint), asking for one FPGA each."""
    spec = args.spec
    return {
        "metadata": {"labels": labels},
        "spec": {
            "node_selector": {"modelplane/accelerator": "fpga"},
            "tolerations": [
                {"key": "modelplane/accelerator", "operator": "Equal", "value": "fpga", "effect": "NoSchedule"}
            ],
            "containers": [
                {
                    "name": "accelerated-model",
                    "image": spec.image or ACCELERATED_IMAGE.format(model=spec.model),
                    "ports": [{"container_port": SERVING_PORT, "name": "grpc"}],
                    "env": env,
                    "resources": {"limits": {FPGA_RESOURCE: "1"}},
                }
            ],
        },
    }


class FpgaService(pulumi.ComponentResource):
    """An AKS node pool of FPGA VMs (tainted so that only FPGA work lands there) and the model
    service: keys Secret, Deployment asking for the FPGA resource, and a LoadBalancer Service."""

    scoring_uri: pulumi.Output[str]
    keys: pulumi.Output[dict[str, str]]

    def __init__(self, name: str, args: FpgaServiceArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("modelplane:index:FpgaService", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        spec = args.spec
        cluster = args.cluster or AksCluster(
            f"{name}-cluster",
            AksClusterArgs(
                cluster_name=f"{args.service_name}-aks",
                spec=ClusterSpec(cluster_purpose="DEV_TEST", agent_count=1, location=spec.location),
                azure=args.azure,
                tags=args.tags,
            ),
            opts=child,
        )
        pool = self._pool(name, args, cluster)
        on_cluster = pulumi.ResourceOptions(parent=self, provider=cluster.provider, depends_on=[pool])
        labels = {"app.kubernetes.io/name": args.service_name, MANAGED_BY_LABEL: "modelplane"}
        metadata: dict[str, object] = {"name": args.service_name, "labels": labels, "annotations": MANAGED_ANNOTATIONS}
        keys = endpoint_keys(name, KeySettings(args.service_name, spec.auth_enabled), self)
        env: list[dict[str, object]] = [{"name": "MODEL_NAME", "value": spec.model}]
        env += key_secret_env(name, keys, metadata, on_cluster)
        k8s.apps.v1.Deployment(
            f"{name}-deployment",
            metadata=metadata,
            spec={
                "replicas": spec.agent_count,
                "selector": {"match_labels": {"app.kubernetes.io/name": args.service_name}},
                "template": pod_template(args, labels, env),
            },
            opts=on_cluster,
        )
        service = k8s.core.v1.Service(
            f"{name}-service",
            metadata=metadata,
            spec={
                "type": "LoadBalancer",
                "selector": {"app.kubernetes.io/name": args.service_name},
                "ports": [{"name": "grpc", "port": SERVING_PORT, "target_port": SERVING_PORT}],
            },
            opts=on_cluster,
        )
        self.keys = keys.exported
        self.scoring_uri = service.status.apply(
            lambda status: f"{host}:{SERVING_PORT}" if (host := load_balancer_host(status)) else ""
        )
        self.register_outputs({"scoring_uri": self.scoring_uri, "keys": self.keys})

    def _pool(self, name: str, args: FpgaServiceArgs, cluster: AksCluster) -> containerservice.AgentPool:
        """The FPGA node pool, tainted so that only FPGA work lands there."""
        if cluster.managed_cluster_name is None or cluster.managed_resource_group is None:
            # The spec refuses an FPGA service on a cluster attached by kubeconfig.
            raise ValueError(f"fpga {args.service_name}: the cluster must be an AKS cluster")
        return containerservice.AgentPool(
            f"{name}-pool",
            agent_pool_name="fpga",
            resource_name_=cluster.managed_cluster_name,
            resource_group_name=cluster.managed_resource_group,
            count=args.spec.agent_count,
            vm_size=args.spec.vm_size,
            mode=containerservice.AgentPoolMode.USER,
            os_type=containerservice.OSType.LINUX,
            node_labels={"modelplane/accelerator": "fpga"},
            node_taints=["modelplane/accelerator=fpga:NoSchedule"],
            tags={**args.tags, "modelplane-fpga-location": args.spec.location},
            opts=pulumi.ResourceOptions(parent=self),
        )
