"""BatchEndpoint: a batch scoring job on Azure ML v2 — an AmlCompute cluster, a batch endpoint and
one batch deployment running the job's image (as v2 code and environment) with AML's
ParallelRunStep settings: mini-batch size, error threshold, output action, retries, concurrency."""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
from pulumi_azure_native import machinelearningservices

from components.online_endpoint import v2_assets
from components.registered_model import AzureModelTarget
from modelplane.aml_v2 import iso_duration
from modelplane.naming import compact_name
from modelplane.spec import ImageSpec
from modelplane.spec.schema import BatchComputeSpec, BatchSpec

OUTPUT_ACTIONS = {"append_row": "AppendRow", "summary_only": "SummaryOnly"}
VM_PRIORITIES = {"dedicated": "Dedicated", "low_priority": "LowPriority"}
# AML compute names are 2-16 characters.
COMPUTE_NAME_LENGTH = 16


@dataclass(frozen=True)
class BatchEndpointArgs:
    job_name: str
    """The key under `batch:`; the endpoint's and its deployment's name."""
    spec: BatchSpec
    """Mini-batch settings and the compute cluster from the stack."""
    image: ImageSpec
    """The inference config whose entry script scores mini-batches."""
    model_id: pulumi.Input[str] | None
    """The resource ID of the model version it serves (None: an image without a model)."""
    workspace: AzureModelTarget
    """The workspace, and the storage account the code is uploaded to."""
    location: pulumi.Input[str]
    """Region of the workspace."""
    tags: dict[str, str] = field(default_factory=dict)
    """Stack-wide tags."""


def compute_properties(compute: BatchComputeSpec) -> machinelearningservices.AmlComputeArgs:
    """An AmlCompute cluster (typed args: `properties` is a union, so dict keys would not be camelCased)."""
    return machinelearningservices.AmlComputeArgs(
        compute_type="AmlCompute",
        properties=machinelearningservices.AmlComputePropertiesArgs(
            vm_size=compute.vm_size,
            vm_priority=VM_PRIORITIES[compute.vm_priority],
            scale_settings=machinelearningservices.ScaleSettingsArgs(
                min_node_count=compute.min_nodes,
                max_node_count=compute.max_nodes,
                node_idle_time_before_scale_down=iso_duration(compute.idle_seconds_before_scaledown * 1000),
            ),
        ),
    )


class BatchEndpoint(pulumi.ComponentResource):
    """The cluster, the endpoint and its one deployment; the scoring URI jobs are submitted to."""

    scoring_uri: pulumi.Output[str]

    def __init__(self, name: str, args: BatchEndpointArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("modelplane:index:BatchEndpoint", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        spec = args.spec
        workspace = args.workspace
        placed = {"resource_group_name": workspace.resource_group_name, "workspace_name": workspace.workspace_name}
        tags = dict(args.tags)
        compute = machinelearningservices.Compute(
            f"{name}-compute",
            compute_name=compact_name("batch", args.job_name, COMPUTE_NAME_LENGTH),
            location=args.location,
            properties=compute_properties(spec.compute or BatchComputeSpec()),
            tags=tags,
            opts=child,
            **placed,
        )
        assets = v2_assets(self, name, f"{args.job_name}-batch", args.image, workspace)
        endpoint = machinelearningservices.BatchEndpoint(
            f"{name}-endpoint",
            endpoint_name=args.job_name,
            location=args.location,
            properties={"auth_mode": "AADToken", "description": spec.description},
            tags=tags,
            opts=child,
            **placed,
        )
        model = machinelearningservices.IdAssetReferenceArgs(reference_type="Id", asset_id=args.model_id)
        machinelearningservices.BatchDeployment(
            f"{name}-deployment",
            endpoint_name=endpoint.name,
            deployment_name=args.job_name,
            location=args.location,
            properties={
                "description": spec.description,
                "code_configuration": {"code_id": assets.code_id, "scoring_script": assets.scoring_script},
                "environment_id": assets.environment_id,
                "environment_variables": assets.variables,
                "compute": compute.id,
                "model": model if args.model_id is not None else None,
                "mini_batch_size": spec.mini_batch_size if isinstance(spec.mini_batch_size, int) else None,
                "error_threshold": spec.error_threshold,
                "output_action": OUTPUT_ACTIONS[spec.output_action],
                "output_file_name": spec.output_file_name,
                "retry_settings": {"max_retries": spec.max_retries, "timeout": iso_duration(spec.timeout * 1000)},
                "max_concurrency_per_instance": spec.max_concurrency_per_instance,
                "resources": {"instance_count": spec.instance_count},
            },
            tags=tags,
            opts=child,
            **placed,
        )
        self.scoring_uri = endpoint.properties.apply(lambda p: p.scoring_uri or "")
        self.register_outputs({"scoring_uri": self.scoring_uri})
