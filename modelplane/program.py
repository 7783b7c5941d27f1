"""The Pulumi program: one component per declared item, and the stack's outputs.

`build_stack` is an outline: one builder per section (models, images, clusters, endpoints, edge,
FPGA), each over a `BuildContext` that holds what the sections share (the workspace's facts, the
registry, resource options). `__main__.py` runs it through `modelplane.startup`; tests call
`build_stack()` under Pulumi's mocks.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pulumi

from components.local_endpoint import LocalEndpoint, LocalEndpointArgs
from components.registered_model import AzureModelTarget, LocalModelStore, RegisteredModel, RegisteredModelArgs
from components.scoring_image import RegistryTarget, ScoringImage, ScoringImageArgs
from modelplane.dockerfile import ModelFiles
from modelplane.engine import state_root
from modelplane.naming import cluster_resource_name
from modelplane.source import SpecError
from modelplane.spec import AciEndpointSpec, AksEndpointSpec, LocalEndpointSpec, StackSpec
from modelplane.spec.references import azure_built_images
from modelplane.spec.schema import OnlineEndpointSpec

# The Azure and Kubernetes components are imported by the builders of stacks that use them: their
# SDKs cost startup time on every preview of a local stack (bench/: engine overhead).
if TYPE_CHECKING:
    from components.aci_endpoint import AciEndpoint
    from components.aks_cluster import AksCluster, AzureClusterTarget
    from components.aks_endpoint import AksEndpoint
    from components.batch_endpoint import BatchEndpoint
    from components.edge_module import EdgeModule
    from components.fpga_service import FpgaService
    from components.online_endpoint import OnlineEndpoint
    from components.workspace import Workspace


@dataclass(frozen=True)
class ProgramOptions:
    """Where the program keeps local artefacts, and test hooks."""

    state_dir: Path = field(default_factory=state_root)
    """Local model store and image build contexts live under here."""
    iot_hub_endpoint: str | None = None
    """IoT Hub data-plane base URL override (a local double in tests)."""
    arm_endpoint: str | None = None
    """Azure Resource Manager base URL for what Modelplane sets itself (online traffic): a local double in tests."""
    extra_labels: dict[str, str] = field(default_factory=dict)
    """Labels added to local containers."""
    local_provider: pulumi.ProviderResource | None = None
    """Provider for the dynamic (local) resources; None: Pulumi's default one (tests, offline plan)."""


@dataclass
class StackOutputs:
    """What the program built, by declared name (tests look at these)."""

    workspace: Workspace | None = None
    models: dict[str, RegisteredModel] = field(default_factory=dict)
    images: dict[str, ScoringImage] = field(default_factory=dict)
    clusters: dict[str, AksCluster] = field(default_factory=dict)
    endpoints: dict[str, LocalEndpoint | AciEndpoint | AksEndpoint | OnlineEndpoint] = field(default_factory=dict)
    edge: dict[str, EdgeModule] = field(default_factory=dict)
    fpga: dict[str, FpgaService] = field(default_factory=dict)
    batch: dict[str, BatchEndpoint] = field(default_factory=dict)
    router_images: dict[str, pulumi.Output[str]] = field(default_factory=dict)
    """The router image of each cluster with AKS endpoints that have deployments."""


@dataclass(frozen=True)
class AzureContext:
    """The workspace's facts, for every component that runs on Azure."""

    workspace: Workspace
    registry: RegistryTarget

    def model_target(self) -> AzureModelTarget:
        return AzureModelTarget(
            resource_group_name=self.workspace.resource_group_name,
            workspace_name=self.workspace.workspace_name,
            storage_account_name=self.workspace.storage_account_name,
        )

    def placement(self) -> dict[str, Any]:
        """Registry, resource group and region of an item that runs in the workspace's resource group."""
        return {
            "registry": self.registry,
            "resource_group_name": self.workspace.resource_group_name,
            "location": self.workspace.location,
        }

    def cluster_target(self) -> AzureClusterTarget:
        from components.aks_cluster import AzureClusterTarget

        return AzureClusterTarget(
            resource_group_name=self.workspace.resource_group_name,
            workspace_name=self.workspace.workspace_name,
            location=self.workspace.location,
        )


@dataclass(frozen=True)
class BuildContext:
    """What every builder shares."""

    spec: StackSpec
    stack_name: str
    options: ProgramOptions
    azure: AzureContext | None
    """None for a stack without `target: azure`."""
    out: StackOutputs

    @property
    def opts(self) -> pulumi.ResourceOptions | None:
        """Children inherit their component's providers, so every dynamic resource runs in this one."""
        provider = self.options.local_provider
        return pulumi.ResourceOptions(providers=[provider]) if provider is not None else None

    def require_azure(self, what: str) -> AzureContext:
        if self.azure is None:
            # The spec refuses Azure items in a stack without an `azure:` section.
            raise ValueError(f"{what} runs on Azure, and the stack has no workspace")
        return self.azure


def build_stack(spec: StackSpec, stack_name: str, options: ProgramOptions | None = None) -> StackOutputs:
    out = StackOutputs()
    options = options or ProgramOptions()
    azure = build_workspace(spec, stack_name, out, options)
    context = BuildContext(spec, stack_name, options, azure, out)
    build_models(context)
    build_images(context)
    build_clusters(context)
    build_endpoints(context)
    build_edge(context)
    build_fpga(context)
    build_batch(context)
    return out


def build_workspace(
    spec: StackSpec, stack_name: str, out: StackOutputs, options: ProgramOptions
) -> AzureContext | None:
    if spec.target != "azure" or spec.azure is None:
        return None
    from components.workspace import Workspace, WorkspaceArgs

    opts = BuildContext(spec, stack_name, options, None, out).opts
    workspace = Workspace(stack_name, WorkspaceArgs(azure=spec.azure, tags=spec.tags), opts)
    out.workspace = workspace
    registry = RegistryTarget(
        server=workspace.registry_server, username=workspace.registry_username, password=workspace.registry_password
    )
    return AzureContext(workspace, registry)


def build_models(context: BuildContext) -> None:
    # One local store per stack: two stacks with the same model never share (or delete) its files.
    local = LocalModelStore(context.options.state_dir / "models" / context.stack_name)
    target = context.azure.model_target() if context.azure is not None else local
    for name, model in context.spec.models.items():
        args = RegisteredModelArgs(model_name=name, spec=model, target=target, tags=context.spec.tags)
        context.out.models[name] = RegisteredModel(f"model-{name}", args, context.opts)


def build_images(context: BuildContext) -> None:
    models = context.out.models
    # Azure ML builds the environment of an image that only v2 online deployments use.
    sections = {"target", "endpoints", "edge", "fpga", "batch"}
    built_by_azure = azure_built_images(context.spec.model_dump(include=sections))
    for name, image in context.spec.images.items():
        if name in built_by_azure:
            continue
        files = tuple(
            ModelFiles(name=m, version=models[m].version_value, path=context.spec.models[m].local_path)
            for m in image.models
        )
        args = ScoringImageArgs(
            image_name=name,
            spec=image,
            models=files,
            build_root=context.options.state_dir / "build" / context.stack_name,
            repository_prefix=f"modelplane/{context.stack_name}",
            registry=image_registry(context, name),
        )
        context.out.images[name] = ScoringImage(f"image-{name}", args, context.opts)


def cluster_registry(context: BuildContext, cluster_name: str) -> RegistryTarget | None:
    """Where a cluster pulls images from: the workspace's registry on Azure, else an attached cluster's own."""
    if context.azure is not None:
        return context.azure.registry
    attach = context.spec.clusters[cluster_name].attach
    if attach is None or attach.registry is None:
        return None
    from components.scoring_image import registry_from_file

    return registry_from_file(attach.registry)


def image_registry(context: BuildContext, image_name: str) -> RegistryTarget | None:
    """Where an image is pushed: the registry of the first cluster that serves it (the workspace's on Azure)."""
    if context.azure is not None:
        return context.azure.registry
    clusters = [
        e.cluster
        for e in context.spec.endpoints.values()
        if isinstance(e, AksEndpointSpec) and any(d.image == image_name for d in e.serving.values())
    ]
    return next((found for name in clusters if (found := cluster_registry(context, name)) is not None), None)


def build_clusters(context: BuildContext) -> None:
    if not context.spec.clusters:
        return
    from components.aks_cluster import AksCluster, AksClusterArgs

    azure = context.azure.cluster_target() if context.azure is not None else None
    endpoints = context.spec.endpoints.values()
    for name, cluster in context.spec.clusters.items():
        namespaces = tuple(e.namespace for e in endpoints if isinstance(e, AksEndpointSpec) and e.cluster == name)
        args = AksClusterArgs(
            cluster_name=name, spec=cluster, azure=azure, tags=context.spec.tags, namespaces=namespaces
        )
        context.out.clusters[name] = AksCluster(cluster_resource_name(name), args, context.opts)


def build_endpoints(context: BuildContext) -> None:
    for name, endpoint in context.spec.endpoints.items():
        if isinstance(endpoint, LocalEndpointSpec):
            built: LocalEndpoint | AciEndpoint | AksEndpoint | OnlineEndpoint = local_endpoint(context, name, endpoint)
        elif isinstance(endpoint, AciEndpointSpec):
            built = aci_endpoint(context, name, endpoint)
        elif isinstance(endpoint, OnlineEndpointSpec):
            built = online_endpoint(context, name, endpoint)
        else:
            built = aks_endpoint(context, name, endpoint)
        context.out.endpoints[name] = built


def body_limit(context: BuildContext, deployments: Iterable[str]) -> int:
    """The largest body every deployment's image takes: what the endpoint's router lets through."""
    return min(context.spec.images[image].max_body_bytes for image in deployments)


def local_endpoint(context: BuildContext, name: str, endpoint: LocalEndpointSpec) -> LocalEndpoint:
    args = LocalEndpointArgs(
        max_body_bytes=body_limit(context, (d.image for d in endpoint.serving.values())),
        endpoint_name=name,
        spec=endpoint,
        image_refs={
            deployment: context.out.images[spec.image].image_ref for deployment, spec in endpoint.serving.items()
        },
        stack_name=context.stack_name,
        labels=context.options.extra_labels,
    )
    return LocalEndpoint(f"endpoint-{name}", args, context.opts)


def aci_endpoint(context: BuildContext, name: str, endpoint: AciEndpointSpec) -> AciEndpoint:
    from components.aci_endpoint import AciEndpoint, AciEndpointArgs

    azure = context.require_azure(f"endpoint {name}")
    args = AciEndpointArgs(
        endpoint_name=name,
        spec=endpoint,
        image_ref=context.out.images[endpoint.image].image_ref,
        tags=context.spec.tags,
        subscription_id=context.spec.azure.subscription_id if context.spec.azure else None,
        app_insights_key=azure.workspace.insights_key,
        **azure.placement(),
    )
    return AciEndpoint(f"endpoint-{name}", args, context.opts)


def online_endpoint(context: BuildContext, name: str, endpoint: OnlineEndpointSpec) -> OnlineEndpoint:
    from components.online_endpoint import OnlineEndpoint, OnlineEndpointArgs

    azure = context.require_azure(f"endpoint {name}")
    images = {d.image: context.spec.images[d.image] for d in endpoint.deployments.values()}
    # A v2 deployment serves one model: the image's first (the spec warns about the others).
    models = {image: spec.models[0] if spec.models else None for image, spec in images.items()}
    args = OnlineEndpointArgs(
        endpoint_name=name,
        spec=endpoint,
        images=images,
        model_ids={image: context.out.models[m].asset_id if m else None for image, m in models.items()},
        workspace=azure.model_target(),
        location=azure.workspace.location,
        tags=context.spec.tags,
        arm_endpoint=context.options.arm_endpoint,
    )
    return OnlineEndpoint(f"endpoint-{name}", args, context.opts)


def aks_endpoint(context: BuildContext, name: str, endpoint: AksEndpointSpec) -> AksEndpoint:
    from components.aks_endpoint import AksEndpoint, AksEndpointArgs

    args = AksEndpointArgs(
        endpoint_name=name,
        spec=endpoint,
        image_refs={deployment: context.out.images[d.image].image_ref for deployment, d in endpoint.serving.items()},
        router_image=router_image(context, endpoint.cluster) if endpoint.routed else None,
        max_body_bytes=body_limit(context, (d.image for d in endpoint.serving.values())),
        cluster=context.out.clusters[endpoint.cluster],
        registry=cluster_registry(context, endpoint.cluster),
        service_type=context.spec.clusters[endpoint.cluster].service_type,
        environment=context.spec.tags.get("environment"),
        app_insights_key=context.azure.workspace.insights_key if context.azure is not None else None,
    )
    return AksEndpoint(f"endpoint-{name}", args, context.opts)


def router_image(context: BuildContext, cluster_name: str) -> pulumi.Output[str]:
    """The router image (nginx) of the AKS endpoints with deployments on a cluster: built once per
    cluster and pushed where the cluster pulls from."""
    if cluster_name not in context.out.router_images:
        from modelplane.providers.docker import Image
        from modelplane.router import ROUTER_DOCKERFILE, ROUTER_IMAGE

        build = context.options.state_dir / "build" / context.stack_name / "router"
        build.mkdir(parents=True, exist_ok=True)
        (build / "Dockerfile").write_text(ROUTER_DOCKERFILE)
        # A tag of the stack's own: deleting it never takes the image local endpoints' routers run.
        repository = ROUTER_IMAGE.removeprefix("modelplane/")
        props: dict[str, object] = {
            "context": str(build),
            "dockerfile": "Dockerfile",
            "tag": f"modelplane/{context.stack_name}-{repository}",
            "labels": {"modelplane.image": "router"},
        }
        registry = cluster_registry(context, cluster_name)
        if registry is not None:
            props["tag"] = pulumi.Output.concat(registry.server, f"/modelplane-{repository}")
            props["registry"] = {
                "server": registry.server,
                "username": registry.username,
                "password": registry.password,
            }
        cluster = pulumi.ResourceOptions(parent=context.out.clusters[cluster_name])
        image = Image(f"router-image-{cluster_name}", props, opts=cluster)
        context.out.router_images[cluster_name] = image.tag
    return context.out.router_images[cluster_name]


def build_edge(context: BuildContext) -> None:
    if not context.spec.edge:
        return
    from components.edge_module import EdgeModule, EdgeModuleArgs

    azure = context.require_azure("an IoT Edge module")
    for name, edge in context.spec.edge.items():
        args = EdgeModuleArgs(
            edge_name=name,
            spec=edge,
            image_ref=context.out.images[edge.image].image_ref,
            tags=context.spec.tags,
            data_plane_endpoint=context.options.iot_hub_endpoint,
            **azure.placement(),
        )
        context.out.edge[name] = EdgeModule(f"edge-{name}", args, context.opts)


def build_fpga(context: BuildContext) -> None:
    if not context.spec.fpga:
        return
    from components.fpga_service import FpgaService, FpgaServiceArgs

    azure = context.require_azure("an FPGA service").cluster_target()
    for name, fpga in context.spec.fpga.items():
        cluster = context.out.clusters[fpga.cluster] if fpga.cluster else None
        args = FpgaServiceArgs(service_name=name, spec=fpga, azure=azure, cluster=cluster, tags=context.spec.tags)
        context.out.fpga[name] = FpgaService(f"fpga-{name}", args, context.opts)


def build_batch(context: BuildContext) -> None:
    """Batch jobs on Azure (an AmlCompute cluster and a v2 batch endpoint each); local jobs run with
    `modelplane batch run` in their image, which `build_images` has built."""
    if not context.spec.batch or context.azure is None:
        return
    from components.batch_endpoint import BatchEndpoint, BatchEndpointArgs

    for name, job in context.spec.batch.items():
        image = context.spec.images[job.image]
        model = image.models[0] if image.models else None
        args = BatchEndpointArgs(
            job_name=name,
            spec=job,
            image=image,
            model_id=context.out.models[model].asset_id if model else None,
            workspace=context.azure.model_target(),
            location=context.azure.workspace.location,
            tags=context.spec.tags,
        )
        context.out.batch[name] = BatchEndpoint(f"batch-{name}", args, context.opts)


def export(out: StackOutputs) -> None:
    """Stack outputs a user would print or call; keys in an export of their own, as a secret,
    so that URIs stay readable."""
    pulumi.export(
        "endpoints",
        {
            name: {"scoring_uri": endpoint.scoring_uri, "swagger_uri": endpoint.swagger_uri}
            for name, endpoint in out.endpoints.items()
        },
    )
    pulumi.export("endpoint_keys", pulumi.Output.secret({name: e.keys for name, e in out.endpoints.items()}))
    pulumi.export("models", {name: {"name": m.model_name, "version": m.version} for name, m in out.models.items()})
    pulumi.export("images", {name: image.image_ref for name, image in out.images.items()})
    if out.edge:
        pulumi.export("edge", {name: {"deployment_id": e.deployment_id} for name, e in out.edge.items()})
    if out.fpga:
        pulumi.export("fpga", {name: {"scoring_uri": f.scoring_uri} for name, f in out.fpga.items()})
    if out.batch:
        pulumi.export("batch", {name: {"scoring_uri": b.scoring_uri} for name, b in out.batch.items()})


def spec_failure(error: SpecError) -> pulumi.RunError:
    """Log each problem of a declaration as an error of its own; the RunError ends the run."""
    for problem in error.problems:
        pulumi.log.error(str(problem))
    return pulumi.RunError(f"the stack declaration has {len(error.problems)} problem(s); nothing was changed")
