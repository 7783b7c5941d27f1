"""IoT Edge deployments applied through the IoT Hub REST API (data plane), as a dynamic resource.

azure-native manages the hub itself (control plane) but not what runs on devices; that is IoT Hub's
data plane: a *configuration* for devices chosen by a target condition, or
`applyConfigurationContent` for one device. Requests carry a SAS token made from the hub's
`iothubowner` key. A configuration's content is immutable in IoT Hub, so its id carries a hash of
the content and a changed manifest is a replacement.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import urllib.parse
from typing import Any

import pulumi
import requests
from pulumi.dynamic import CreateResult, DiffResult, ReadResult, Resource, ResourceProvider

from modelplane.providers import typed_resource_options

API_VERSION = "2021-04-12"
TOKEN_SECONDS = 3600
EDGE_RUNTIME_VERSION = "1.5"


def sas_token(host: str, key_name: str, key: str, now: float | None = None) -> str:
    """A SharedAccessSignature for the hub `host`, valid for TOKEN_SECONDS."""
    expiry = int((now if now is not None else time.time()) + TOKEN_SECONDS)
    resource = urllib.parse.quote_plus(host)
    signature = hmac.new(base64.b64decode(key), f"{resource}\n{expiry}".encode(), hashlib.sha256).digest()
    encoded = urllib.parse.quote_plus(base64.b64encode(signature).decode())
    return f"SharedAccessSignature sr={resource}&sig={encoded}&se={expiry}&skn={key_name}"


def edge_manifest(
    module_name: str,
    image: str,
    env: dict[str, str],
    ports: dict[int, int],
    routes: dict[str, str],
    registry: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The modulesContent of an IoT Edge deployment running the scoring image as one module."""
    create_options = {
        "HostConfig": {
            "PortBindings": {f"{inner}/tcp": [{"HostPort": str(outer)}] for inner, outer in sorted(ports.items())}
        }
    }
    runtime_settings: dict[str, Any] = {"minDockerVersion": "v1.25", "loggingOptions": ""}
    if registry:
        runtime_settings["registryCredentials"] = {
            "workspace": {
                "address": registry["server"],
                "username": registry["username"],
                "password": registry["password"],
            }
        }
    return {
        "$edgeAgent": {
            "properties.desired": {
                "schemaVersion": "1.1",
                "runtime": {"type": "docker", "settings": runtime_settings},
                "systemModules": {
                    "edgeAgent": {
                        "type": "docker",
                        "settings": {"image": f"mcr.microsoft.com/azureiotedge-agent:{EDGE_RUNTIME_VERSION}"},
                    },
                    "edgeHub": {
                        "type": "docker",
                        "status": "running",
                        "restartPolicy": "always",
                        "settings": {"image": f"mcr.microsoft.com/azureiotedge-hub:{EDGE_RUNTIME_VERSION}"},
                    },
                },
                "modules": {
                    module_name: {
                        "version": "1.0",
                        "type": "docker",
                        "status": "running",
                        "restartPolicy": "always",
                        "settings": {"image": image, "createOptions": json.dumps(create_options, sort_keys=True)},
                        "env": {key: {"value": value} for key, value in sorted(env.items())},
                    }
                },
            }
        },
        "$edgeHub": {
            "properties.desired": {
                "schemaVersion": "1.1",
                "routes": dict(sorted(routes.items())),
                "storeAndForwardConfiguration": {"timeToLiveSecs": 7200},
            }
        },
    }


def content_id(name: str, content: dict[str, Any], target: str) -> str:
    digest = hashlib.sha256(json.dumps([content, target], sort_keys=True).encode()).hexdigest()[:10]
    return f"{name}-{digest}"


class EdgeDeploymentProvider(ResourceProvider):
    def _session(self, props: dict[str, Any]) -> tuple[str, dict[str, str]]:
        host = props["hub_host"]
        base = props.get("endpoint") or f"https://{host}"
        token = sas_token(host, props.get("key_name") or "iothubowner", props["shared_access_key"])
        return base.rstrip("/"), {"Authorization": token, "Content-Type": "application/json"}

    @staticmethod
    def _check(response: requests.Response, action: str) -> None:
        if response.status_code >= 400:
            raise RuntimeError(f"IoT Hub refused to {action}: HTTP {response.status_code} {response.text[:500]}")

    def _apply_to_device(
        self, base: str, headers: dict[str, str], device_id: str, content: dict[str, Any], action: str
    ) -> None:
        device = urllib.parse.quote(device_id, safe="")
        response = requests.post(
            f"{base}/devices/{device}/applyConfigurationContent",
            params={"api-version": API_VERSION},
            headers=headers,
            data=json.dumps({"modulesContent": content}),
            timeout=60,
        )
        self._check(response, f"{action} device {device_id}")

    def create(self, props: dict[str, Any]) -> CreateResult:
        base, headers = self._session(props)
        content = props["content"]
        if props.get("device_id"):
            self._apply_to_device(base, headers, props["device_id"], content, "apply the deployment to")
            deployment_id = f"device:{props['device_id']}"
        else:
            deployment_id = content_id(props["name"], content, props["target_condition"])
            response = requests.put(
                f"{base}/configurations/{deployment_id}",
                params={"api-version": API_VERSION},
                headers=headers,
                data=json.dumps(
                    {
                        "id": deployment_id,
                        "content": {"modulesContent": content},
                        "targetCondition": props["target_condition"],
                        "priority": int(props.get("priority", 10)),
                        "labels": {"managed-by": "modelplane"},
                    }
                ),
                timeout=60,
            )
            self._check(response, f"create deployment {deployment_id}")
        return CreateResult(id_=deployment_id, outs={**props, "deployment_id": deployment_id})

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        keys = ("content", "target_condition", "device_id", "priority", "hub_host", "name")
        changed = [
            k for k in keys if json.dumps(olds.get(k), sort_keys=True) != json.dumps(news.get(k), sort_keys=True)
        ]
        return DiffResult(changes=bool(changed), replaces=changed, delete_before_replace=False)

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        if id_.startswith("device:"):
            return ReadResult(id_=id_, outs=props)
        base, headers = self._session(props)
        response = requests.get(
            f"{base}/configurations/{id_}", params={"api-version": API_VERSION}, headers=headers, timeout=60
        )
        if response.status_code == 404:
            return ReadResult(id_="", outs={})
        self._check(response, f"read deployment {id_}")
        body = response.json()
        return ReadResult(
            id_=id_,
            outs={
                **props,
                "target_condition": body.get("targetCondition", props.get("target_condition")),
                "priority": body.get("priority", props.get("priority")),
            },
        )

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        base, headers = self._session(props)
        if id_.startswith("device:"):
            # A device keeps running its last content; leave it with the runtime only.
            empty = edge_manifest("none", "none", {}, {}, {})
            empty["$edgeAgent"]["properties.desired"]["modules"] = {}
            self._apply_to_device(base, headers, props["device_id"], empty, "clear the deployment of")
            return
        response = requests.delete(
            f"{base}/configurations/{id_}",
            params={"api-version": API_VERSION},
            headers={**headers, "If-Match": "*"},
            timeout=60,
        )
        if response.status_code != 404:
            self._check(response, f"delete deployment {id_}")


class EdgeDeployment(Resource, module="iot", name="EdgeDeployment"):
    """One IoT Edge deployment. Inputs: name, hub_host, shared_access_key (secret), key_name,
    content (modulesContent), target_condition or device_id, priority, endpoint (tests only)."""

    deployment_id: pulumi.Output[str]

    def __init__(self, resource_name: str, props: dict[str, Any], opts: pulumi.ResourceOptions | None = None) -> None:
        secret_opts = pulumi.ResourceOptions(additional_secret_outputs=["shared_access_key", "content"])
        super().__init__(
            EdgeDeploymentProvider(),
            resource_name,
            {"deployment_id": None, **props},
            typed_resource_options(secret_opts, opts),
        )
