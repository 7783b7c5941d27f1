"""AksCluster: an AKS cluster created with AML's DEV_TEST/FAST_PROD sizing, or attached; either way
a Kubernetes provider for the endpoints that run on it."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s
from pulumi_azure_native import authorization, containerservice, machinelearningservices

from modelplane.spec import ClusterSpec

AML_PURPOSE = {"DEV_TEST": "DevTest", "FAST_PROD": "FastProd"}
SYSTEM_POOL = "agentpool"


@dataclass(frozen=True)
class AzureClusterTarget:
    """The workspace a created or attached cluster is registered with as AML compute."""

    resource_group_name: pulumi.Input[str]
    """Resource group of the workspace (and of a created cluster)."""
    workspace_name: pulumi.Input[str]
    """The ML workspace."""
    location: pulumi.Input[str]
    """Default region."""


@dataclass(frozen=True)
class AksClusterArgs:
    cluster_name: str
    """The key under `clusters:`."""
    spec: ClusterSpec
    """Purpose, size, network and TLS from the stack, or what to attach."""
    azure: AzureClusterTarget | None = None
    """Workspace to register the cluster with; None only for a kubeconfig-attached cluster."""
    tags: dict[str, str] = field(default_factory=dict)
    """Tags on Azure resources."""
    namespaces: tuple[str, ...] = ()
    """Namespaces its endpoints use that the cluster does not have by itself (created here, once)."""


# On every Kubernetes object Modelplane deploys: the stack is the authority on the fields it
# declares. A hand edit (`kubectl scale`, `kubectl edit`) takes those fields' server-side-apply
# ownership, and without force the next `up` or drift remediation would fail with a field conflict
# instead of restoring them.
MANAGED_ANNOTATIONS = {"pulumi.com/patchForce": "true"}
BUILT_IN_NAMESPACES = frozenset({"default", "kube-system", "kube-public", "kube-node-lease"})


def check_cluster_args(args: AksClusterArgs) -> None:
    attach = args.spec.attach
    if args.azure is None and (attach is None or attach.kubeconfig is None):
        raise ValueError(f"cluster {args.cluster_name}: only a kubeconfig-attached cluster works without Azure")
    if attach is None and args.spec.cluster_purpose == "DEV_TEST" and args.spec.agents != 1:
        # AML refused DEV_TEST clusters with more than one node.
        raise ValueError(f"cluster {args.cluster_name}: DEV_TEST clusters have exactly 1 agent")


def subnet_id(subscription: str, spec: ClusterSpec) -> str:
    return (
        f"/subscriptions/{subscription}/resourceGroups/{spec.vnet_resourcegroup_name}"
        f"/providers/Microsoft.Network/virtualNetworks/{spec.vnet_name}/subnets/{spec.subnet_name}"
    )


def _first_kubeconfig(result: containerservice.ListManagedClusterUserCredentialsResult) -> str:
    kubeconfigs = result.kubeconfigs or []
    if not kubeconfigs or not kubeconfigs[0].value:
        return ""
    return base64.b64decode(kubeconfigs[0].value).decode()


class AksCluster(pulumi.ComponentResource):
    """Creates `containerservice.ManagedCluster` (agents, VM size, network) and registers it with the
    workspace as AML compute carrying its cluster purpose — or attaches an existing cluster by name
    or kubeconfig. `provider` deploys onto it."""

    provider: k8s.Provider
    kubernetes_version: pulumi.Output[str]
    cluster_purpose: str
    load_balancer_type: str

    def __init__(self, name: str, args: AksClusterArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("modelplane:index:AksCluster", name, None, opts)
        check_cluster_args(args)
        child = pulumi.ResourceOptions(parent=self)
        spec = args.spec
        self.cluster_purpose = spec.cluster_purpose
        self.load_balancer_type = spec.load_balancer_type
        self.ssl = spec.ssl
        kubeconfig: pulumi.Input[str]
        cluster_id: pulumi.Input[str] | None = None
        # Set when the cluster is an AKS resource (created or attached by name): node pools go there.
        self.managed_cluster_name: pulumi.Output[str] | None = None
        self.managed_resource_group: pulumi.Input[str] | None = None
        attach = spec.attach
        if attach is not None and attach.kubeconfig is not None:
            kubeconfig = pulumi.Output.secret(attach.kubeconfig.read_text())
            self.kubernetes_version = pulumi.Output.from_input(spec.kubernetes_version or "")
        elif attach is not None:
            assert attach.resource_group is not None and attach.cluster_name is not None
            found = containerservice.get_managed_cluster_output(
                resource_group_name=attach.resource_group, resource_name=attach.cluster_name
            )
            cluster_id = found.id
            self.managed_cluster_name = pulumi.Output.from_input(attach.cluster_name)
            self.managed_resource_group = attach.resource_group
            self.kubernetes_version = found.kubernetes_version.apply(lambda v: v or "")
            credentials = containerservice.list_managed_cluster_user_credentials_output(
                resource_group_name=attach.resource_group, resource_name=attach.cluster_name
            )
            kubeconfig = pulumi.Output.secret(credentials.apply(_first_kubeconfig))
        else:
            assert args.azure is not None
            network: dict[str, object] = {"load_balancer_sku": "standard"}
            pool: dict[str, object] = {
                "name": SYSTEM_POOL,
                "count": spec.agents,
                "vm_size": spec.vm_size,
                "mode": containerservice.AgentPoolMode.SYSTEM,
                "os_type": containerservice.OSType.LINUX,
                "type": containerservice.AgentPoolType.VIRTUAL_MACHINE_SCALE_SETS,
            }
            if spec.vnet_name:
                client = authorization.get_client_config_output()
                pool["vnet_subnet_id"] = client.subscription_id.apply(lambda sub: subnet_id(sub, spec))
                network["network_plugin"] = containerservice.NetworkPlugin.AZURE
            if spec.service_cidr:
                network["service_cidr"] = spec.service_cidr
            if spec.dns_service_ip:
                network["dns_service_ip"] = spec.dns_service_ip
            cluster = containerservice.ManagedCluster(
                f"{name}-aks",
                resource_name_=args.cluster_name,
                resource_group_name=args.azure.resource_group_name,
                location=spec.location or args.azure.location,
                dns_prefix=args.cluster_name,
                kubernetes_version=spec.kubernetes_version,
                agent_pool_profiles=[pool],
                network_profile=network,
                identity={"type": containerservice.ResourceIdentityType.SYSTEM_ASSIGNED},
                enable_rbac=True,
                tags={**args.tags, "aml-cluster-purpose": spec.cluster_purpose},
                opts=child,
            )
            cluster_id = cluster.id
            self.managed_cluster_name = cluster.name
            self.managed_resource_group = args.azure.resource_group_name
            self.kubernetes_version = cluster.current_kubernetes_version.apply(
                lambda v: v or spec.kubernetes_version or ""
            )
            credentials = containerservice.list_managed_cluster_user_credentials_output(
                resource_group_name=args.azure.resource_group_name, resource_name=cluster.name
            )
            kubeconfig = pulumi.Output.secret(credentials.apply(_first_kubeconfig))
        compute_tags: dict[str, pulumi.Input[str]] = dict(args.tags)
        if attach is not None:
            # What the policy pack checks for attached clusters.
            compute_tags["modelplane-attached"] = "true"
            compute_tags["modelplane-kubernetes-version"] = self.kubernetes_version
        if args.azure is not None and cluster_id is not None:
            # Register with the workspace, as AML's AksCompute did: this is where the purpose lives.
            machinelearningservices.Compute(
                f"{name}-compute",
                compute_name=args.cluster_name,
                resource_group_name=args.azure.resource_group_name,
                workspace_name=args.azure.workspace_name,
                location=spec.location or args.azure.location,
                # Typed args, not a dict: `properties` is a union, so dict keys would not be camelCased.
                properties=machinelearningservices.AKSArgs(
                    compute_type="AKS",
                    resource_id=cluster_id,
                    properties=machinelearningservices.AKSSchemaPropertiesArgs(
                        agent_count=spec.agents,
                        agent_vm_size=spec.vm_size,
                        cluster_purpose=AML_PURPOSE[spec.cluster_purpose],
                        load_balancer_type=spec.load_balancer_type,
                    ),
                ),
                tags=compute_tags,
                opts=child,
            )
        self.provider = k8s.Provider(f"{name}-k8s", kubeconfig=kubeconfig, opts=child)
        on_cluster = pulumi.ResourceOptions(parent=self, provider=self.provider)
        # One Namespace per namespace in use, so that endpoints sharing one do not fight over it.
        self.namespaces: dict[str, k8s.core.v1.Namespace] = {
            namespace: k8s.core.v1.Namespace(
                f"{name}-ns-{namespace}",
                metadata={
                    "name": namespace,
                    "labels": {"app.kubernetes.io/managed-by": "modelplane"},
                    "annotations": MANAGED_ANNOTATIONS,
                },
                opts=on_cluster,
            )
            for namespace in sorted(set(args.namespaces) - BUILT_IN_NAMESPACES)
        }
        self.register_outputs({"kubernetes_version": self.kubernetes_version})
