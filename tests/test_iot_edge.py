"""The IoT Edge deployment provider against a local double of IoT Hub's data plane (REST + SAS)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from modelplane.providers.iot_edge import API_VERSION, EdgeDeploymentProvider, edge_manifest, sas_token

HUB = "test-hub.azure-devices.net"
KEY = base64.b64encode(b"hub-owner-key-for-tests").decode()


@dataclass
class HubDouble:
    """What IoT Hub would hold: configurations by id and the content applied to each device."""

    url: str = ""
    configurations: dict[str, dict[str, Any]] = field(default_factory=dict)
    devices: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)


def valid_token(header: str, key: str = KEY) -> bool:
    """Check a SharedAccessSignature as IoT Hub does: signature over the resource and expiry."""
    if not header.startswith("SharedAccessSignature "):
        return False
    fields = dict(part.split("=", 1) for part in header.removeprefix("SharedAccessSignature ").split("&"))
    expected = hmac.new(base64.b64decode(key), f"{fields['sr']}\n{fields['se']}".encode(), hashlib.sha256).digest()
    signature = base64.b64decode(urllib.parse.unquote_plus(fields["sig"]))
    return (
        urllib.parse.unquote_plus(fields["sr"]) == HUB
        and hmac.compare_digest(signature, expected)
        and int(fields["se"]) > time.time()
        and fields["skn"] == "iothubowner"
    )


@pytest.fixture
def hub() -> Iterator[HubDouble]:
    state = HubDouble()

    class Handler(BaseHTTPRequestHandler):
        def _reply(self, status: int, body: Any = None) -> None:
            data = json.dumps(body).encode() if body is not None else b""
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _route(self) -> tuple[list[str], dict[str, list[str]]] | None:
            parsed = urllib.parse.urlparse(self.path)
            state.requests.append((self.command, parsed.path))
            if urllib.parse.parse_qs(parsed.query).get("api-version") != [API_VERSION]:
                self._reply(400, {"Message": "api-version missing"})
                return None
            if not valid_token(self.headers.get("Authorization", "")):
                self._reply(401, {"Message": "IotHubUnauthorizedAccess"})
                return None
            return parsed.path.strip("/").split("/"), {}

        def _body(self) -> Any:
            return json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))

        def do_PUT(self) -> None:
            route = self._route()
            if route is None:
                return
            parts, _ = route
            body = self._body()
            state.configurations[parts[1]] = body
            self._reply(200, body)

        def do_GET(self) -> None:
            route = self._route()
            if route is None:
                return
            parts, _ = route
            found = state.configurations.get(parts[1])
            self._reply(200, found) if found else self._reply(404, {"Message": "ConfigurationNotFound"})

        def do_DELETE(self) -> None:
            route = self._route()
            if route is None:
                return
            parts, _ = route
            if self.headers.get("If-Match") != "*":
                self._reply(412, {"Message": "PreconditionFailed"})
                return
            removed = state.configurations.pop(parts[1], None)
            self._reply(204) if removed else self._reply(404, {"Message": "ConfigurationNotFound"})

        def do_POST(self) -> None:
            route = self._route()
            if route is None:
                return
            parts, _ = route
            state.devices[urllib.parse.unquote(parts[1])] = self._body()["modulesContent"]
            self._reply(204)

        def log_message(self, *_args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


def props(hub: HubDouble, **extra: Any) -> dict[str, Any]:
    content = edge_manifest("scorer", "acr.azurecr.io/digits:abc", {"A": "1"}, {5001: 5001}, {"r": "FROM x INTO y"})
    return {
        "name": "digits-edge",
        "hub_host": HUB,
        "key_name": "iothubowner",
        "shared_access_key": KEY,
        "content": content,
        "priority": 10,
        "endpoint": hub.url,
        **extra,
    }


def test_token_is_signed_with_the_hub_key() -> None:
    assert valid_token(sas_token(HUB, "iothubowner", KEY))
    assert not valid_token(sas_token(HUB, "iothubowner", base64.b64encode(b"other").decode()))


def test_target_condition_deployment_lifecycle(hub: HubDouble) -> None:
    provider = EdgeDeploymentProvider()
    created = provider.create(props(hub, target_condition="tags.site='factory-1'"))
    config = hub.configurations[created.id]
    assert config["targetCondition"] == "tags.site='factory-1'"
    modules = config["content"]["modulesContent"]["$edgeAgent"]["properties.desired"]["modules"]
    assert modules["scorer"]["settings"]["image"] == "acr.azurecr.io/digits:abc"
    assert created.outs is not None
    read = provider.read(created.id, created.outs)
    assert read.id == created.id
    provider.delete(created.id, created.outs)
    assert created.id not in hub.configurations
    assert provider.read(created.id, created.outs).id == ""


def test_changed_content_is_a_new_configuration(hub: HubDouble) -> None:
    provider = EdgeDeploymentProvider()
    old = props(hub, target_condition="tags.x='1'")
    new = {**old, "content": edge_manifest("scorer", "acr.azurecr.io/digits:new", {}, {5001: 5001}, {})}
    diff = provider.diff("id", old, new)
    assert diff.changes and diff.replaces == ["content"]
    assert provider.create(old).id != provider.create(new).id


def test_single_device_gets_the_content_applied(hub: HubDouble) -> None:
    provider = EdgeDeploymentProvider()
    created = provider.create(props(hub, device_id="gateway 7"))
    assert created.id == "device:gateway 7" and created.outs is not None
    assert "scorer" in hub.devices["gateway 7"]["$edgeAgent"]["properties.desired"]["modules"]
    provider.delete(created.id, created.outs)
    assert hub.devices["gateway 7"]["$edgeAgent"]["properties.desired"]["modules"] == {}


def test_a_refused_request_says_what_and_why(hub: HubDouble) -> None:
    provider = EdgeDeploymentProvider()
    wrong_key = props(hub, target_condition="tags.x='1'", shared_access_key=base64.b64encode(b"nope").decode())
    with pytest.raises(RuntimeError, match=r"IoT Hub refused to create deployment .*HTTP 401"):
        provider.create(wrong_key)
