"""Limits and names that the stack declaration, the components and the policy pack all use.

A leaf module (no third-party import): the policy pack imports it without loading the spec's
pydantic models, and the spec and components import it rather than the policies (the arrow points
one way: policies may read Modelplane's constants, Modelplane never reads the policies').
"""

from __future__ import annotations

# Per ACI container group, in the regions AML supported.
ACI_MAX_CPU = 4.0
ACI_MAX_MEMORY_GB = 16.0
# FPGA (Project Brainwave) nodes are PB-series VMs.
FPGA_VM_PREFIX = "Standard_PB"
# The environment variables that carry an endpoint's two keys into its scoring container.
PRIMARY_KEY_VARIABLE = "MODELPLANE_PRIMARY_KEY"
SECONDARY_KEY_VARIABLE = "MODELPLANE_SECONDARY_KEY"
KEY_VARIABLES = (PRIMARY_KEY_VARIABLE, SECONDARY_KEY_VARIABLE)
KEY_NAMES = ("primary", "secondary")
# The gate's mode (key, token or none) and the endpoint's name, which a token's audience must be.
AUTH_MODE_VARIABLE = "MODELPLANE_AUTH_MODE"
ENDPOINT_VARIABLE = "MODELPLANE_ENDPOINT"
# Set by `modelplane keys rotate` for the update it runs: "<endpoint>:<primary|secondary>:<request id>".
ROTATE_KEY_VARIABLE = "MODELPLANE_ROTATE_KEY"
# Each of Modelplane's dynamic resources has a type of its own (policies pick resources by type).
DYNAMIC_TYPES = {
    "container": "pulumi-python:dynamic/docker:Container",
    "network": "pulumi-python:dynamic/docker:Network",
    "router": "pulumi-python:dynamic/docker:Router",
    "image": "pulumi-python:dynamic/docker:Image",
    "keys": "pulumi-python:dynamic/keys:EndpointKeys",
    "stored_model": "pulumi-python:dynamic/models:StoredModel",
    "edge_deployment": "pulumi-python:dynamic/iot:EdgeDeployment",
    "online_traffic": "pulumi-python:dynamic/azureml:OnlineTraffic",
}
# A local endpoint's router and an AML v2 online endpoint's traffic carry the same two maps.
TRAFFIC_TYPES = (DYNAMIC_TYPES["router"], DYNAMIC_TYPES["online_traffic"])
# An AKS endpoint's router reads its configuration from a ConfigMap that also holds the two maps, as
# entries `traffic.<deployment>` and `mirror_traffic.<deployment>` of its data.
KUBE_ROUTER_CONFIG_TYPE = "kubernetes:core/v1:ConfigMap"
KUBE_DEPLOYMENT_TYPE = "kubernetes:apps/v1:Deployment"
COMPONENT_LABEL = "app.kubernetes.io/component"
ROUTER_COMPONENT = "router"
DEPLOYMENT_LABEL = "modelplane.io/deployment"
# Labels on every Kubernetes object of an endpoint (the policy pack finds Modelplane's by them).
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
ENVIRONMENT_LABEL = "modelplane.io/environment"
# The `environment` tag (or label) values that mark a production stack.
PRODUCTION_VALUES = ("prod", "production")


def is_production(environment: object) -> bool:
    """Whether an `environment` tag or label marks a production stack."""
    return str(environment or "").lower() in PRODUCTION_VALUES


# What Azure ML recommends for a production online deployment (the policy pack holds stacks to it).
PRODUCTION_MIN_INSTANCES = 3
PRODUCTION_MIN_VCPUS = 4
