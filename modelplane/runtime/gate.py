"""A WSGI key gate in front of the AML inference server.

- Key auth (MODELPLANE_AUTH_MODE=key, or keys without a mode): `Authorization: Bearer <key>` is
  compared in constant time with the primary and the secondary key (MODELPLANE_PRIMARY_KEY /
  MODELPLANE_SECONDARY_KEY); without a valid key: 401.
- Token auth (MODELPLANE_AUTH_MODE=token): `Authorization: Bearer <token>`, a JWT signed (HS256)
  with either key, whose audience is the endpoint (MODELPLANE_ENDPOINT) and which has not expired
  (PyJWT checks signature, `exp`, `nbf`, `aud` and `iss`); keys themselves are refused. 401 otherwise,
  saying whether the token expired.
- `/`, `/healthz`, `/ready` and `/swagger.json` need no key (probes and API discovery).
- MODELPLANE_PATH_PREFIX (e.g. /api/v1/service/<name>) is stripped from request paths.
- A body over MODELPLANE_MAX_BODY_BYTES (default 10 MiB): 413, before the server reads it.
- A JSON body that is not UTF-8: 400 (the AML server answers it 500, as if it had failed). A JSON
  body that does not parse gets 400 from the AML server.
"""

from __future__ import annotations

import hmac
import io
import json
import os
from collections.abc import Callable, Iterable
from typing import Any

import jwt

from .ports import MAX_BODY_BYTES

Environ = dict[str, Any]
StartResponse = Callable[..., Any]
WsgiApp = Callable[[Environ, StartResponse], Iterable[bytes]]

OPEN_PATHS = frozenset({"/", "/healthz", "/ready", "/swagger.json"})
TOKEN_ALGORITHM = "HS256"
TOKEN_ISSUER = "modelplane"
KEY_REQUIRED = "a valid key is required: Authorization: Bearer <key>"
TOKEN_REQUIRED = "a valid token is required: Authorization: Bearer <token from `modelplane token`>"
TOKEN_EXPIRED = "the token has expired: get a new one (`modelplane token`)"


def _reply(
    start_response: StartResponse, status: str, message: str, headers: list[tuple[str, str]] | None = None
) -> list[bytes]:
    body = json.dumps({"error": message}).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body))), *(headers or [])])
    return [body]


class KeyGate:
    """Wraps a WSGI app; see the module docstring for the rules."""

    def __init__(
        self,
        app: WsgiApp,
        keys: Iterable[str],
        max_body_bytes: int = MAX_BODY_BYTES,
        path_prefix: str = "",
        token_audience: str | None = None,
    ) -> None:
        """`token_audience`: the endpoint's name when requests present tokens signed with the keys."""
        self.app = app
        self.keys = [key.encode() for key in keys if key]
        self.max_body_bytes = max_body_bytes
        self.path_prefix = path_prefix.rstrip("/")
        self.token_audience = token_audience

    @classmethod
    def from_environment(cls, app: WsgiApp) -> KeyGate:
        keys = [os.environ.get("MODELPLANE_PRIMARY_KEY", ""), os.environ.get("MODELPLANE_SECONDARY_KEY", "")]
        limit = int(os.environ.get("MODELPLANE_MAX_BODY_BYTES", MAX_BODY_BYTES))
        token_mode = os.environ.get("MODELPLANE_AUTH_MODE") == "token"
        audience = os.environ.get("MODELPLANE_ENDPOINT", "") if token_mode else None
        return cls(app, keys, limit, os.environ.get("MODELPLANE_PATH_PREFIX", ""), audience)

    def refusal(self, header: str) -> str | None:
        """Why a request with this Authorization header may not pass, or None when it may."""
        scheme, _, presented = header.partition(" ")
        if scheme.lower() != "bearer" or not presented.strip():
            return TOKEN_REQUIRED if self.token_audience is not None else KEY_REQUIRED
        if self.token_audience is not None:
            return self.token_refusal(presented.strip())
        candidate = presented.strip().encode()
        # Compare with every key, whatever the outcome, so timing says nothing about which matched.
        results = [hmac.compare_digest(candidate, key) for key in self.keys]
        return None if any(results) else KEY_REQUIRED

    def token_refusal(self, token: str) -> str | None:
        """None for a token signed with either key, for this endpoint, unexpired; else why not."""
        refusal = TOKEN_REQUIRED
        for key in self.keys:
            try:
                jwt.decode(
                    token,
                    key,
                    algorithms=[TOKEN_ALGORITHM],
                    audience=self.token_audience,
                    issuer=TOKEN_ISSUER,
                    options={"require": ["exp", "aud", "iss"]},
                )
                return None
            except jwt.ExpiredSignatureError:
                refusal = TOKEN_EXPIRED  # the signature was right: the token is ours, and old
            except jwt.InvalidTokenError:
                continue
        return refusal

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/") or "/"
        # Behind an Ingress, AML's route /api/v1/service/<name>/score reaches the container whole.
        if self.path_prefix and path.startswith(self.path_prefix):
            path = path[len(self.path_prefix) :] or "/"
            environ = {**environ, "PATH_INFO": path}
        if path in ("/ready", "/healthz"):
            # The AML server's own health route answers once init() has run in this worker.
            return self.app({**environ, "PATH_INFO": "/"}, start_response)
        if path in OPEN_PATHS or environ.get("REQUEST_METHOD") == "OPTIONS":
            return self.app(environ, start_response)
        if self.keys and (refusal := self.refusal(environ.get("HTTP_AUTHORIZATION", ""))) is not None:
            return _reply(
                start_response, "401 Unauthorized", refusal, [("WWW-Authenticate", 'Bearer realm="modelplane"')]
            )
        length_header = environ.get("CONTENT_LENGTH")
        if length_header:
            try:
                length = int(length_header)
            except ValueError:
                return _reply(start_response, "400 Bad Request", "invalid Content-Length")
            if length > self.max_body_bytes:
                return _reply(
                    start_response,
                    "413 Request Entity Too Large",
                    f"request body of {length} bytes exceeds the limit of {self.max_body_bytes}",
                )
        elif environ.get("REQUEST_METHOD") == "POST":
            # A chunked body has no length up front: read at most one byte past the limit.
            body = environ["wsgi.input"].read(self.max_body_bytes + 1)
            if len(body) > self.max_body_bytes:
                return _reply(
                    start_response,
                    "413 Request Entity Too Large",
                    f"request body exceeds the limit of {self.max_body_bytes} bytes",
                )
            environ = {**environ, "wsgi.input": io.BytesIO(body), "CONTENT_LENGTH": str(len(body))}
        if "json" in environ.get("CONTENT_TYPE", "") and (problem := _not_utf8(environ)) is not None:
            return _reply(start_response, "400 Bad Request", problem)
        # Malformed JSON is answered 400 by the AML server itself; parsing it here too would cost
        # every request a second parse (bench/: serving).
        return self.app(environ, start_response)


def _not_utf8(environ: Environ) -> str | None:
    """Why a JSON body cannot be read as UTF-8, or None; the body is put back for the server. (A
    decode is a small share of the parse the server does next.)"""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    environ["wsgi.input"] = io.BytesIO(body)
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as error:
        return f"request body is not UTF-8 JSON: byte {error.start} ({body[error.start]:#04x}) cannot start a character"
    return None
