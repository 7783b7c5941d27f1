"""Docker images and containers on the local engine, as Pulumi dynamic resources.

Why not pulumi-docker: its provider plugin is a Go binary that the Go module proxy reachable here
does not serve, and no registry ships it prebuilt (docs/toolchain.md). These resources talk to the
Docker Engine API through the official Python client (`docker`), run in Pulumi's own Python
dynamic-provider host, and implement `read` so that `refresh` and drift detection see what the
engine really has.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import docker

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ReadResult, Resource, ResourceProvider, UpdateResult

from modelplane.log_tail import telling_tail
from modelplane.providers import typed_resource_options

# Keys whose change means the container must be recreated (a container's config is immutable).
CONTAINER_REPLACE_KEYS = (
    "name",
    "image",
    "command",
    "env",
    "ports",
    "labels",
    "restart",
    "cpus",
    "memory_mb",
    "network",
    "ready",
)
LOG_TAIL = 30
"""Log lines a failure shows."""
LOG_SCAN = 400
"""Log lines read to find them."""
# Labels that earlier versions set and this one no longer does: their absence alone is no reason to
# recreate a container or rebuild an image (they go with the next replacement).
RETIRED_LABELS = frozenset({"modelplane.auth", "modelplane.gpu", "modelplane.cuda"})
BUILD_LABEL = "modelplane.build"


def engine_client() -> docker.DockerClient:
    # The client (and its HTTP stack) is imported where it is used, in the provider process: the
    # program imports this module for the resource classes only, on every preview.
    import docker

    return docker.from_env(timeout=600)


def _port_bindings(ports: list[dict[str, Any]]) -> dict[str, tuple[str, int]]:
    # Numbers arrive as floats from the engine: the Docker API wants "8000/tcp", not "8000.0/tcp".
    return {f"{int(p['internal'])}/tcp": (p.get("host_ip", "127.0.0.1"), int(p["external"])) for p in ports}


def _container_state(container: Any) -> dict[str, Any]:
    """What the engine reports for a container, in the shape of the resource's inputs."""
    attrs = container.attrs
    config = attrs.get("Config", {})
    host_config = attrs.get("HostConfig", {})
    env: dict[str, str] = {}
    for item in config.get("Env") or []:
        key, _, value = item.partition("=")
        env[key] = value
    ports = []
    for container_port, bindings in sorted((host_config.get("PortBindings") or {}).items()):
        for binding in bindings or []:
            ports.append(
                {
                    "internal": int(container_port.split("/")[0]),
                    "external": int(binding.get("HostPort") or 0),
                    "host_ip": binding.get("HostIp") or "0.0.0.0",
                }
            )
    nano_cpus = host_config.get("NanoCpus") or 0
    memory = host_config.get("Memory") or 0
    return {
        "name": attrs.get("Name", "").lstrip("/"),
        "image": config.get("Image", ""),
        "command": config.get("Cmd") or [],
        "env": env,
        "ports": ports,
        "labels": config.get("Labels") or {},
        "restart": (host_config.get("RestartPolicy") or {}).get("Name", "no"),
        "cpus": nano_cpus / 1e9 if nano_cpus else None,
        "memory_mb": memory // (1024 * 1024) if memory else None,
        "network": next(iter((attrs.get("NetworkSettings") or {}).get("Networks") or {}), None)
        if host_config.get("NetworkMode") not in (None, "default", "bridge")
        else None,
        "status": attrs.get("State", {}).get("Status", "unknown"),
        "container_id": attrs.get("Id", ""),
        "image_id": attrs.get("Image", ""),
    }


def env_fingerprint(env: dict[str, Any]) -> str:
    """A digest of the environment: `env` is a secret (it holds keys), so refresh and drift reports
    show it only as [secret]; the digest says whether it changed without saying what it is."""
    canonical = json.dumps({k: str(v) for k, v in sorted(env.items())}, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def input_changed(key: str, olds: dict[str, Any], news: dict[str, Any]) -> bool:
    old, new = olds.get(key), news.get(key)
    if key == "labels":
        old = {k: v for k, v in (old or {}).items() if k not in RETIRED_LABELS}
        new = {k: v for k, v in (new or {}).items() if k not in RETIRED_LABELS}
    return bool(_normalise(old) != _normalise(new))


def _normalise(value: Any) -> Any:
    """Comparable form: engine numbers are floats, the Docker API's are ints."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _normalise(v) for k, v in sorted(value.items())}
    if isinstance(value, list):
        return [_normalise(v) for v in value]
    return value


def _fresh_name(prefix: str) -> str:
    """`<prefix>-<6 hex>`: a successor created before its predecessor is removed needs a name of its own."""
    return f"{prefix}-{secrets.token_hex(3)}"


def _remove_stale(client: docker.DockerClient, name: str) -> None:
    """A container left by a failed run, with our name: replace it rather than fail."""
    from docker import errors

    try:
        stale = client.containers.get(name)
    except errors.NotFound:
        return
    if stale.labels.get("modelplane.managed") == "true":
        stale.remove(force=True)


def _run_arguments(props: dict[str, Any], name: str) -> dict[str, Any]:
    """docker run's arguments for the declared container."""
    kwargs: dict[str, Any] = {
        "name": name,
        "detach": True,
        "environment": props.get("env") or {},
        "ports": _port_bindings(props.get("ports") or []),
        "labels": {**(props.get("labels") or {}), "modelplane.managed": "true"},
        "restart_policy": {"Name": props.get("restart") or "no"},
    }
    if props.get("network"):
        kwargs["network"] = props["network"]
    if props.get("command"):
        kwargs["command"] = props["command"]
    if props.get("cpus"):
        kwargs["nano_cpus"] = int(float(props["cpus"]) * 1e9)
    if props.get("memory_mb"):
        kwargs["mem_limit"] = f"{int(props['memory_mb'])}m"
    if props.get("ready"):
        kwargs["healthcheck"] = _readiness_check(props["ready"])
    return kwargs


def _readiness_check(ready: dict[str, Any]) -> dict[str, Any]:
    """Docker runs the readiness probe inside the container (no address of it is called from here):
    every second while it starts, every 30 s once it is up."""
    url = f"http://127.0.0.1:{int(ready['port'])}{ready['path']}"
    probe = f"import urllib.request; urllib.request.urlopen({url!r}, timeout=2)"
    second = 1_000_000_000
    return {
        "test": ["CMD", "python3", "-c", probe],
        "interval": 30 * second,
        "timeout": 3 * second,
        "retries": 3,
        "start_period": int(ready["timeout"]) * second,
        "start_interval": second,
    }


def _wait_until_ready(container: Any, ready: dict[str, Any]) -> None:
    """Until the readiness probe passes; a container that exits, restarts or stays unready for
    `timeout` seconds is removed, and the error names it, says why and shows its last log lines."""
    import time

    deadline = time.monotonic() + float(ready["timeout"])
    while True:
        container.reload()
        state = container.attrs.get("State", {})
        health = (state.get("Health") or {}).get("Status")
        if health == "healthy":
            return
        why = _not_ready_reason(container, state, deadline)
        if why is not None:
            logs = telling_tail(container.logs(tail=LOG_SCAN).decode(errors="replace"), LOG_TAIL)
            container.remove(force=True)
            raise RuntimeError(
                f"container {container.name} did not become ready: {why}\n"
                f"its last {LOG_TAIL} log lines:\n{logs or '(no output)'}"
            )
        time.sleep(0.25)


def _not_ready_reason(container: Any, state: dict[str, Any], deadline: float) -> str | None:
    import time

    if state.get("Status") in ("exited", "dead"):
        return f"its process exited with code {state.get('ExitCode')}"
    if state.get("Restarting") or container.attrs.get("RestartCount"):
        # Seen mid-restart the exit code is already the new run's: the logs below say why it ended.
        return f"its process exited and Docker restarted it ({container.attrs.get('RestartCount') or 1} times so far)"
    if time.monotonic() > deadline:
        checks = (state.get("Health") or {}).get("Log") or []
        last = checks[-1].get("Output", "").strip() if checks else "no probe ran"
        return f"its readiness probe still failed after the readiness window; the last probe said: {last[-300:]}"
    return None


class ContainerProvider(ResourceProvider):
    """Creates, reads and removes one container."""

    def create(self, props: dict[str, Any]) -> CreateResult:
        client = engine_client()
        name = _fresh_name(props["name"]) if props.get("unique_name") else props["name"]
        if not props.get("unique_name"):
            _remove_stale(client, name)
        container = client.containers.run(props["image"], **_run_arguments(props, name))
        ready = props.get("ready")
        if ready:
            _wait_until_ready(container, ready)
        container.reload()
        state = _container_state(container)
        return CreateResult(
            id_=container.id,
            outs={
                **props,
                "container_name": name,
                "container_id": container.id,
                "image_id": state["image_id"],
                "status": state["status"],
                "env_fingerprint": env_fingerprint(props.get("env") or {}),
            },
        )

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changed = [k for k in CONTAINER_REPLACE_KEYS if input_changed(k, olds, news)]
        # A container that the engine reports stopped is drift that `up` repairs by recreating it.
        if olds.get("status") not in (None, "running", "created", "restarting"):
            changed.append("status")
        # A container that binds a host port must go before its successor can bind it; one behind a
        # router is replaced by a successor that is ready first.
        return DiffResult(
            changes=bool(changed),
            replaces=changed,
            stables=["container_id"],
            delete_before_replace=bool(news.get("ports") or olds.get("ports")),
        )

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        from docker import errors

        client = engine_client()
        try:
            container = client.containers.get(id_)
        except errors.NotFound:
            # Recreated by hand under the same name: report that container, so the difference
            # (another id, another environment) shows, rather than "gone".
            try:
                container = client.containers.get(props.get("container_name") or props.get("name") or id_)
            except errors.NotFound:
                return ReadResult(id_="", outs={})
        state = _container_state(container)
        outs = dict(props)
        for key in CONTAINER_REPLACE_KEYS:
            if key in ("labels",):
                declared = props.get("labels") or {}
                outs["labels"] = {k: v for k, v in state["labels"].items() if k in declared}
            elif key == "env":
                # The image adds variables of its own (PATH, ...): compare the declared ones only,
                # and report a declared variable that disappeared as missing.
                declared_env = props.get("env") or {}
                outs["env"] = {k: state["env"][k] for k in declared_env if k in state["env"]}
            elif key == "ports":
                outs["ports"] = state["ports"] if state["ports"] else []
            elif key in ("cpus", "memory_mb", "command"):
                if props.get(key):
                    outs[key] = state[key]
            elif key == "name" and props.get("unique_name"):
                # Declared as a prefix: the container is `<name>-<suffix>`.
                outs["container_name"] = state["name"]
                outs["name"] = props["name"] if state["name"].startswith(f"{props['name']}-") else state["name"]
            elif key == "ready":
                continue  # how `create` waits, not state the engine reports
            else:
                outs[key] = state[key]
        outs["status"] = state["status"]
        outs["container_id"] = state["container_id"]
        outs["image_id"] = state["image_id"]
        outs["env_fingerprint"] = env_fingerprint(outs["env"])
        return ReadResult(id_=container.id, outs=outs)

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        # Every input change is a replacement (see diff); nothing is updated in place.
        return UpdateResult(outs=news)

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        from docker import errors

        with contextlib.suppress(errors.NotFound):
            container = engine_client().containers.get(id_)
            if props.get("stop_timeout"):
                # Behind a router: SIGTERM, and the scoring server finishes the requests it has.
                container.stop(timeout=int(props["stop_timeout"]))
            container.remove(force=True)


class Container(Resource, module="docker", name="Container"):
    """A container on the local Docker engine.

    Inputs: name (a prefix with `unique_name`: each container gets a fresh suffix, so that a successor
    can start before its predecessor goes), image, command, env (a secret when it holds keys), ports
    ([{internal, external, host_ip}]), network, labels, restart ("no" | "always" | "unless-stopped" |
    "on-failure"), cpus, memory_mb, ready ({path, port, timeout}: create waits for the readiness
    probe), stop_timeout (seconds a delete lets it finish its requests).
    """

    container_id: pulumi.Output[str]
    container_name: pulumi.Output[str]
    """The container's name: `name`, or `name-<suffix>` with `unique_name`."""
    image_id: pulumi.Output[str]
    status: pulumi.Output[str]
    ports: pulumi.Output[list[dict[str, Any]]]

    def __init__(self, resource_name: str, props: dict[str, Any], opts: pulumi.ResourceOptions | None = None) -> None:
        secret_opts = pulumi.ResourceOptions(additional_secret_outputs=["env"])
        super().__init__(
            ContainerProvider(),
            resource_name,
            {"container_id": None, "container_name": None, "image_id": None, "status": None, **props},
            typed_resource_options(secret_opts, opts),
        )


def ensure_base_image(client: docker.DockerClient, dockerfile: str) -> None:
    """Make the Modelplane base image a Dockerfile (its text) starts FROM when the engine lacks it (a
    Python pin chose a Debian release whose base is made on first use)."""
    from docker import errors

    from modelplane.base_images import base_named, build_base_image

    first = next((line.split()[1] for line in dockerfile.splitlines() if line.startswith("FROM ")), "")
    base = base_named(first)
    if base is None:
        return
    try:
        client.images.get(base.image)
    except errors.ImageNotFound:
        build_base_image(base)


def build_log(error: Any) -> str:
    """The output of a failed `docker build` (a docker.errors.BuildError)."""
    return "".join(str(chunk.get("stream", "")) for chunk in error.build_log if isinstance(chunk, dict))


class ImageProvider(ResourceProvider):
    """Builds an image from a context folder under a content-addressed tag; removes it on delete."""

    def _build(self, props: dict[str, Any]) -> dict[str, Any]:
        from docker import errors

        client = engine_client()
        dockerfile = Path(props["context"]) / (props.get("dockerfile") or "Dockerfile")
        ensure_base_image(client, dockerfile.read_text())
        try:
            image, _logs = client.images.build(
                path=props["context"],
                dockerfile=props.get("dockerfile") or "Dockerfile",
                tag=props["tag"],
                rm=True,
                forcerm=True,
                # A build of its own each time, even from a fully cached context: a resource left
                # pending deletion by a failed update must not remove the image its successor
                # rebuilt under the same tag (`delete` compares ids). Only the config differs.
                labels={**(props.get("labels") or {}), "modelplane.managed": "true", BUILD_LABEL: secrets.token_hex(8)},
            )
        except errors.BuildError as error:
            raise RuntimeError(
                f"docker build of {props['tag']} failed: {error.msg}\n{build_log(error)[-4000:]}"
            ) from None
        registry = props.get("registry")
        if registry:
            # Push to the workspace registry; the stream reports failures as {"error": ...} lines.
            repository, _, tag = props["tag"].rpartition(":")
            auth = {"username": registry.get("username"), "password": registry.get("password")}
            for line in client.api.push(repository, tag=tag, auth_config=auth, stream=True, decode=True):
                if isinstance(line, dict) and line.get("error"):
                    raise RuntimeError(f"docker push of {props['tag']} failed: {line['error']}")
        return {**props, "image_id": image.id}

    def create(self, props: dict[str, Any]) -> CreateResult:
        outs = self._build(props)
        return CreateResult(id_=props["tag"], outs=outs)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        # The tag is a hash of the whole build context, so it alone says whether anything changed.
        changed = [k for k in ("tag", "dockerfile", "labels") if input_changed(k, olds, news)]
        if not olds.get("image_id"):
            changed.append("image_id")
        return DiffResult(changes=bool(changed), replaces=changed, stables=[], delete_before_replace=False)

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        from docker import errors

        try:
            image = engine_client().images.get(id_)
        except errors.ImageNotFound:
            return ReadResult(id_="", outs={})
        # An image retagged by hand under our tag carries other labels (or none): that shows as a
        # label change, which `up` repairs by rebuilding.
        declared = props.get("labels") or {}
        labels = {k: v for k, v in (image.labels or {}).items() if k in declared}
        return ReadResult(id_=id_, outs={**props, "image_id": image.id, "labels": labels})

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        """Remove the image this resource built — and only that one. A replacement builds under
        the same tag before the old resource is deleted, and a tag can be moved by hand, so the tag
        is removed only while it still points at our build; otherwise our build is removed by id
        if nothing else tags it."""
        from docker import errors

        client = engine_client()
        built = props.get("image_id")
        try:
            current: str | None = client.images.get(id_).id
        except errors.ImageNotFound:
            current = None
        try:
            if current is not None and current == built:
                client.images.remove(id_, force=False, noprune=False)
            elif built:
                old = client.images.get(built)
                if not old.tags:
                    client.images.remove(built, force=False, noprune=False)
        except (errors.ImageNotFound, errors.NotFound):
            pass
        except errors.APIError as error:
            # Still used by a container outside this stack: leave it, and say so.
            pulumi.log.warn(f"image {id_} was not removed: {error.explanation}")


class Image(Resource, module="docker", name="Image"):
    """An image built on the local Docker engine from `context` (with `dockerfile`) as `tag`, and
    pushed when `registry` ({server, username, password}) is given; the registry is a secret."""

    image_id: pulumi.Output[str]
    tag: pulumi.Output[str]

    def __init__(self, resource_name: str, props: dict[str, Any], opts: pulumi.ResourceOptions | None = None) -> None:
        secret_opts = pulumi.ResourceOptions(additional_secret_outputs=["registry"])
        super().__init__(
            ImageProvider(), resource_name, {"image_id": None, **props}, typed_resource_options(secret_opts, opts)
        )
