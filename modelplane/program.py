"""The Pulumi program: one component per declared item, and the stack's outputs.

`__main__.py` runs it through `modelplane.startup`; tests call `build_stack()` under Pulumi's mocks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pulumi

from components.local_endpoint import LocalEndpoint, LocalEndpointArgs
from components.registered_model import AzureModelTarget, RegisteredModel, RegisteredModelArgs
from components.scoring_image import RegistryTarget, ScoringImage, ScoringImageArgs

# The Azure and Kubernetes components are imported only by stacks that use them: their SDKs cost
# startup time on every preview of a local stack (bench/: engine overhead).
if TYPE_CHECKING:
    from components.aci_endpoint import AciEndpoint
    from components.aks_cluster import AksCluster
    from components.aks_endpoint import AksEndpoint
    from components.edge_module import EdgeModule
    from components.fpga_service import FpgaService
    from components.workspace import Workspace
from modelplane.dockerfile import ModelFiles
from modelplane.engine import state_root
from modelplane.source import SpecError
from modelplane.spec import AciEndpointSpec, AksEndpointSpec, LocalEndpointSpec, StackSpec


@dataclass(frozen=True)
class ProgramOptions:
    """Where the program keeps local artefacts, and test hooks."""

    state_dir: Path = field(default_factory=state_root)
    """Local model store and image build contexts live under here."""
    iot_hub_endpoint: str | None = None
    """IoT Hub data-plane base URL override (a local double in tests)."""
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
    endpoints: dict[str, LocalEndpoint | AciEndpoint | AksEndpoint] = field(default_factory=dict)
    edge: dict[str, EdgeModule] = field(default_factory=dict)
    fpga: dict[str, FpgaService] = field(default_factory=dict)


def build_stack(spec: StackSpec, stack_name: str, options: ProgramOptions | None = None) -> StackOutputs:
    options = options or ProgramOptions()
    out = StackOutputs()
    # Children inherit their component's providers, so every dynamic resource runs in this one.
    opts = pulumi.ResourceOptions(providers=[options.local_provider]) if options.local_provider else None
    azure = spec.target == "azure" and spec.azure is not None
    registry: RegistryTarget | None = None
    if azure:
        from components.workspace import Workspace, WorkspaceArgs

        assert spec.azure is not None
        out.workspace = Workspace(stack_name, WorkspaceArgs(azure=spec.azure, tags=spec.tags), opts)
        registry = RegistryTarget(
            server=out.workspace.registry_server,
            username=out.workspace.registry_username,
            password=out.workspace.registry_password,
        )

    for name, model in spec.models.items():
        target = None
        if out.workspace is not None:
            target = AzureModelTarget(
                resource_group_name=out.workspace.resource_group_name,
                workspace_name=out.workspace.workspace_name,
                storage_account_name=out.workspace.storage_account_name,
            )
        out.models[name] = RegisteredModel(
            f"model-{name}",
            RegisteredModelArgs(
                model_name=name,
                spec=model,
                azure=target,
                # One store per stack: two stacks with the same model never share (or delete) its files.
                local_store=options.state_dir / "models" / stack_name,
                tags=spec.tags,
            ),
            opts,
        )

    for name, image in spec.images.items():
        files = tuple(
            ModelFiles(name=m, version=out.models[m].version_value, path=out.models[m].files_path) for m in image.models
        )
        out.images[name] = ScoringImage(
            f"image-{name}",
            ScoringImageArgs(
                image_name=name,
                spec=image,
                models=files,
                build_root=options.state_dir / "build" / stack_name,
                repository_prefix=f"modelplane/{stack_name}",
                registry=registry,
            ),
            opts,
        )

    if spec.clusters or spec.fpga or any(e.compute_type == "aks" for e in spec.endpoints.values()):
        from components.aks_cluster import AksCluster, AksClusterArgs
        from components.aks_endpoint import AksEndpoint, AksEndpointArgs
    azure_target = None
    if out.workspace is not None:
        from components.aks_cluster import AzureClusterTarget

        azure_target = AzureClusterTarget(
            resource_group_name=out.workspace.resource_group_name,
            workspace_name=out.workspace.workspace_name,
            location=out.workspace.location,
        )
    for name, cluster in spec.clusters.items():
        namespaces = tuple(
            e.namespace for e in spec.endpoints.values() if isinstance(e, AksEndpointSpec) and e.cluster == name
        )
        out.clusters[name] = AksCluster(
            f"cluster-{name}",
            AksClusterArgs(cluster_name=name, spec=cluster, azure=azure_target, tags=spec.tags, namespaces=namespaces),
            opts,
        )

    for name, endpoint in spec.endpoints.items():
        image_ref = out.images[endpoint.image].image_ref
        if isinstance(endpoint, LocalEndpointSpec):
            out.endpoints[name] = LocalEndpoint(
                f"endpoint-{name}",
                LocalEndpointArgs(
                    endpoint_name=name,
                    spec=endpoint,
                    image_ref=image_ref,
                    stack_name=stack_name,
                    labels=options.extra_labels,
                ),
                opts,
            )
        elif isinstance(endpoint, AciEndpointSpec):
            from components.aci_endpoint import AciEndpoint, AciEndpointArgs

            assert out.workspace is not None and registry is not None
            out.endpoints[name] = AciEndpoint(
                f"endpoint-{name}",
                AciEndpointArgs(
                    endpoint_name=name,
                    spec=endpoint,
                    image_ref=image_ref,
                    registry=registry,
                    resource_group_name=out.workspace.resource_group_name,
                    location=out.workspace.location,
                    tags=spec.tags,
                ),
                opts,
            )
        elif isinstance(endpoint, AksEndpointSpec):
            out.endpoints[name] = AksEndpoint(
                f"endpoint-{name}",
                AksEndpointArgs(
                    endpoint_name=name,
                    spec=endpoint,
                    image_ref=image_ref,
                    cluster=out.clusters[endpoint.cluster],
                    registry=registry,
                    service_type=spec.clusters[endpoint.cluster].service_type,
                    environment=spec.tags.get("environment"),
                ),
                opts,
            )

    for name, edge in spec.edge.items():
        from components.edge_module import EdgeModule, EdgeModuleArgs

        assert out.workspace is not None and registry is not None
        out.edge[name] = EdgeModule(
            f"edge-{name}",
            EdgeModuleArgs(
                edge_name=name,
                spec=edge,
                image_ref=out.images[edge.image].image_ref,
                registry=registry,
                resource_group_name=out.workspace.resource_group_name,
                location=out.workspace.location,
                tags=spec.tags,
                data_plane_endpoint=options.iot_hub_endpoint,
            ),
            opts,
        )

    for name, fpga in spec.fpga.items():
        from components.fpga_service import FpgaService, FpgaServiceArgs

        assert azure_target is not None
        out.fpga[name] = FpgaService(
            f"fpga-{name}",
            FpgaServiceArgs(
                service_name=name,
                spec=fpga,
                azure=azure_target,
                cluster=out.clusters[fpga.cluster] if fpga.cluster else None,
                tags=spec.tags,
            ),
            opts,
        )
    return out


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


def spec_failure(error: SpecError) -> pulumi.RunError:
    """Log each problem of a declaration as an error of its own; the RunError ends the run."""
    for problem in error.problems:
        pulumi.log.error(str(problem))
    return pulumi.RunError(f"the stack declaration has {len(error.problems)} problem(s); nothing was changed")
