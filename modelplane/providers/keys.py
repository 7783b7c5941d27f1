"""Endpoint keys: a primary and a secondary key, generated once and kept as Pulumi secrets.

pulumi-random would do this, but its provider plugin cannot be built here (docs/toolchain.md);
a dynamic provider with `secrets.token_urlsafe` needs no plugin. Both keys are regenerated when the
`rotation` input changes; the program always passes 0, so today keys are made once per endpoint.
Keys a deployment config supplies (AML's `keys.primaryKey`/`keys.secondaryKey`) are used as given.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, Resource, ResourceProvider

from modelplane.constants import PRIMARY_KEY_VARIABLE, SECONDARY_KEY_VARIABLE
from modelplane.providers import typed_resource_options

KEY_BYTES = 32


class KeysProvider(ResourceProvider):
    def create(self, props: dict[str, Any]) -> CreateResult:
        return CreateResult(
            id_=secrets.token_hex(8),
            outs={
                "rotation": props.get("rotation", 0),
                "primary_key": secrets.token_urlsafe(KEY_BYTES),
                "secondary_key": secrets.token_urlsafe(KEY_BYTES),
            },
        )

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        rotated = olds.get("rotation", 0) != news.get("rotation", 0)
        return DiffResult(changes=rotated, replaces=["rotation"] if rotated else [])


class EndpointKeys(Resource, module="keys", name="EndpointKeys"):
    """Two random keys for an endpoint; both outputs are secrets."""

    primary_key: pulumi.Output[str]
    secondary_key: pulumi.Output[str]

    def __init__(self, resource_name: str, rotation: int = 0, opts: pulumi.ResourceOptions | None = None) -> None:
        secret_outputs = pulumi.ResourceOptions(additional_secret_outputs=["primary_key", "secondary_key"])
        super().__init__(
            KeysProvider(),
            resource_name,
            {"rotation": rotation, "primary_key": None, "secondary_key": None},
            typed_resource_options(secret_outputs, opts),
        )

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


def endpoint_keys(
    component_name: str,
    enabled: bool,
    parent: pulumi.Resource,
    supplied: tuple[str | None, str | None] = (None, None),
) -> EndpointKeyPair:
    """The keys of one endpoint component, or none when its auth is off: the user's own keys where
    the deployment config gives them (AML's `keys`), generated ones (`<component>-keys`) otherwise."""
    if not enabled:
        return EndpointKeyPair({}, pulumi.Output.secret({}))
    primary, secondary = (pulumi.Output.secret(key) if key else None for key in supplied)
    if primary is None or secondary is None:
        keys = EndpointKeys(f"{component_name}-keys", opts=pulumi.ResourceOptions(parent=parent))
        primary = primary or keys.primary_key
        secondary = secondary or keys.secondary_key
    return EndpointKeyPair(
        {PRIMARY_KEY_VARIABLE: primary, SECONDARY_KEY_VARIABLE: secondary}, secret_key_dict(primary, secondary)
    )
