"""The router in front of a local endpoint's deployments: nginx (Debian's nginx-light) on the endpoint's
port, splitting live requests by weight, mirroring a share to one deployment (its answers dropped) and
naming the deployment that answered in `azureml-model-deployment`, as Azure ML v2 does.

Deployments are containers on the endpoint's Docker network, reached by name through Docker's DNS
(re-resolved every few seconds, so a restarted container is found at its new address). A new
configuration is loaded with nginx's graceful reload: requests in flight finish on the workers and
deployments that had them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass

from modelplane.base_images import DEFAULT_BASE
from modelplane.runtime.ports import MAX_BODY_BYTES

ROUTER_PORT = 8080
CONFIG_PATH = "/etc/modelplane/nginx.conf"
PID_FILE = "/run/nginx.pid"
# Answers with the digest of the configuration that answers: a reload is done when it says the new one.
CONFIG_PROBE = "/_modelplane/router"
DEPLOYMENT_HEADER = "azureml-model-deployment"
DOCKER_DNS = "127.0.0.11"
# A request may take as long as the scoring server allows (SCORING_TIMEOUT_MS, 60 s by default) and
# carry an image up to the scoring server's limit: nginx's defaults (60 s, 1 MB) would cut both.
PROXY_TIMEOUT_S = 300
BODY_PLACEHOLDER = "{max_body_bytes}"
TOO_LARGE = json.dumps({"error": f"the request body is over the limit of {BODY_PLACEHOLDER} bytes"})
# Every request the router passes on is a new connection to a deployment (the scoring server closes
# each), whose port then waits a minute in TIME_WAIT: with the default range (28,000 ports) and no
# reuse, a router past ~450 requests/s to one deployment runs out of ports. A wide range, and reusing
# ports in TIME_WAIT for new connections out (safe with TCP timestamps), lift that ceiling.
ROUTER_SYSCTLS = {"net.ipv4.ip_local_port_range": "1024 65535", "net.ipv4.tcp_tw_reuse": "1"}
ROUTER_DOCKERFILE = f"""FROM {DEFAULT_BASE.image}
RUN apt-get update -qq \\
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nginx-light >/dev/null \\
 && rm -rf /var/lib/apt/lists/* /etc/nginx/sites-enabled/default
CMD ["nginx", "-c", "{CONFIG_PATH}", "-g", "daemon off;"]
"""
ROUTER_IMAGE = "modelplane/router:" + hashlib.sha256(ROUTER_DOCKERFILE.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Route:
    """One deployment as the router sees it."""

    name: str
    """The deployment's name (the response header's value)."""
    host: str
    """Its container's name on the endpoint's network."""
    port: int
    traffic: int
    """Percent of live requests."""
    mirror: int = 0
    """Percent of live requests copied to it."""


DIGEST_PLACEHOLDER = "{digest}"
PROBE_ANSWER = 'return 200 "'


def config_digest(config: str) -> str:
    """The identity of a rendered configuration: the digest it answers CONFIG_PROBE with."""
    return config.split(PROBE_ANSWER, 1)[1].split('"', 1)[0]


def _split(variable: str, salt: str, shares: list[tuple[str, int]], rest: str) -> str:
    """An nginx `split_clients` block: `variable` takes each value for its percent of requests."""
    lines = [f'    split_clients "{salt}${{request_id}}" ${variable} {{']
    lines += [f"        {share}% {value};" for value, share in shares if share > 0]
    lines.append(f"        * {rest};")
    return "\n".join([*lines, "    }"])


def _live(routes: list[Route]) -> str:
    """$deployment: the deployment a live request goes to (the last one with traffic takes the rest)."""
    live = [(route.name, route.traffic) for route in routes if route.traffic > 0]
    if len(live) <= 1:
        only = live[0][0] if live else '""'
        return f'    map "" $deployment {{\n        default {only};\n    }}'
    return _split("deployment", "live", live[:-1], live[-1][0])


def _hosts(routes: list[Route]) -> str:
    lines = ["    map $deployment $backend {"]
    lines += [f"        {route.name} {route.host}:{route.port};" for route in routes]
    return "\n".join([*lines, "    }"])


def _mirror(routes: list[Route]) -> str:
    mirrored = [(f"{route.host}:{route.port}", route.mirror) for route in routes if route.mirror > 0]
    return _split("mirror_backend", "mirror", mirrored, '""') if mirrored else ""


PROXY_HEADERS = """            proxy_set_header Host $http_host;
            proxy_set_header X-Request-Id $request_id;
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_set_header Connection "";"""


def _live_location(endpoint: str, routes: list[Route]) -> str:
    if not any(route.traffic > 0 for route in routes):
        message = json.dumps({"error": f"no deployment of endpoint {endpoint} takes traffic"})
        return (
            "        location / {\n            default_type application/json;\n"
            f"            return 503 '{message}';\n        }}"
        )
    mirror = ""
    if any(route.mirror > 0 for route in routes):
        mirror = "            mirror /_modelplane/mirror;\n            mirror_request_body on;\n"
    return f"""        location / {{
{mirror}            proxy_pass http://$backend;
{PROXY_HEADERS}
            add_header {DEPLOYMENT_HEADER} $deployment always;
        }}"""


def _mirror_location(routes: list[Route]) -> str:
    if not any(route.mirror > 0 for route in routes):
        return ""
    return f"""
        location = /_modelplane/mirror {{
            internal;
            if ($mirror_backend = "") {{
                return 204;
            }}
            proxy_pass http://$mirror_backend$request_uri;
{PROXY_HEADERS}
        }}"""


def render_config(
    endpoint: str, routes: list[Route], resolver: str | None = DOCKER_DNS, max_body_bytes: int = MAX_BODY_BYTES
) -> str:
    """The router's nginx.conf, which answers CONFIG_PROBE with a digest of itself (taken with a
    placeholder in the digest's place). `resolver` finds hosts given by name; None when every host
    is an address (a Kubernetes Service's). `max_body_bytes`: the deployments' own limit, refused here."""
    body = _render(endpoint, routes, DIGEST_PLACEHOLDER, resolver).replace(BODY_PLACEHOLDER, str(max_body_bytes))
    return body.replace(DIGEST_PLACEHOLDER, hashlib.sha256(body.encode()).hexdigest()[:16])


def _render(endpoint: str, routes: list[Route], digest: str, resolver: str | None) -> str:
    resolving = f"\n    resolver {resolver} valid=2s ipv6=off;" if resolver else ""
    return f"""# The router of endpoint {endpoint} (Modelplane): {", ".join(f"{r.name} {r.traffic}%" for r in routes)}
worker_processes 2;
pid {PID_FILE};
error_log stderr warn;
events {{
    worker_connections 4096;
}}
http {{
    access_log off;
    server_tokens off;{resolving}
    client_max_body_size {BODY_PLACEHOLDER};
    proxy_http_version 1.1;
    proxy_connect_timeout 5s;
    proxy_read_timeout {PROXY_TIMEOUT_S}s;
    proxy_send_timeout {PROXY_TIMEOUT_S}s;
{_live(routes)}
{_hosts(routes)}
{_mirror(routes)}
    server {{
        listen {ROUTER_PORT};
        error_page 413 @too_large;
        location @too_large {{
            default_type application/json;
            return 413 '{TOO_LARGE}';
        }}
        location = {CONFIG_PROBE} {{
            default_type text/plain;
            {PROBE_ANSWER}{digest}";
        }}
{_live_location(endpoint, routes)}{_mirror_location(routes)}
    }}
}}
"""


def routes_from(props: Mapping[str, object]) -> list[Route]:
    """The routes a Router resource's `routes` input describes."""
    raw = props.get("routes") or []
    assert isinstance(raw, list)
    return [
        Route(str(r["name"]), str(r["host"]), int(r["port"]), int(r["traffic"]), int(r.get("mirror", 0))) for r in raw
    ]
