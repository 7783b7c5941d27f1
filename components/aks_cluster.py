"""AksCluster: an AKS cluster created with AML's DEV_TEST/FAST_PROD sizing, or attached; either way
a Kubernetes provider for the endpoints that run on it."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from pathlib import Path

import pulumi
import pulumi_kubernetes as k8s
from pulumi_azure_native import authorization, containerservice, machinelearningservices

from modelplane.constants import MANAGED_BY_LABEL
from modelplane.naming import kubernetes_provider_name
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


@dataclass(frozen=True)
class ClusterAccess:
    """How the endpoints reach a cluster, and what Azure knows of it."""

    kubeconfig: pulumi.Input[str]
    """A secret: the credentials endpoints deploy with."""
    kubernetes_version: pulumi.Output[str]
    """The version it runs (the attached-version policy reads it)."""
    cluster_id: pulumi.Input[str] | None = None
    """The AKS resource id, registered with the workspace; None for a kubeconfig."""
    managed_cluster_name: pulumi.Output[str] | None = None
    """Set when it is an AKS resource (created or attached by name): node pools go there."""
    managed_resource_group: pulumi.Input[str] | None = None
    """Resource group of that AKS resource."""


def kubeconfig_access(spec: ClusterSpec, kubeconfig: Path) -> ClusterAccess:
    """Any cluster, through a kubeconfig file (no Azure)."""
    return ClusterAccess(
        kubeconfig=pulumi.Output.secret(kubeconfig.read_text()),
        kubernetes_version=pulumi.Output.from_input(spec.kubernetes_version or ""),
    )


def attached_access(resource_group: str, cluster_name: str) -> ClusterAccess:
    """An existing AKS cluster, looked up by name."""
    found = containerservice.get_managed_cluster_output(resource_group_name=resource_group, resource_name=cluster_name)
    credentials = containerservice.list_managed_cluster_user_credentials_output(
        resource_group_name=resource_group, resource_name=cluster_name
    )
    return ClusterAccess(
        kubeconfig=pulumi.Output.secret(credentials.apply(_first_kubeconfig)),
        kubernetes_version=found.kubernetes_version.apply(lambda v: v or ""),
        cluster_id=found.id,
        managed_cluster_name=pulumi.Output.from_input(cluster_name),
        managed_resource_group=resource_group,
    )


def system_pool(spec: ClusterSpec) -> tuple[dict[str, object], dict[str, object]]:
    """The system agent pool and the network profile of a created cluster."""
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
    return pool, network


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
        spec = args.spec
        self.cluster_purpose = spec.cluster_purpose
        self.load_balancer_type = spec.load_balancer_type
        self.ssl = spec.ssl
        self.node_address = spec.attach.node_address if spec.attach is not None else None
        access = self._access(name, args)
        self.kubernetes_version = access.kubernetes_version
        self.managed_cluster_name = access.managed_cluster_name
        self.managed_resource_group = access.managed_resource_group
        if args.azure is not None and access.cluster_id is not None:
            self._register_compute(name, args, args.azure, access)
        # Secrets are updated in place: by default pulumi-kubernetes replaces a changed Secret, and a
        # named one is deleted first, which makes the engine replace the Deployments that read it
        # (every replica at once). A key rotation instead rolls the Deployment through its
        # key-generation annotation, new replicas ready first.
        self.provider = k8s.Provider(
            kubernetes_provider_name(name),
            kubeconfig=access.kubeconfig,
            enable_secret_mutable=True,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.namespaces = self._namespaces(name, args.namespaces)
        self.register_outputs({"kubernetes_version": self.kubernetes_version})

    def _access(self, name: str, args: AksClusterArgs) -> ClusterAccess:
        attach = args.spec.attach
        if attach is not None and attach.kubeconfig is not None:
            return kubeconfig_access(args.spec, attach.kubeconfig)
        if attach is not None and attach.resource_group is not None and attach.cluster_name is not None:
            return attached_access(attach.resource_group, attach.cluster_name)
        if args.azure is None:
            # The spec allows only kubeconfig-attached clusters without an `azure:` section.
            raise ValueError(f"cluster {args.cluster_name} needs Azure")
        return self._created(name, args, args.azure)

    def _created(self, name: str, args: AksClusterArgs, azure: AzureClusterTarget) -> ClusterAccess:
        spec = args.spec
        pool, network = system_pool(spec)
        cluster = containerservice.ManagedCluster(
            f"{name}-aks",
            resource_name_=args.cluster_name,
            resource_group_name=azure.resource_group_name,
            location=spec.location or azure.location,
            dns_prefix=args.cluster_name,
            kubernetes_version=spec.kubernetes_version,
            agent_pool_profiles=[pool],
            network_profile=network,
            identity={"type": containerservice.ResourceIdentityType.SYSTEM_ASSIGNED},
            enable_rbac=True,
            tags={**args.tags, "aml-cluster-purpose": spec.cluster_purpose},
            opts=pulumi.ResourceOptions(parent=self),
        )
        credentials = containerservice.list_managed_cluster_user_credentials_output(
            resource_group_name=azure.resource_group_name, resource_name=cluster.name
        )
        return ClusterAccess(
            kubeconfig=pulumi.Output.secret(credentials.apply(_first_kubeconfig)),
            kubernetes_version=cluster.current_kubernetes_version.apply(lambda v: v or spec.kubernetes_version or ""),
            cluster_id=cluster.id,
            managed_cluster_name=cluster.name,
            managed_resource_group=azure.resource_group_name,
        )

    def _register_compute(
        self, name: str, args: AksClusterArgs, azure: AzureClusterTarget, access: ClusterAccess
    ) -> None:
        """Register with the workspace, as AML's AksCompute did: this is where the purpose lives."""
        spec = args.spec
        tags: dict[str, pulumi.Input[str]] = dict(args.tags)
        if spec.attach is not None:
            # What the policy pack checks for attached clusters.
            tags["modelplane-attached"] = "true"
            tags["modelplane-kubernetes-version"] = access.kubernetes_version
        machinelearningservices.Compute(
            f"{name}-compute",
            compute_name=args.cluster_name,
            resource_group_name=azure.resource_group_name,
            workspace_name=azure.workspace_name,
            location=spec.location or azure.location,
            # Typed args, not a dict: `properties` is a union, so dict keys would not be camelCased.
            properties=machinelearningservices.AKSArgs(
                compute_type="AKS",
                resource_id=access.cluster_id,
                properties=machinelearningservices.AKSSchemaPropertiesArgs(
                    agent_count=spec.agents,
                    agent_vm_size=spec.vm_size,
                    cluster_purpose=AML_PURPOSE[spec.cluster_purpose],
                    load_balancer_type=spec.load_balancer_type,
                ),
            ),
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _namespaces(self, name: str, wanted: tuple[str, ...]) -> dict[str, k8s.core.v1.Namespace]:
        """One Namespace per namespace in use, so that endpoints sharing one do not fight over it."""
        on_cluster = pulumi.ResourceOptions(parent=self, provider=self.provider)
        return {
            namespace: k8s.core.v1.Namespace(
                f"{name}-ns-{namespace}",
                metadata={
                    "name": namespace,
                    "labels": {MANAGED_BY_LABEL: "modelplane"},
                    "annotations": MANAGED_ANNOTATIONS,
                },
                opts=on_cluster,
            )
            for namespace in sorted(set(wanted) - BUILT_IN_NAMESPACES)
        }
