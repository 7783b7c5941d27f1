"""Every rule: a compliant baseline (what the program really sends, recorded under mocks) passes;
changing one field fails with the expected message. No engine."""

from __future__ import annotations

import copy
import tempfile
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from modelplane.plan import evaluate, record
from modelplane.plan.mocks import plain
from modelplane.spec import load_stack
from policies import ALL_RULES, RULES_BY_ID
from policies.rules import Resource, RuleConfig
from tests.mocks import routed_prod_stack

STACKS = Path(__file__).resolve().parent.parent / "stacks"


@cache
def baseline(stack: str) -> tuple[Resource, ...]:
    mocks = record(load_stack(STACKS / f"{stack}.yaml"), stack)
    return tuple(Resource(r.typ, r.name, plain(r.raw)) for r in mocks.resources)


def find(stack: str, name: str) -> Resource:
    return next(r for r in baseline(stack) if r.name == name)


def violations(rule_id: str, resource: Resource, config: dict[str, Any] | None = None) -> list[str]:
    rule = RULES_BY_ID[rule_id]
    assert rule.check is not None
    return rule.check(resource, RuleConfig(config or {}))


def edited(resource: Resource, change: Callable[[dict[str, Any]], None]) -> Resource:
    props = copy.deepcopy(dict(resource.props))
    change(props)
    return Resource(resource.type, resource.name, props)


@pytest.mark.parametrize("stack", ["local", "dev", "dev-v2", "prod"])
def test_shipped_stacks_are_compliant(stack: str) -> None:
    config = STACKS.parent / "policies" / "config" / f"{stack}.json"
    assert evaluate(baseline(stack), config if config.exists() else None) == []


def test_every_rule_has_a_test_below() -> None:
    tests_below = Path(__file__).read_text().split("# --- sizing")[-1]
    untested = [rule.id for rule in ALL_RULES if f'"{rule.id}"' not in tests_below]
    assert untested == []


# --- sizing ---------------------------------------------------------------------------------------

COMPUTE = "cluster-prod-aks-compute"


def test_fast_prod_needs_twelve_vcpus() -> None:
    compute = find("prod", COMPUTE)
    assert violations("aks-fast-prod-capacity", compute) == []
    smaller = edited(compute, lambda p: p["properties"]["properties"].update(agentCount=2))
    assert violations("aks-fast-prod-capacity", smaller) == [
        "Give FAST_PROD cluster prod-aks at least 12 vCPUs: 2 x Standard_D3_v2 (4 vCPUs) = 8."
    ]


def test_unknown_vm_size_is_reported_not_guessed() -> None:
    compute = edited(find("prod", COMPUTE), lambda p: p["properties"]["properties"].update(agentVmSize="Standard_X9"))
    assert violations("aks-fast-prod-capacity", compute) == [
        "Give cluster prod-aks a known VM size: Standard_X9 is not in the vCPU table."
    ]


def test_dev_test_node_needs_two_vcpus() -> None:
    def dev_test(props: dict[str, Any]) -> None:
        props["properties"]["properties"].update(clusterPurpose="DevTest", agentCount=1)

    compute = edited(find("prod", COMPUTE), dev_test)
    assert violations("aks-dev-test-node-size", compute) == []
    tiny = edited(compute, lambda p: p["properties"]["properties"].update(agentVmSize="Standard_B1s"))
    assert violations("aks-dev-test-node-size", tiny) == [
        "Give cluster prod-aks a known VM size: Standard_B1s is not in the vCPU table."
    ]
    one_core = edited(compute, lambda p: p["properties"]["properties"].update(agentVmSize="Standard_D2_v2"))
    assert violations("aks-dev-test-node-size", one_core) == []


def test_attached_cluster_must_run_a_supported_kubernetes() -> None:
    def attached(version: str) -> Callable[[dict[str, Any]], None]:
        def change(props: dict[str, Any]) -> None:
            props["tags"].update({"modelplane-attached": "true", "modelplane-kubernetes-version": version})

        return change

    good = edited(find("prod", COMPUTE), attached("1.33.2"))
    assert violations("aks-attached-version", good) == []
    old = edited(find("prod", COMPUTE), attached("1.27.9"))
    assert violations("aks-attached-version", old) == [
        "Attach cluster prod-aks only when it runs a supported Kubernetes (1.30, 1.31, 1.32, 1.33, 1.34); "
        "it reports '1.27.9'."
    ]
    assert violations("aks-attached-version", old, {"supportedVersions": ["1.27"]}) == []


# --- auth -----------------------------------------------------------------------------------------


def _drop_keys(props: dict[str, Any], key: str) -> None:
    for container in props.get("containers") or props["spec"]["template"]["spec"]["containers"]:
        container[key] = [
            e for e in container[key] if not e["name"].startswith("MODELPLANE_") or e["name"].endswith("PORT")
        ]


def test_aci_endpoint_needs_keys() -> None:
    group = find("dev", "endpoint-regression-aci-aci")
    assert violations("endpoint-auth", group) == []
    open_group = edited(group, lambda p: _drop_keys(p, "environmentVariables"))
    assert violations("endpoint-auth", open_group) == ["Enable auth on ACI endpoint regression-aci: it takes no key."]


def test_aks_endpoint_needs_keys() -> None:
    deployment = find("prod", "endpoint-regression-deployment")
    assert violations("endpoint-auth", deployment) == []
    open_deployment = edited(deployment, lambda p: _drop_keys(p, "env"))
    assert violations("endpoint-auth", open_deployment) == ["Enable auth on AKS endpoint regression: it takes no key."]


def test_local_endpoint_auth() -> None:
    container = find("local", "endpoint-regression-default")
    assert violations("local-endpoint-auth", container) == []
    off = edited(container, lambda p: p.update({"auth": "none"}))
    assert violations("local-endpoint-auth", off) == ["Enable auth on local endpoint regression: it takes no key."]


def test_keys_only_as_secrets() -> None:
    group = find("dev", "endpoint-regression-aci-aci")
    assert violations("keys-as-secrets", group) == []

    def plain_value(props: dict[str, Any]) -> None:
        for item in props["containers"][0]["environmentVariables"]:
            if item["name"] == "MODELPLANE_PRIMARY_KEY":
                item["value"] = item.pop("secureValue")

    assert violations("keys-as-secrets", edited(group, plain_value)) == [
        "Pass MODELPLANE_PRIMARY_KEY of ACI endpoint regression-aci as a secureValue."
    ]
    deployment = find("prod", "endpoint-digits-deployment")
    assert violations("keys-as-secrets", deployment) == []

    def inline(props: dict[str, Any]) -> None:
        for item in props["spec"]["template"]["spec"]["containers"][0]["env"]:
            if item["name"] == "MODELPLANE_SECONDARY_KEY":
                item.pop("valueFrom")
                item["value"] = "inline"

    assert violations("keys-as-secrets", edited(deployment, inline)) == [
        "Read MODELPLANE_SECONDARY_KEY of AKS endpoint endpoint-digits-deployment from a Kubernetes Secret."
    ]


# --- production -----------------------------------------------------------------------------------


def test_no_aci_in_production() -> None:
    group = find("dev", "endpoint-regression-aci-aci")
    assert violations("no-aci-in-production", group) == []
    in_production = edited(group, lambda p: p["tags"].update(environment="production"))
    assert violations("no-aci-in-production", in_production) == [
        "Move endpoint regression-aci from ACI to AKS: ACI is not for production."
    ]


def test_aci_limits() -> None:
    group = find("dev", "endpoint-regression-aci-aci")
    assert violations("aci-limits", group) == []
    big = edited(group, lambda p: p["containers"][0]["resources"]["requests"].update(memoryInGB=24))
    assert violations("aci-limits", big) == ["Keep ACI endpoint regression-aci within 16.0 GB (24.0)."]
    assert violations("aci-limits", big, {"maxMemoryGb": 32}) == []


def test_autoscale_bounds() -> None:
    hpa = find("prod", "endpoint-regression-hpa")
    assert violations("autoscale-bounds", hpa) == []
    inverted = edited(hpa, lambda p: p["spec"].update(minReplicas=9))
    assert violations("autoscale-bounds", inverted) == [
        "Give autoscaler of endpoint regression min_replicas (9) <= max_replicas (8)."
    ]


def test_replicas_in_production() -> None:
    hpa = find("prod", "endpoint-regression-hpa")
    assert stack_violations("replicas-in-production", (hpa,)) == []
    single = edited(hpa, lambda p: p["spec"].update(minReplicas=1))
    assert stack_violations("replicas-in-production", (single,)) == [
        ("endpoint-regression-hpa", "Run endpoint regression with at least 2 replicas in production (min_replicas 1).")
    ]
    not_production = edited(single, lambda p: p["metadata"]["labels"].pop("modelplane.io/environment"))
    assert stack_violations("replicas-in-production", (not_production,)) == []


def test_aks_tls_in_production() -> None:
    rule = RULES_BY_ID["aks-tls-in-production"]
    assert rule.stack_check is not None
    resources = list(baseline("prod"))
    assert rule.stack_check(resources, RuleConfig()) == []
    without_ingress = [r for r in resources if r.name != "endpoint-digits-ingress"]
    assert rule.stack_check(without_ingress, RuleConfig()) == [
        ("endpoint-digits-deployment", "Serve AKS endpoint digits over TLS in production: give its cluster `ssl`.")
    ]


# --- accelerators ---------------------------------------------------------------------------------


def test_gpu_images_use_an_allowed_cuda() -> None:
    image = find("prod", "image-digits-image")
    assert violations("gpu-cuda-version", image) == []
    gpu = edited(image, lambda p: p.update({"gpu": {"image": "digits", "cuda_version": "12.4"}}))
    assert violations("gpu-cuda-version", gpu) == []
    old_cuda = edited(gpu, lambda p: p["gpu"].update({"cuda_version": "10.1"}))
    assert violations("gpu-cuda-version", old_cuda) == [
        "Build GPU image digits with a CUDA version from 11.8, 12.1, 12.2, 12.4, 12.6 (not 10.1)."
    ]


def test_fpga_placement() -> None:
    pool = find("prod", "fpga-resnet-fpga-pool")
    assert violations("fpga-placement", pool) == []
    wrong_size = edited(pool, lambda p: p.update(vmSize="Standard_D3_v2"))
    assert violations("fpga-placement", wrong_size) == [
        "Use a PB-series VM size for FPGA pool fpga-resnet-fpga-pool (not Standard_D3_v2)."
    ]
    wrong_region = edited(pool, lambda p: p["tags"].update({"modelplane-fpga-location": "northeurope"}))
    assert violations("fpga-placement", wrong_region) == [
        "Place FPGA pool fpga-resnet-fpga-pool in eastus, westus2, westeurope, southeastasia (not northeurope)."
    ]


# --- tags -----------------------------------------------------------------------------------------


def test_required_tags() -> None:
    group = find("prod", "prod-rg")
    assert violations("required-tags", group, {"tags": ["owner", "cost-center"]}) == []
    untagged = edited(group, lambda p: p["tags"].pop("owner"))
    assert violations("required-tags", untagged, {"tags": ["owner", "cost-center"]}) == [
        "Tag ResourceGroup prod-rg with owner."
    ]


def test_traffic_sums() -> None:
    router = find("local", "endpoint-regression-router")
    assert violations("traffic-sums", router) == []
    split = edited(router, lambda p: p.update({"traffic": {"default": 90}}))
    assert violations("traffic-sums", split) == [
        "Endpoint regression: traffic sums to 90 (default 90): it must sum to 100, or to 0 to serve no one."
    ]
    nobody = edited(router, lambda p: p.update({"traffic": {"default": 0}}))
    assert violations("traffic-sums", nobody) == []


def test_mirror_bounds() -> None:
    router = find("local", "endpoint-regression-router")
    assert violations("mirror-bounds", router) == []
    live = edited(router, lambda p: p.update({"mirror_traffic": {"default": 10}}))
    assert violations("mirror-bounds", live) == [
        "Endpoint regression: mirror_traffic to 'default', which takes 100% of live traffic: "
        "mirror only to a deployment without live traffic."
    ]
    too_much = edited(router, lambda p: p.update({"traffic": {"default": 0}, "mirror_traffic": {"default": 60}}))
    assert violations("mirror-bounds", too_much) == [
        "Endpoint regression: mirror_traffic to 'default' is 60%: at most 50%."
    ]


def test_online_traffic_follows_the_same_rules() -> None:
    traffic = find("dev-v2", "endpoint-regression-v2-traffic")
    assert violations("traffic-sums", traffic) == []
    split = edited(traffic, lambda p: p.update({"traffic": {"blue": 90, "green": 20}}))
    assert violations("traffic-sums", split) == [
        "Endpoint regression-v2: traffic sums to 110 (blue 90, green 20): it must sum to 100, or to 0 to serve no one."
    ]


# --- AML v2 online endpoints ---

BLUE = "endpoint-regression-v2-blue"


def production(props: dict[str, Any]) -> None:
    props["tags"]["environment"] = "production"


def test_online_production_instances() -> None:
    blue = find("dev-v2", BLUE)
    assert violations("online-production-instances", blue) == []
    one = edited(blue, production)
    assert violations("online-production-instances", one) == [
        "Give production deployment regression-v2/blue at least 3 instances: it can run on 1, and Azure ML needs"
        " spare capacity to upgrade and heal without dropping requests."
    ]
    three = edited(one, lambda p: p["sku"].update(capacity=3))
    assert violations("online-production-instances", three) == []
    autoscaled = edited(
        three, lambda p: p["properties"].update(scaleSettings={"scaleType": "TargetUtilization", "minInstances": 2})
    )
    assert len(violations("online-production-instances", autoscaled)) == 1
    assert violations("online-production-instances", one, {"minInstances": 1}) == []


def test_online_production_instance_size() -> None:
    blue = edited(find("dev-v2", BLUE), production)
    assert violations("online-production-instance-size", blue) == []
    small = edited(blue, lambda p: p["properties"].update(instanceType="Standard_DS1_v2"))
    assert violations("online-production-instance-size", small) == [
        "Give production deployment regression-v2/blue an instance type with at least 4 vCPUs: Standard_DS1_v2 has 1"
        " (Azure ML calls the small sizes fit for testing only)."
    ]
    unknown = edited(blue, lambda p: p["properties"].update(instanceType="Standard_Z9"))
    assert "not in the vCPU table" in violations("online-production-instance-size", unknown)[0]


def test_online_production_token_auth() -> None:
    endpoint = find("dev-v2", "endpoint-regression-v2-endpoint")
    assert violations("online-production-token-auth", endpoint) == []
    keyed = edited(endpoint, production)
    assert violations("online-production-token-auth", keyed) == [
        "Use auth_mode aml_token or aad_token on production endpoint regression-v2: its callers hold keys (Key)"
        " that never expire."
    ]
    tokens = edited(keyed, lambda p: p["properties"].update(authMode="AMLToken"))
    assert violations("online-production-token-auth", tokens) == []


# --- batch clusters ---

BATCH_COMPUTE = "batch-diabetes-nightly-compute"


def test_batch_max_nodes() -> None:
    cluster = find("dev-v2", BATCH_COMPUTE)
    assert violations("batch-max-nodes", cluster) == []
    wide = edited(cluster, lambda p: p["properties"]["properties"]["scaleSettings"].update(maxNodeCount=50))
    name = cluster.props["computeName"]
    assert violations("batch-max-nodes", wide) == [
        f"Bound batch cluster {name} to at most 10 nodes: it may scale to 50."
    ]
    assert violations("batch-max-nodes", wide, {"maxNodes": 64}) == []


def test_batch_low_priority_outside_production() -> None:
    cluster = find("dev-v2", BATCH_COMPUTE)
    assert violations("batch-low-priority-outside-production", cluster) == []  # dev may use them
    in_production = edited(cluster, production)
    name = cluster.props["computeName"]
    assert violations("batch-low-priority-outside-production", in_production) == [
        f"Run production batch cluster {name} on dedicated VMs: Azure can take low-priority ones back in the"
        " middle of a job."
    ]
    dedicated = edited(in_production, lambda p: p["properties"]["properties"].update(vmPriority="Dedicated"))
    assert violations("batch-low-priority-outside-production", dedicated) == []


def test_aks_production_token_auth() -> None:
    deployment = find("prod", "endpoint-regression-deployment")
    assert violations("aks-production-token-auth", deployment) == []

    def key_mode(props: dict[str, Any]) -> None:
        env = props["spec"]["template"]["spec"]["containers"][0]["env"]
        next(item for item in env if item["name"] == "MODELPLANE_AUTH_MODE")["value"] = "key"

    keys = edited(deployment, key_mode)
    assert violations("aks-production-token-auth", keys) == [
        "Set token_auth_enabled on production AKS endpoint regression: its callers hold keys (key) that never"
        " expire; tokens from `modelplane token` last an hour."
    ]
    not_production = edited(keys, lambda p: p["metadata"]["labels"].pop("modelplane.io/environment"))
    assert violations("aks-production-token-auth", not_production) == []


# --- deployments of an AKS endpoint (stacks/prod.yaml's regression endpoint as blue and green) ------


@cache
def routed_baseline(green: str, traffic: str) -> tuple[Resource, ...]:
    folder = Path(tempfile.mkdtemp(prefix="routed-policies-"))
    mocks = record(load_stack(routed_prod_stack(folder, green, traffic)), "prod")
    return tuple(Resource(r.typ, r.name, plain(r.raw)) for r in mocks.resources)


def stack_violations(rule_id: str, resources: tuple[Resource, ...]) -> list[tuple[str, str]]:
    rule = RULES_BY_ID[rule_id]
    assert rule.stack_check is not None
    return rule.stack_check(list(resources), RuleConfig())


ONE_REPLICA = "{image: regression, num_replicas: 1}"


def test_routed_stack_is_compliant() -> None:
    resources = routed_baseline("{image: regression, num_replicas: 2}", "90, 10")
    assert evaluate(resources, STACKS.parent / "policies" / "config" / "prod.json") == []


def test_replicas_in_production_behind_a_deployment_with_traffic() -> None:
    assert stack_violations("replicas-in-production", routed_baseline(ONE_REPLICA, "90, 10")) == [
        (
            "endpoint-regression-green-deployment",
            "Run deployment green of endpoint regression with at least 2 replicas in production (1).",
        )
    ]
    # A deployment waiting for its share may run one replica.
    assert stack_violations("replicas-in-production", routed_baseline(ONE_REPLICA, "100, 0")) == []


def test_traffic_rules_read_an_aks_router_configuration() -> None:
    config = next(r for r in routed_baseline(ONE_REPLICA, "90, 10") if r.name == "endpoint-regression-router-config")
    assert violations("traffic-sums", config) == []
    split = edited(config, lambda p: p["data"].update({"traffic.green": "5"}))
    assert violations("traffic-sums", split) == [
        "Endpoint regression: traffic sums to 95 (blue 90, green 5): it must sum to 100, or to 0 to serve no one."
    ]
    mirrored = edited(config, lambda p: p["data"].update({"mirror_traffic.green": "10"}))
    assert violations("mirror-bounds", mirrored) == [
        "Endpoint regression: mirror_traffic to 'green', which takes 10% of live traffic: "
        "mirror only to a deployment without live traffic."
    ]
