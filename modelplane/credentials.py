"""Credentials of an endpoint beyond `up`: which keys `modelplane keys rotate` may rotate, and
tokens for endpoints with token auth (AML's `token_auth_enabled`, v2's `aml_token`).

A token is a JWT signed (HS256, PyJWT) with the endpoint's primary key, which the stack holds as a
secret; its audience is the endpoint, so it opens no other. The gate accepts tokens signed with
either key; rotating the primary invalidates the tokens issued with it (callers fetch a new one, as
they do every hour). What `modelplane token` prints has the shape of AML v2's
`az ml online-endpoint get-credentials`.
"""

from __future__ import annotations

import time
from typing import Any

import jwt

from modelplane.runtime.gate import TOKEN_ALGORITHM, TOKEN_ISSUER
from modelplane.spec import StackSpec
from modelplane.spec.schema import OnlineEndpointSpec

TOKEN_LIFETIME_S = 3600
"""AML's tokens last an hour."""
REFRESH_FRACTION = 0.5
"""Refresh halfway through the lifetime, so that a client never presents an expiring token."""


def mint(
    endpoint_name: str, signing_key: str, lifetime_s: int = TOKEN_LIFETIME_S, now: float | None = None
) -> dict[str, Any]:
    """{"accessToken", "tokenType", "expiryTimeUtc", "refreshAfterTimeUtc"} (seconds since the epoch)."""
    issued = int(time.time() if now is None else now)
    expiry = issued + lifetime_s
    claims = {"iss": TOKEN_ISSUER, "aud": endpoint_name, "iat": issued, "nbf": issued, "exp": expiry}
    return {
        "accessToken": jwt.encode(claims, signing_key, algorithm=TOKEN_ALGORITHM),
        "tokenType": "Bearer",
        "expiryTimeUtc": expiry,
        "refreshAfterTimeUtc": issued + int(lifetime_s * REFRESH_FRACTION),
    }


class CredentialError(Exception):
    """An endpoint's credentials cannot be used or changed as asked (the message says why)."""


def endpoint_auth_mode(spec: StackSpec, endpoint_name: str) -> str:
    """ "key", "token" or "none" for a declared endpoint; CredentialError for one not declared."""
    endpoint = spec.endpoints.get(endpoint_name)
    if endpoint is None:
        raise CredentialError(
            f"no endpoint '{endpoint_name}' in the stack; it has: {', '.join(spec.endpoints) or 'none'}"
        )
    if isinstance(endpoint, OnlineEndpointSpec):
        return "token" if endpoint.auth_mode != "key" else "key"
    mode = getattr(endpoint, "auth_mode", None)
    return str(mode) if mode is not None else ("key" if getattr(endpoint, "auth_enabled", False) else "none")


def check_rotatable(spec: StackSpec, endpoint_name: str) -> None:
    """Raise CredentialError unless the endpoint's keys are Modelplane's to regenerate."""
    mode = endpoint_auth_mode(spec, endpoint_name)
    endpoint = spec.endpoints[endpoint_name]
    if isinstance(endpoint, OnlineEndpointSpec):
        raise CredentialError(
            f"the keys of online endpoint '{endpoint_name}' are Azure's: "
            f"az ml online-endpoint regenerate-keys --name {endpoint_name} --key-type primary"
        )
    if mode == "none":
        raise CredentialError(f"endpoint '{endpoint_name}' has no keys (its auth is off)")
    if all(getattr(endpoint, "supplied_keys", (None, None))):
        raise CredentialError(
            f"the keys of endpoint '{endpoint_name}' are the ones its deployment config gives "
            "(primary_key/secondary_key): change them there"
        )


def token_for(spec: StackSpec, endpoint_name: str, keys: dict[str, Any], lifetime_s: int) -> dict[str, Any]:
    """A token for an endpoint with token auth, signed with its primary key (from the stack's outputs)."""
    mode = endpoint_auth_mode(spec, endpoint_name)
    if isinstance(spec.endpoints[endpoint_name], OnlineEndpointSpec):
        raise CredentialError(
            f"the tokens of online endpoint '{endpoint_name}' come from Azure: "
            f"az ml online-endpoint get-credentials --name {endpoint_name}"
        )
    if mode != "token":
        takes = "keys" if mode == "key" else "no credential"
        raise CredentialError(f"endpoint '{endpoint_name}' takes {takes}, not tokens (token_auth_enabled is off)")
    signing_key = (keys.get(endpoint_name) or {}).get("primary_key")
    if not signing_key:
        raise CredentialError(
            f"endpoint '{endpoint_name}' has no signing key in the stack's outputs yet (run `modelplane up`)"
        )
    return mint(endpoint_name, signing_key, lifetime_s)


def credential_for(spec: StackSpec, endpoint_name: str, keys: dict[str, Any]) -> str | None:
    """What `modelplane invoke` presents: a fresh token on a token endpoint, else the primary key (or
    nothing when the endpoint takes none)."""
    primary = (keys.get(endpoint_name) or {}).get("primary_key")
    endpoint = spec.endpoints.get(endpoint_name)
    signs_tokens = endpoint is not None and endpoint_auth_mode(spec, endpoint_name) == "token"
    if primary and signs_tokens and not isinstance(endpoint, OnlineEndpointSpec):
        return str(mint(endpoint_name, primary)["accessToken"])
    return str(primary) if primary else None
