"""A local endpoint's router (nginx, modelplane/router.py) and the Docker network it shares with the
endpoint's deployments, as Pulumi dynamic resources.

The router's configuration is an input that changes in place: a new one is checked (`nginx -t`),
loaded with a graceful reload, and the update returns only once the router answers with it, so what
`up` does next (removing a deployment's old container) never meets a worker that still sends to it.
"""

from __future__ import annotations

import contextlib
import io
import tarfile
import time
import urllib.request
from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ReadResult, Resource, ResourceProvider, UpdateResult

from modelplane.providers import typed_resource_options
from modelplane.providers.docker import LOG_TAIL, build_log, engine_client, ensure_base_image, input_changed
from modelplane.router import (
    CONFIG_PATH,
    CONFIG_PROBE,
    ROUTER_DOCKERFILE,
    ROUTER_IMAGE,
    ROUTER_PORT,
    ROUTER_SYSCTLS,
    config_digest,
    render_config,
    routes_from,
)
from modelplane.runtime.ports import MAX_BODY_BYTES

ROUTER_REPLACE_KEYS = ("name", "port", "network", "labels")
ROUTER_UPDATE_KEYS = ("endpoint", "routes", "traffic", "mirror_traffic")
# Consecutive answers with the new configuration that say a reload is done (each on a new connection).
SETTLED_ANSWERS = 3
SETTLE_TIMEOUT_S = 30.0


class NetworkProvider(ResourceProvider):
    """A user-defined bridge network: its containers find each other by name through Docker's DNS."""

    def create(self, props: dict[str, Any]) -> CreateResult:
        from docker import errors

        client = engine_client()
        try:
            network = client.networks.get(props["name"])
        except errors.NotFound:
            labels = {**(props.get("labels") or {}), "modelplane.managed": "true"}
            network = client.networks.create(props["name"], driver="bridge", labels=labels)
        return CreateResult(id_=network.id, outs={**props, "network_id": network.id})

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changed = [k for k in ("name", "labels") if input_changed(k, olds, news)]
        return DiffResult(changes=bool(changed), replaces=changed, stables=["network_id"], delete_before_replace=True)

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        from docker import errors

        try:
            network = engine_client().networks.get(id_)
        except errors.NotFound:
            return ReadResult(id_="", outs={})
        return ReadResult(id_=id_, outs={**props, "name": network.name})

    def delete(self, id_: str, _props: dict[str, Any]) -> None:
        from docker import errors

        with contextlib.suppress(errors.NotFound):
            engine_client().networks.get(id_).remove()


class Network(Resource, module="docker", name="Network"):
    """A Docker network. Inputs: name, labels."""

    network_id: pulumi.Output[str]
    name: pulumi.Output[str]

    def __init__(self, resource_name: str, props: dict[str, Any], opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(
            NetworkProvider(), resource_name, {"network_id": None, **props}, typed_resource_options(None, opts)
        )


def ensure_router_image(client: Any) -> None:
    """Build the router image (nginx-light on the default base image) the first time it is needed."""
    from docker import errors

    try:
        client.images.get(ROUTER_IMAGE)
        return
    except errors.ImageNotFound:
        pass
    ensure_base_image(client, ROUTER_DOCKERFILE)
    try:
        client.images.build(fileobj=io.BytesIO(ROUTER_DOCKERFILE.encode()), tag=ROUTER_IMAGE, rm=True, forcerm=True)
    except errors.BuildError as error:
        raise RuntimeError(
            f"building the router image {ROUTER_IMAGE} failed: {error.msg}\n{build_log(error)[-3000:]}"
        ) from None


def config_archive(config: str) -> bytes:
    """A tar archive to unpack at / that holds the configuration at CONFIG_PATH (with its folder)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        folder = tarfile.TarInfo(CONFIG_PATH.lstrip("/").rsplit("/", 1)[0])
        folder.type, folder.mode = tarfile.DIRTYPE, 0o755
        archive.addfile(folder)
        data = config.encode()
        file = tarfile.TarInfo(CONFIG_PATH.lstrip("/"))
        file.size, file.mode, file.mtime = len(data), 0o644, int(time.time())
        archive.addfile(file, io.BytesIO(data))
    return buffer.getvalue()


def _put_config(container: Any, config: str) -> None:
    container.put_archive("/", config_archive(config))


def _router_logs(container: Any) -> str:
    return container.logs(tail=LOG_TAIL).decode(errors="replace").rstrip() or "(no output)"


def _serves(port: int, digest: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{CONFIG_PROBE}", timeout=2) as response:
            return bool(response.read().decode() == digest)
    except OSError:
        return False


def _wait_for_config(container: Any, port: int, digest: str) -> None:
    """Until the router answers with `digest` SETTLED_ANSWERS times in a row."""
    deadline, settled = time.monotonic() + SETTLE_TIMEOUT_S, 0
    while settled < SETTLED_ANSWERS:
        settled = settled + 1 if _serves(port, digest) else 0
        if time.monotonic() > deadline:
            container.reload()
            raise RuntimeError(
                f"router {container.name} ({container.status}) did not serve its new configuration within "
                f"{SETTLE_TIMEOUT_S:.0f} s; its last {LOG_TAIL} log lines:\n{_router_logs(container)}"
            )
        time.sleep(0.05)


def config_of(props: dict[str, Any]) -> str:
    """The nginx.conf a Router resource's inputs describe."""
    limit = int(props.get("max_body_bytes") or MAX_BODY_BYTES)
    return render_config(props["endpoint"], routes_from(props), max_body_bytes=limit)


def _rendered_digest(props: dict[str, Any]) -> str:
    return config_digest(config_of(props))


def _nginx(container: Any, *args: str) -> None:
    result = container.exec_run(["nginx", "-c", CONFIG_PATH, *args])
    if result.exit_code != 0:
        raise RuntimeError(f"nginx {' '.join(args)} in router {container.name} failed: {result.output.decode()}")


class RouterProvider(ResourceProvider):
    """One router container on 127.0.0.1:<port>; its routes change in place (graceful reload)."""

    def create(self, props: dict[str, Any]) -> CreateResult:
        from docker import errors

        client = engine_client()
        ensure_router_image(client)
        with contextlib.suppress(errors.NotFound):
            client.containers.get(props["name"]).remove(force=True)
        container = client.containers.create(
            ROUTER_IMAGE,
            name=props["name"],
            detach=True,
            ports={f"{ROUTER_PORT}/tcp": ("127.0.0.1", int(props["port"]))},
            network=props["network"],
            labels={**(props.get("labels") or {}), "modelplane.managed": "true"},
            restart_policy={"Name": "unless-stopped"},
            sysctls=ROUTER_SYSCTLS,
        )
        config = config_of(props)
        _put_config(container, config)
        try:
            container.start()
        except errors.APIError as error:
            container.remove(force=True)
            raise RuntimeError(f"router {props['name']} could not start: {error.explanation}") from None
        _wait_for_config(container, int(props["port"]), config_digest(config))
        outs = {**props, "container_id": container.id, "config_digest": config_digest(config), "status": "running"}
        return CreateResult(id_=container.id, outs=outs)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        replaces = [k for k in ROUTER_REPLACE_KEYS if input_changed(k, olds, news)]
        updates = [k for k in ROUTER_UPDATE_KEYS if input_changed(k, olds, news)]
        if not updates and olds.get("config_digest") not in (None, _rendered_digest(news)):
            # The router serves another configuration than the one declared (changed by hand, seen by
            # a refresh): `up` writes the declared one back.
            updates.append("config_digest")
        if olds.get("status") not in (None, "running", "restarting"):
            replaces.append("status")
        changed = replaces + updates
        return DiffResult(
            changes=bool(changed), replaces=replaces, stables=["container_id"], delete_before_replace=True
        )

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        container = engine_client().containers.get(id_)
        config = config_of(news)
        _put_config(container, config)
        try:
            _nginx(container, "-t")
        except RuntimeError:
            _put_config(container, config_of(olds))
            raise
        _nginx(container, "-s", "reload")
        _wait_for_config(container, int(news["port"]), config_digest(config))
        return UpdateResult(
            outs={**news, "container_id": id_, "config_digest": config_digest(config), "status": "running"}
        )

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        from docker import errors

        try:
            container = engine_client().containers.get(id_)
        except errors.NotFound:
            return ReadResult(id_="", outs={})
        digest = props.get("config_digest")
        if container.status == "running" and not _serves(int(props["port"]), str(digest)):
            digest = "changed outside the stack"
        return ReadResult(id_=id_, outs={**props, "status": container.status, "config_digest": digest})

    def delete(self, id_: str, _props: dict[str, Any]) -> None:
        from docker import errors

        with contextlib.suppress(errors.NotFound):
            engine_client().containers.get(id_).remove(force=True)


class Router(Resource, module="docker", name="Router"):
    """The router of a local endpoint. Inputs: name, endpoint, port (on 127.0.0.1), network, labels,
    routes ([{name, host, port, traffic, mirror}]: one per deployment), and traffic and mirror_traffic
    (the same shares by deployment, known before the containers exist: plans and policies read them)."""

    container_id: pulumi.Output[str]
    config_digest: pulumi.Output[str]
    status: pulumi.Output[str]

    def __init__(self, resource_name: str, props: dict[str, Any], opts: pulumi.ResourceOptions | None = None) -> None:
        inputs = {"container_id": None, "config_digest": None, "status": None, **props}
        super().__init__(RouterProvider(), resource_name, inputs, typed_resource_options(None, opts))
