"""AKS sizing: FAST_PROD capacity, DEV_TEST node size, supported Kubernetes on attached clusters."""

from __future__ import annotations

from policies.rules import Resource, Rule, RuleConfig

COMPUTE = "azure-native:machinelearningservices:Compute"
FAST_PROD_MIN_VCPUS = 12
DEV_TEST_MIN_VCPUS = 2
# vCPUs of the VM sizes Modelplane supports for AKS agents (Azure's published sizes).
VCPUS = {
    "Standard_DS1_v2": 1,
    "Standard_F2s_v2": 2,
    "Standard_D2_v2": 2,
    "Standard_D3_v2": 4,
    "Standard_D4_v2": 8,
    "Standard_D5_v2": 16,
    "Standard_D11_v2": 2,
    "Standard_D12_v2": 4,
    "Standard_D13_v2": 8,
    "Standard_D14_v2": 16,
    "Standard_DS2_v2": 2,
    "Standard_DS3_v2": 4,
    "Standard_DS4_v2": 8,
    "Standard_DS5_v2": 16,
    "Standard_D2s_v3": 2,
    "Standard_D4s_v3": 4,
    "Standard_D8s_v3": 8,
    "Standard_D16s_v3": 16,
    "Standard_D2s_v5": 2,
    "Standard_D4s_v5": 4,
    "Standard_D8s_v5": 8,
    "Standard_D16s_v5": 16,
    "Standard_F4s_v2": 4,
    "Standard_E4s_v3": 4,
    "Standard_E8s_v3": 8,
    "Standard_F8s_v2": 8,
    "Standard_F16s_v2": 16,
    "Standard_NC6s_v3": 6,
    "Standard_NC12s_v3": 12,
    "Standard_NC24s_v3": 24,
    "Standard_PB6s": 6,
    "Standard_PB12s": 12,
    "Standard_PB24s": 24,
}
SUPPORTED_KUBERNETES = ("1.30", "1.31", "1.32", "1.33", "1.34")


def _aks_properties(resource: Resource) -> dict[str, object] | None:
    if resource.type != COMPUTE:
        return None
    properties = resource.props.get("properties") or {}
    if properties.get("computeType") != "AKS":
        return None
    inner = properties.get("properties") or {}
    return dict(inner)


def fast_prod_capacity(resource: Resource, _config: RuleConfig) -> list[str]:
    props = _aks_properties(resource)
    if props is None or props.get("clusterPurpose") != "FastProd" or resource.tags().get("modelplane-attached"):
        return []
    size = str(props.get("agentVmSize"))
    agents = int(props.get("agentCount") or 0)  # type: ignore[call-overload]
    if size not in VCPUS:
        return [f"Give cluster {resource.props.get('computeName')} a known VM size: {size} is not in the vCPU table."]
    total = agents * VCPUS[size]
    if total < FAST_PROD_MIN_VCPUS:
        return [
            f"Give FAST_PROD cluster {resource.props.get('computeName')} at least {FAST_PROD_MIN_VCPUS} vCPUs: "
            f"{agents} x {size} ({VCPUS[size]} vCPUs) = {total}."
        ]
    return []


def dev_test_node(resource: Resource, _config: RuleConfig) -> list[str]:
    props = _aks_properties(resource)
    if props is None or props.get("clusterPurpose") != "DevTest":
        return []
    size = str(props.get("agentVmSize"))
    if size not in VCPUS:
        return [f"Give cluster {resource.props.get('computeName')} a known VM size: {size} is not in the vCPU table."]
    if VCPUS[size] < DEV_TEST_MIN_VCPUS:
        return [f"Give DEV_TEST cluster {resource.props.get('computeName')} a node with at least 2 vCPUs."]
    return []


def attached_version(resource: Resource, config: RuleConfig) -> list[str]:
    if _aks_properties(resource) is None or not resource.tags().get("modelplane-attached"):
        return []
    version = str(resource.tags().get("modelplane-kubernetes-version") or "")
    supported = tuple(config.get("supportedVersions", SUPPORTED_KUBERNETES))
    minor = ".".join(version.split(".")[:2])
    if minor not in supported:
        return [
            f"Attach cluster {resource.props.get('computeName')} only when it runs a supported Kubernetes "
            f"({', '.join(supported)}); it reports '{version or 'unknown'}'."
        ]
    return []


RULES = [
    Rule(
        "aks-fast-prod-capacity",
        "FAST_PROD clusters need agent_count x vCPUs >= 12.",
        "mandatory",
        check=fast_prod_capacity,
    ),
    Rule(
        "aks-dev-test-node-size",
        "DEV_TEST clusters run one node with at least 2 vCPUs.",
        "advisory",
        check=dev_test_node,
    ),
    Rule(
        "aks-attached-version",
        "Attached clusters must run a supported Kubernetes version.",
        "mandatory",
        check=attached_version,
        config_schema={"supportedVersions": {"type": "array", "items": {"type": "string"}}},
    ),
]
