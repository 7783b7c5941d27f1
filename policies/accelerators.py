"""GPU and FPGA: CUDA versions from an allowed list, FPGA only on PB-series VMs in supported regions."""

from __future__ import annotations

from modelplane.constants import DYNAMIC_TYPES
from policies.rules import Resource, Rule, RuleConfig

AGENT_POOL = "azure-native:containerservice:AgentPool"
ALLOWED_CUDA = ("11.8", "12.1", "12.2", "12.4", "12.6")
FPGA_REGIONS = ("eastus", "westus2", "westeurope", "southeastasia")


def cuda_version(resource: Resource, config: RuleConfig) -> list[str]:
    gpu = resource.props.get("gpu")
    if resource.type != DYNAMIC_TYPES["image"] or not isinstance(gpu, dict):
        return []
    allowed = tuple(config.get("allowed", ALLOWED_CUDA))
    version = gpu.get("cuda_version")
    if version not in allowed:
        return [
            f"Build GPU image {gpu.get('image')} with a CUDA version from {', '.join(allowed)}"
            f" (not {version or 'none'})."
        ]
    return []


def fpga_placement(resource: Resource, _config: RuleConfig) -> list[str]:
    if resource.type != AGENT_POOL or (resource.props.get("nodeLabels") or {}).get("modelplane/accelerator") != "fpga":
        return []
    problems = []
    size = str(resource.props.get("vmSize"))
    if not size.startswith("Standard_PB"):
        problems.append(f"Use a PB-series VM size for FPGA pool {resource.name} (not {size}).")
    region = str(resource.tags().get("modelplane-fpga-location") or "")
    if region not in FPGA_REGIONS:
        problems.append(f"Place FPGA pool {resource.name} in {', '.join(FPGA_REGIONS)} (not {region or 'unknown'}).")
    return problems


RULES = [
    Rule(
        "gpu-cuda-version",
        "GPU images use an allowed CUDA version.",
        "mandatory",
        check=cuda_version,
        config_schema={"allowed": {"type": "array", "items": {"type": "string"}}},
    ),
    Rule(
        "fpga-placement", "FPGA services run on PB-series VMs in supported regions.", "mandatory", check=fpga_placement
    ),
]
