"""Endpoint keys: a primary and a secondary key, generated once and kept as Pulumi secrets.

pulumi-random would do this, but its provider plugin cannot be built here (docs/toolchain.md);
a dynamic provider with `secrets.token_urlsafe` needs no plugin. Keys a deployment config supplies
(AML's `keys.primaryKey`/`keys.secondaryKey`) are used as given.

Rotation changes one key at a time, so that clients holding the other keep working (AML's
`regen_key`): `modelplane keys rotate` runs an update with a rotation request for one key in the
engine's environment (MODELPLANE_ROTATE_KEY), and `key_rotation_days` makes the next update
regenerate the older key once it is that old. Each key's creation time is kept in the state; a
key made before that was recorded is stamped with the time of the first update that sees it.
`generation` counts the rotations: a Kubernetes Deployment carries it so that its pods roll when
a key changes (they read the keys once, at start).
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, Resource, ResourceProvider, UpdateResult

from modelplane.constants import (
    AUTH_MODE_VARIABLE,
    ENDPOINT_VARIABLE,
    KEY_NAMES,
    PRIMARY_KEY_VARIABLE,
    ROTATE_KEY_VARIABLE,
    SECONDARY_KEY_VARIABLE,
)
from modelplane.content import text_digest
from modelplane.providers import typed_resource_options

KEY_BYTES = 32


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def new_key() -> str:
    return secrets.token_urlsafe(KEY_BYTES)


def key_to_rotate(olds: dict[str, Any], news: dict[str, Any], now: datetime) -> str | None:
    """ "primary" or "secondary" when this update must regenerate that key, else None: a rotation
    request not seen before, or the older key past `rotation_days`."""
    request = news.get("rotate") or None
    if request and request.get("id") != olds.get("last_request"):
        return str(request["key"])
    days = news.get("rotation_days")
    created = {key: olds.get(f"{key}_created") for key in KEY_NAMES}
    if not days or not all(created.values()):
        return None
    oldest = min(KEY_NAMES, key=lambda key: str(created[key]))
    if now - datetime.fromisoformat(str(created[oldest])) >= timedelta(days=int(days)):
        return oldest
    return None


def unstamped(olds: dict[str, Any], news: dict[str, Any]) -> bool:
    """Whether the keys predate their recorded creation times and an age rule now needs them."""
    return bool(news.get("rotation_days")) and not all(olds.get(f"{key}_created") for key in KEY_NAMES)


class KeysProvider(ResourceProvider):
    def create(self, props: dict[str, Any]) -> CreateResult:
        now = _now()
        request = props.get("rotate") or {}
        return CreateResult(
            id_=secrets.token_hex(8),
            outs={
                **{name: props.get(name) for name in ("rotation", "rotate", "rotation_days")},
                "primary_key": new_key(),
                "secondary_key": new_key(),
                "primary_created": now,
                "secondary_created": now,
                "generation": 0,
                "last_request": request.get("id"),
            },
        )

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        if (olds.get("rotation") or 0) != (news.get("rotation") or 0):
            return DiffResult(changes=True, replaces=["rotation"])
        due = key_to_rotate(olds, news, datetime.now(UTC)) is not None or unstamped(olds, news)
        return DiffResult(changes=due, replaces=[])

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        outs = {**olds, **{name: news.get(name) for name in ("rotation", "rotate", "rotation_days")}}
        now = _now()
        for key in KEY_NAMES:
            outs[f"{key}_created"] = olds.get(f"{key}_created") or now
        rotated = key_to_rotate(olds, news, datetime.now(UTC))
        if rotated is not None:
            outs[f"{rotated}_key"] = new_key()
            outs[f"{rotated}_created"] = now
            outs["generation"] = int(olds.get("generation") or 0) + 1
        outs["last_request"] = (news.get("rotate") or {}).get("id", olds.get("last_request"))
        return UpdateResult(outs=outs)


def rotation_request(endpoint_name: str) -> dict[str, str] | None:
    """The rotation `modelplane keys rotate` asked for this endpoint: {"key", "id"}, or None.
    MODELPLANE_ROTATE_KEY is "<endpoint>:<primary|secondary>:<request id>"."""
    endpoint, key, request_id = [*os.environ.get(ROTATE_KEY_VARIABLE, "").split(":"), "", "", ""][:3]
    if endpoint != endpoint_name or key not in KEY_NAMES or not request_id:
        return None
    return {"key": key, "id": request_id}


class EndpointKeys(Resource, module="keys", name="EndpointKeys"):
    """Two random keys for an endpoint; both outputs are secrets."""

    primary_key: pulumi.Output[str]
    secondary_key: pulumi.Output[str]
    generation: pulumi.Output[int]

    def __init__(
        self,
        resource_name: str,
        rotation_days: int | None = None,
        rotate: dict[str, str] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        secret_outputs = pulumi.ResourceOptions(additional_secret_outputs=["primary_key", "secondary_key"])
        props: dict[str, Any] = {
            "rotation": 0,
            "rotation_days": rotation_days,
            "rotate": rotate,
            "primary_key": None,
            "secondary_key": None,
            "generation": None,
        }
        super().__init__(KeysProvider(), resource_name, props, typed_resource_options(secret_outputs, opts))

    def as_secret_dict(self) -> pulumi.Output[dict[str, str]]:
        """{"primary_key": …, "secondary_key": …} as one secret output (an endpoint's `keys`)."""
        return secret_key_dict(self.primary_key, self.secondary_key)


def secret_key_dict(primary: pulumi.Input[str], secondary: pulumi.Input[str]) -> pulumi.Output[dict[str, str]]:
    """An endpoint's `keys` output: one secret holding both keys."""
    pair = pulumi.Output.all(primary, secondary)
    return pulumi.Output.secret(pair.apply(lambda keys: {"primary_key": keys[0], "secondary_key": keys[1]}))


@dataclass(frozen=True)
class EndpointKeyPair:
    """An endpoint's keys as its component uses them: by variable name, and as its `keys` output."""

    by_variable: dict[str, pulumi.Output[str]]
    """MODELPLANE_PRIMARY_KEY / MODELPLANE_SECONDARY_KEY → key; empty when auth is off."""
    exported: pulumi.Output[dict[str, str]]
    """The component's `keys` output: {"primary_key", "secondary_key"} as one secret, or {}."""
    generation: pulumi.Output[str]
    """Changes whenever a key does: the generated keys' rotations, and a digest of supplied keys."""


@dataclass(frozen=True)
class KeySettings:
    """What an endpoint declares about its keys."""

    endpoint_name: str
    """The key under `endpoints:` (what `modelplane keys rotate` names)."""
    enabled: bool
    """Whether the endpoint has keys (key or token auth)."""
    supplied: tuple[str | None, str | None] = (None, None)
    """The user's own primary and secondary key (AML's `keys`), where given."""
    rotation_days: int | None = None
    """Regenerate the older generated key once it is this many days old."""


def endpoint_keys(component_name: str, settings: KeySettings, parent: pulumi.Resource) -> EndpointKeyPair:
    """The keys of one endpoint component, or none when its auth is off: the user's own keys where
    the deployment config gives them (AML's `keys`), generated ones (`<component>-keys`) otherwise."""
    if not settings.enabled:
        return EndpointKeyPair({}, pulumi.Output.secret({}), pulumi.Output.from_input("0"))
    primary, secondary = (pulumi.Output.secret(key) if key else None for key in settings.supplied)
    # Supplied keys that change must roll the pods too: their digest (as the Docker env's
    # fingerprint, never the keys) joins the generation.
    supplied = (
        f"-{text_digest(chr(10).join(k or '' for k in settings.supplied))[:16]}" if any(settings.supplied) else ""
    )
    generation = pulumi.Output.from_input("0" + supplied)
    if primary is None or secondary is None:
        keys = EndpointKeys(
            f"{component_name}-keys",
            rotation_days=settings.rotation_days,
            rotate=rotation_request(settings.endpoint_name),
            opts=pulumi.ResourceOptions(parent=parent),
        )
        primary = primary or keys.primary_key
        secondary = secondary or keys.secondary_key
        generation = keys.generation.apply(lambda value: f"{value or 0}{supplied}")
    return EndpointKeyPair(
        {PRIMARY_KEY_VARIABLE: primary, SECONDARY_KEY_VARIABLE: secondary},
        secret_key_dict(primary, secondary),
        generation,
    )


def gate_env(endpoint_name: str, auth_mode: str) -> dict[str, str]:
    """The gate's settings besides the keys: what it asks of a request, and the audience a token
    must name (modelplane_runtime/gate.py)."""
    return {AUTH_MODE_VARIABLE: auth_mode, ENDPOINT_VARIABLE: endpoint_name}
