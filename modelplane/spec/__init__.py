"""The stack declaration: `stacks/<name>.yaml` parsed, validated and normalised into a StackSpec.

A package by job: `schema` (the models and every rule about one item), `aml_v1` (AML's
inferenceconfig.json / deploymentconfig.json translated into the same fields), `positions`
(problems mapped to FILE:LINE:COL), `references` (rules across items, files, paths) and `loader`.
"""

from modelplane.spec.loader import load_stack
from modelplane.spec.schema import (
    AciEndpointSpec,
    AksEndpointSpec,
    AttachSpec,
    Autoscale,
    AzureSpec,
    ClusterSpec,
    EdgeSpec,
    EndpointSpec,
    EnvironmentSpec,
    FpgaSpec,
    ImageSpec,
    IotHubSpec,
    LivenessProbe,
    LocalEndpointSpec,
    ModelSpec,
    RegistrySpec,
    SslSpec,
    StackSpec,
    WorkspaceSpec,
)

__all__ = [
    "AciEndpointSpec",
    "AksEndpointSpec",
    "AttachSpec",
    "Autoscale",
    "AzureSpec",
    "ClusterSpec",
    "EdgeSpec",
    "EndpointSpec",
    "EnvironmentSpec",
    "FpgaSpec",
    "ImageSpec",
    "IotHubSpec",
    "LivenessProbe",
    "LocalEndpointSpec",
    "ModelSpec",
    "RegistrySpec",
    "SslSpec",
    "StackSpec",
    "WorkspaceSpec",
    "load_stack",
]
