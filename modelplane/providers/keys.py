"""Endpoint keys: a primary and a secondary key, generated once and kept as Pulumi secrets.

pulumi-random would do this, but its provider plugin cannot be built here (docs/toolchain.md);
a dynamic provider with `secrets.token_urlsafe` needs no plugin. Keys are regenerated only when
`rotation` changes, so rotating a key is a one-line change in the stack.
"""

from __future__ import annotations

import secrets
from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, Resource, ResourceProvider

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


class EndpointKeys(Resource):
    """Two random keys for an endpoint; both outputs are secrets."""

    primary_key: pulumi.Output[str]
    secondary_key: pulumi.Output[str]

    def __init__(self, resource_name: str, rotation: int = 0, opts: pulumi.ResourceOptions | None = None) -> None:
        secret_outputs = pulumi.ResourceOptions(additional_secret_outputs=["primary_key", "secondary_key"])
        super().__init__(
            KeysProvider(),
            resource_name,
            {"rotation": rotation, "primary_key": None, "secondary_key": None},
            pulumi.ResourceOptions.merge(secret_outputs, opts),
        )

    def as_secret_dict(self) -> pulumi.Output[dict[str, str]]:
        """{"primary_key": …, "secondary_key": …} as one secret output (an endpoint's `keys`)."""
        pair = pulumi.Output.all(self.primary_key, self.secondary_key)
        return pulumi.Output.secret(pair.apply(lambda keys: {"primary_key": keys[0], "secondary_key": keys[1]}))
