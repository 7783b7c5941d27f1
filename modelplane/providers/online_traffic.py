"""The traffic and mirrored traffic of an Azure ML v2 online endpoint, set once its deployments exist.

ARM refuses traffic to a deployment that does not exist yet, and a deployment needs its endpoint
first. So the azure-native OnlineEndpoint is created without traffic (and ignores changes to it),
and this resource sets the shares after the deployments, as `az ml online-endpoint update --traffic`
does: read the endpoint, change `traffic` and `mirrorTraffic`, write it back, wait until it has
applied them. Deleting it takes all traffic away (AML refuses to delete a deployment that has some).
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from typing import Any

import pulumi
import requests
from pulumi.dynamic import CreateResult, DiffResult, ReadResult, Resource, ResourceProvider, UpdateResult

from modelplane.providers import typed_resource_options

ARM_ENDPOINT = "https://management.azure.com"
ARM_SCOPE = "https://management.azure.com/.default"
API_VERSION = "2025-12-01"  # the API version of the pinned azure-native SDK's machinelearningservices
# An ARM access token to use instead of Azure's credential chain (e.g. `az account get-access-token`).
TOKEN_VARIABLE = "MODELPLANE_ARM_TOKEN"
DONE_STATES = ("Succeeded", "Failed", "Canceled")
SHARE_KEYS = ("traffic", "mirror_traffic")
# What an endpoint update sends back of what it read: the rest is read-only.
WRITABLE_PROPERTIES = ("authMode", "compute", "description", "properties", "publicNetworkAccess")


class TrafficError(RuntimeError):
    """ARM refused the traffic, or the endpoint did not apply it."""


def arm_token() -> str:
    token = os.environ.get(TOKEN_VARIABLE)
    if token:
        return token
    from azure.identity import DefaultAzureCredential

    return str(DefaultAzureCredential().get_token(ARM_SCOPE).token)


def nonzero(shares: Mapping[str, Any] | None) -> dict[str, int]:
    """The shares AML keeps: deployments with 0% are left out (as azure-ai-ml sends them)."""
    return {name.lower(): int(share) for name, share in (shares or {}).items() if int(share)}


class OnlineTrafficProvider(ResourceProvider):
    def _url(self, props: Mapping[str, Any]) -> str:
        return f"{(props.get('arm_endpoint') or ARM_ENDPOINT).rstrip('/')}{props['endpoint_id']}"

    def _request(self, method: str, props: Mapping[str, Any], body: Any = None) -> requests.Response:
        return requests.request(
            method,
            self._url(props),
            params={"api-version": API_VERSION},
            headers={"Authorization": f"Bearer {arm_token()}"},
            json=body,
            timeout=60,
        )

    def _endpoint(self, props: Mapping[str, Any]) -> dict[str, Any] | None:
        response = self._request("GET", props)
        if response.status_code == 404:
            return None
        _check(response, props, "read")
        return dict(response.json())

    def _apply(self, props: Mapping[str, Any], traffic: Mapping[str, Any], mirror: Mapping[str, Any]) -> None:
        endpoint = self._endpoint(props)
        if endpoint is None:
            raise TrafficError(f"online endpoint {props['endpoint_name']} does not exist")
        properties = {k: v for k, v in (endpoint.get("properties") or {}).items() if k in WRITABLE_PROPERTIES}
        properties.update(traffic=nonzero(traffic), mirrorTraffic=nonzero(mirror))
        body = {k: v for k, v in endpoint.items() if k in ("location", "identity", "kind", "sku", "tags")}
        _check(self._request("PUT", props, {**body, "properties": properties}), props, "set the traffic of")
        self._wait(props)

    def _wait(self, props: Mapping[str, Any]) -> None:
        deadline = time.monotonic() + float(props.get("timeout_seconds") or 1800)
        while True:
            endpoint = self._endpoint(props) or {}
            state = (endpoint.get("properties") or {}).get("provisioningState")
            if state == "Succeeded":
                return
            if state in DONE_STATES:
                raise TrafficError(f"online endpoint {props['endpoint_name']}: setting its traffic ended {state}")
            if time.monotonic() > deadline:
                raise TrafficError(f"online endpoint {props['endpoint_name']}: still {state} when the wait ended")
            time.sleep(float(props.get("poll_seconds") or 10))

    def create(self, props: dict[str, Any]) -> CreateResult:
        self._apply(props, props.get("traffic") or {}, props.get("mirror_traffic") or {})
        return CreateResult(id_=f"{props['endpoint_id']}/traffic", outs=props)

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        self._apply(news, news.get("traffic") or {}, news.get("mirror_traffic") or {})
        return UpdateResult(outs=news)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changed = [key for key in SHARE_KEYS if nonzero(olds.get(key)) != nonzero(news.get(key))]
        if olds.get("endpoint_digest") != news.get("endpoint_digest"):
            changed.append("endpoint_digest")  # the endpoint was written again: set the shares again
        replaces = ["endpoint_id"] if olds.get("endpoint_id") != news.get("endpoint_id") else []
        return DiffResult(changes=bool(changed or replaces), replaces=replaces)

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        """The shares the endpoint serves now: a hand-made `az ml online-endpoint update --traffic` is drift."""
        endpoint = self._endpoint(props)
        if endpoint is None:
            return ReadResult(id_="", outs={})
        live = endpoint.get("properties") or {}
        serving = nonzero(live.get("traffic"))
        # Declared deployments keep their names (AML lowercases them), with the 0% ones shown as 0.
        traffic = {name: serving.pop(name.lower(), 0) for name in props.get("traffic") or {}}
        outs = {**props, "traffic": {**traffic, **serving}, "mirror_traffic": nonzero(live.get("mirrorTraffic"))}
        return ReadResult(id_=id_, outs=outs)

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        if self._endpoint(props) is not None:
            self._apply(props, {}, {})


def _check(response: requests.Response, props: Mapping[str, Any], action: str) -> None:
    if response.status_code < 400:
        return
    try:
        error = response.json().get("error") or {}
        message = f"{error.get('code', '')}: {error.get('message', '')}".strip(": ")
    except ValueError:
        message = response.text[:500]
    raise TrafficError(
        f"Azure refused to {action} online endpoint {props['endpoint_name']} (HTTP {response.status_code}): {message}"
    )


class OnlineTraffic(Resource, module="azureml", name="OnlineTraffic"):
    """Inputs: endpoint_name, endpoint_id (its ARM resource ID), traffic and mirror_traffic (percent by
    deployment), endpoint_digest (changes with the endpoint's own declaration), arm_endpoint,
    poll_seconds and timeout_seconds (tests)."""

    def __init__(self, resource_name: str, props: dict[str, Any], opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(OnlineTrafficProvider(), resource_name, props, typed_resource_options(None, opts))
