"""The program without an engine: Pulumi's mocks at the provider boundary.

Azure (and Kubernetes on AKS) answer as their providers would, with placeholders for what only the
cloud knows (ids, credentials, addresses). Every registration is recorded with its inputs (camelCase,
as the engine passes them, secrets still wrapped): `modelplane plan --offline` evaluates the policy
rules over them, and the component tests assert on them.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

import pulumi
from pulumi.output import Unknown
from pulumi.runtime import rpc
from pulumi.runtime.mocks import MockMonitor

from modelplane.providers import DYNAMIC_TYPES

KUBECONFIG = """apiVersion: v1
kind: Config
clusters: [{name: aks, cluster: {server: "https://aks.example.invalid:443"}}]
users: [{name: user, user: {token: mock-token}}]
contexts: [{name: aks, context: {cluster: aks, user: user}}]
current-context: aks
"""
REGISTRY_PASSWORD = "mock-registry-password"
# What a plan shows for a value only the cloud knows (as online plans show it).
KNOWN_AFTER_APPLY = "(known after apply)"
IOT_HUB_KEY = base64.b64encode(b"mock-iot-hub-key").decode()

# The property that carries an azure-native resource's name, by type.
NAME_PROPERTIES = {
    "azure-native:resources:ResourceGroup": "resourceGroupName",
    "azure-native:storage:StorageAccount": "accountName",
    "azure-native:storage:BlobContainer": "containerName",
    "azure-native:keyvault:Vault": "vaultName",
    "azure-native:containerregistry:Registry": "registryName",
    "azure-native:applicationinsights:Component": "resourceName",
    "azure-native:machinelearningservices:Workspace": "workspaceName",
    "azure-native:machinelearningservices:ModelContainer": "name",
    "azure-native:machinelearningservices:Compute": "computeName",
    "azure-native:containerinstance:ContainerGroup": "containerGroupName",
    "azure-native:containerservice:ManagedCluster": "resourceName",
    "azure-native:containerservice:AgentPool": "agentPoolName",
    "azure-native:iothub:IotHubResource": "resourceName",
    "azure-native:machinelearningservices:OnlineEndpoint": "endpointName",
    "azure-native:machinelearningservices:OnlineDeployment": "deploymentName",
    "azure-native:machinelearningservices:BatchEndpoint": "endpointName",
    "azure-native:machinelearningservices:BatchDeployment": "deploymentName",
}
ONLINE_KEYS = {"primaryKey": "mock-online-primary-key", "secondaryKey": "mock-online-secondary-key"}


def is_secret(value: Any) -> bool:
    """Whether a recorded input arrived wrapped as a secret."""
    return isinstance(value, dict) and value.get(rpc._special_sig_key) == rpc._special_secret_sig


def plain(value: Any) -> Any:
    """A recorded input with every secret wrapper removed (and a value a preview cannot know, said so)."""
    if isinstance(value, Unknown):
        return KNOWN_AFTER_APPLY
    if is_secret(value):
        return plain(value["value"])
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


@dataclass(frozen=True)
class Registered:
    typ: str
    name: str
    inputs: dict[str, Any]
    """The inputs with secret wrappers removed."""
    raw: dict[str, Any]
    """The inputs as recorded: secrets wrapped (see is_secret)."""
    provider: str
    parent: str = ""
    """URN of the component it was registered under ("" at the stack's top)."""


MOCK_INSTRUMENTATION_KEY = "00000000-0000-4000-8000-00000000a1a1"
"""The instrumentation key every mocked Application Insights component reports."""


# What Modelplane's dynamic providers return beyond their inputs, by resource type: placeholders
# the tests never assert on.
def _keys_outputs(name: str, _inputs: dict[str, Any]) -> dict[str, Any]:
    return {"primary_key": f"generated-primary-{name}", "secondary_key": f"generated-secondary-{name}", "generation": 0}


def _stored_model_outputs(_name: str, inputs: dict[str, Any]) -> dict[str, Any]:
    return {"path": f"{inputs['store']}/{inputs['name']}/{inputs['version']}"}


DYNAMIC_OUTPUTS = {
    DYNAMIC_TYPES["keys"]: _keys_outputs,
    DYNAMIC_TYPES["image"]: lambda _name, _inputs: {"image_id": "sha256:" + "0" * 64},
    DYNAMIC_TYPES["container"]: lambda _name, inputs: {
        "container_id": "c" * 64,
        "container_name": f"{inputs['name']}-0",
    },
    DYNAMIC_TYPES["network"]: lambda _name, _inputs: {"network_id": "n" * 64},
    DYNAMIC_TYPES["router"]: lambda _name, _inputs: {"container_id": "r" * 64, "config_digest": "0" * 16},
    DYNAMIC_TYPES["edge_deployment"]: lambda _name, inputs: {"deployment_id": f"{inputs.get('name')}-deployment"},
    DYNAMIC_TYPES["stored_model"]: _stored_model_outputs,
}


@dataclass
class RecordingMocks(pulumi.runtime.Mocks):
    resources: list[Registered] = field(default_factory=list)
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    parents: dict[tuple[str, str], str] = field(default_factory=dict)
    """(type, name) → parent URN, filled by RecordingMonitor (mocks are not told the parent)."""

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        inputs = plain(dict(args.inputs))
        parent = self.parents.get((args.typ, args.name), "")
        self.resources.append(Registered(args.typ, args.name, inputs, dict(args.inputs), args.provider or "", parent))
        outputs = dict(inputs)
        name_key = NAME_PROPERTIES.get(args.typ)
        if name_key is not None:
            outputs["name"] = inputs.get(name_key) or args.name
        if args.typ == "azure-native:containerinstance:ContainerGroup":
            label = inputs.get("ipAddress", {}).get("dnsNameLabel") or "generated"
            outputs["ipAddress"] = {**inputs.get("ipAddress", {}), "fqdn": f"{label}.westeurope.azurecontainer.io"}
        if args.typ == "azure-native:containerservice:ManagedCluster":
            outputs["currentKubernetesVersion"] = inputs.get("kubernetesVersion") or "1.33.2"
        if args.typ == "azure-native:applicationinsights:Component":
            outputs["instrumentationKey"] = MOCK_INSTRUMENTATION_KEY
        if args.typ == "kubernetes:core/v1:Service":
            outputs["status"] = {"loadBalancer": {"ingress": [{"ip": "20.0.0.10"}]}}
            outputs["spec"] = {**inputs.get("spec", {}), "clusterIP": "10.0.0.10"}
        if args.typ == "azure-native:machinelearningservices:OnlineEndpoint":
            host = f"https://{outputs['name']}.eastus.inference.ml.azure.com"
            outputs["properties"] = {
                **inputs.get("properties", {}),
                "scoringUri": f"{host}/score",
                "swaggerUri": f"{host}/swagger.json",
            }
        if args.typ in DYNAMIC_OUTPUTS:
            outputs.update(DYNAMIC_OUTPUTS[args.typ](args.name, inputs))
        return f"{args.name}-id", outputs

    def call(self, args: pulumi.runtime.MockCallArgs) -> dict[str, Any]:  # type: ignore[override]  # a dict is accepted
        self.calls.append((args.token, dict(args.args)))
        token = args.token
        if token == "azure-native:authorization:getClientConfig":
            return {
                "tenantId": "00000000-0000-0000-0000-000000000001",
                "subscriptionId": "sub-1",
                "clientId": "client",
                "objectId": "object",
            }
        if token == "azure-native:containerregistry:listRegistryCredentials":
            return {
                "username": args.args.get("registryName"),
                "passwords": [{"name": "password", "value": REGISTRY_PASSWORD}],
            }
        if token == "azure-native:containerservice:listManagedClusterUserCredentials":
            return {"kubeconfigs": [{"name": "clusterUser", "value": base64.b64encode(KUBECONFIG.encode()).decode()}]}
        if token == "azure-native:containerservice:getManagedCluster":
            name = args.args.get("resourceName")
            return {
                "id": f"/subscriptions/sub-1/resourceGroups/x/providers/Microsoft.ContainerService/"
                f"managedClusters/{name}",
                "kubernetesVersion": "1.31.1",
                "name": name,
            }
        if token == "azure-native:machinelearningservices:listOnlineEndpointKeys":
            return ONLINE_KEYS
        if token == "azure-native:iothub:listIotHubResourceKeys":
            return {"value": [{"keyName": "iothubowner", "primaryKey": IOT_HUB_KEY, "rights": "RegistryWrite"}]}
        if token == "azure-native:machinelearningservices:getWorkspace":
            group = args.args.get("resourceGroupName")
            prefix = f"/subscriptions/sub-1/resourceGroups/{group}/providers"
            return {
                "name": args.args.get("workspaceName"),
                "location": "eastus",
                "storageAccount": f"{prefix}/Microsoft.Storage/storageAccounts/existingstorage",
                "containerRegistry": f"{prefix}/Microsoft.ContainerRegistry/registries/existingacr",
            }
        raise NotImplementedError(f"no mock for {token}")

    def of_type(self, typ: str) -> list[Registered]:
        return [r for r in self.resources if r.typ == typ]

    def one(self, typ: str, name: str | None = None) -> Registered:
        found = [r for r in self.of_type(typ) if name is None or r.name == name]
        assert len(found) == 1, f"expected one {typ} {name or ''}, found {[r.name for r in found]}"
        return found[0]


class RecordingMonitor(MockMonitor):
    """Pulumi's mock monitor, telling RecordingMocks each registration's parent."""

    def __init__(self, mocks: RecordingMocks) -> None:
        super().__init__(mocks)
        self.recording = mocks

    def RegisterResource(self, request: Any) -> Any:  # the gRPC method's name
        self.recording.parents[(request.type, request.name)] = request.parent
        return super().RegisterResource(request)  # type: ignore[no-untyped-call]  # pulumi's mock monitor is untyped


def set_recording_mocks(stack_name: str, preview: bool) -> RecordingMocks:
    """Pulumi's runtime under mocks that record every registration, with its parent."""
    mocks = RecordingMocks()
    pulumi.runtime.set_mocks(
        mocks, project="modelplane", stack=stack_name, preview=preview, monitor=RecordingMonitor(mocks)
    )
    return mocks
