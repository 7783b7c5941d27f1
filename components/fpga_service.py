"""FpgaService: an accelerated model served from a pool of FPGA (PB-series) nodes on AKS."""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s
from pulumi_azure_native import containerservice

from components.aks_cluster import MANAGED_ANNOTATIONS, AksCluster, AksClusterArgs, AzureClusterTarget
from modelplane.providers.keys import EndpointKeys
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


def check_fpga_args(args: FpgaServiceArgs) -> None:
    if not args.spec.vm_size.startswith("Standard_PB"):
        raise ValueError(f"fpga {args.service_name}: vm_size must be a PB-series size, not {args.spec.vm_size}")
    if args.cluster is not None and args.cluster.managed_cluster_name is None:
        raise ValueError(f"fpga {args.service_name}: the cluster must be an AKS cluster (not a kubeconfig)")


class FpgaService(pulumi.ComponentResource):
    """An AKS node pool of FPGA VMs (tainted so that only FPGA work lands there) and the model
    service: keys Secret, Deployment asking for the FPGA resource, and a LoadBalancer Service."""

    scoring_uri: pulumi.Output[str]
    keys: pulumi.Output[dict[str, str]]

    def __init__(self, name: str, args: FpgaServiceArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("modelplane:index:FpgaService", name, None, opts)
        check_fpga_args(args)
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
        assert cluster.managed_cluster_name is not None and cluster.managed_resource_group is not None
        pool = containerservice.AgentPool(
            f"{name}-pool",
            agent_pool_name="fpga",
            resource_name_=cluster.managed_cluster_name,
            resource_group_name=cluster.managed_resource_group,
            count=spec.agent_count,
            vm_size=spec.vm_size,
            mode=containerservice.AgentPoolMode.USER,
            os_type=containerservice.OSType.LINUX,
            node_labels={"modelplane/accelerator": "fpga"},
            node_taints=["modelplane/accelerator=fpga:NoSchedule"],
            tags={**args.tags, "modelplane-fpga-location": spec.location},
            opts=child,
        )
        on_cluster = pulumi.ResourceOptions(parent=self, provider=cluster.provider, depends_on=[pool])
        labels = {"app.kubernetes.io/name": args.service_name, "app.kubernetes.io/managed-by": "modelplane"}
        metadata = {"name": args.service_name, "labels": labels, "annotations": MANAGED_ANNOTATIONS}
        env: list[dict[str, object]] = [{"name": "MODEL_NAME", "value": spec.model}]
        if spec.auth_enabled:
            keys = EndpointKeys(f"{name}-keys", opts=child)
            secret = k8s.core.v1.Secret(
                f"{name}-keys-secret",
                metadata={**metadata, "name": f"{args.service_name}-keys"},
                string_data={"primary-key": keys.primary_key, "secondary-key": keys.secondary_key},
                opts=on_cluster,
            )
            env += [
                {
                    "name": "MODELPLANE_PRIMARY_KEY",
                    "value_from": {"secret_key_ref": {"name": secret.metadata.name, "key": "primary-key"}},
                },
                {
                    "name": "MODELPLANE_SECONDARY_KEY",
                    "value_from": {"secret_key_ref": {"name": secret.metadata.name, "key": "secondary-key"}},
                },
            ]
            self.keys = keys.as_secret_dict()
        else:
            self.keys = pulumi.Output.secret({})
        k8s.apps.v1.Deployment(
            f"{name}-deployment",
            metadata=metadata,
            spec={
                "replicas": spec.agent_count,
                "selector": {"match_labels": {"app.kubernetes.io/name": args.service_name}},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "node_selector": {"modelplane/accelerator": "fpga"},
                        "tolerations": [
                            {
                                "key": "modelplane/accelerator",
                                "operator": "Equal",
                                "value": "fpga",
                                "effect": "NoSchedule",
                            }
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
                },
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
        self.scoring_uri = service.status.apply(
            lambda status: (
                f"{status.load_balancer.ingress[0].ip}:{SERVING_PORT}"
                if status and status.load_balancer and status.load_balancer.ingress
                else ""
            )
        )
        self.register_outputs({"scoring_uri": self.scoring_uri, "keys": self.keys})
