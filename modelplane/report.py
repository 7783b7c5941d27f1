"""What plans and drift reports share: the secret marker, masking, flattening, path prefixes,
value shortening, the component a resource belongs to, and Markdown within a PR comment's size.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

SECRET = "[secret]"
"""How every secret value is printed, in every format."""
MARKDOWN_LIMIT = 64_000
"""GitHub refuses comments over 65,536 characters; the rest is headroom for a workflow's own text."""
SHORT_VALUE = 120
# Component type (the last part of modelplane:index:<Type>) → what a user declared it as.
COMPONENT_KINDS = {
    "LocalEndpoint": "endpoint",
    "AciEndpoint": "endpoint",
    "AksEndpoint": "endpoint",
    "OnlineEndpoint": "endpoint",
    "BatchEndpoint": "batch job",
    "RegisteredModel": "model",
    "ScoringImage": "image",
    "AksCluster": "cluster",
    "EdgeModule": "edge module",
    "FpgaService": "fpga service",
    "Workspace": "workspace",
}
COMPONENT_PREFIX = "modelplane:index:"
# Prefixes of the component names the program gives (`endpoint-web`), by kind.
NAME_PREFIXES = {"endpoint", "model", "image", "cluster", "edge", "fpga", "batch"}


def mask(value: Any, is_secret: Callable[[Any], bool]) -> Any:
    """`value` with every part that `is_secret` recognises replaced by SECRET."""
    if is_secret(value):
        return SECRET
    if isinstance(value, Mapping):
        return {k: mask(v, is_secret) for k, v in value.items()}
    if isinstance(value, list):
        return [mask(v, is_secret) for v in value]
    return value


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": [1]}} → {"a.b[0]": 1}."""
    if isinstance(value, Mapping) and value:
        out: dict[str, Any] = {}
        for key, inner in value.items():
            out.update(flatten(inner, f"{prefix}.{key}" if prefix else str(key)))
        return out
    if isinstance(value, list) and value:
        out = {}
        for index, inner in enumerate(value):
            out.update(flatten(inner, f"{prefix}[{index}]"))
        return out
    return {prefix: value}


def under(path: str, prefix: str) -> bool:
    """Whether flattened `path` is `prefix` or inside it (`a.b`, `a.b.c` and `a.b[0]` are under `a.b`)."""
    return path == prefix or path.startswith((f"{prefix}.", f"{prefix}["))


def under_any(path: str, prefixes: Iterable[str]) -> bool:
    return any(under(path, prefix) for prefix in prefixes)


def short_value(value: Any) -> str:
    text = json.dumps(value, sort_keys=True) if not isinstance(value, str) else value
    return text if len(text) <= SHORT_VALUE else text[: SHORT_VALUE - 3] + "..."


def table_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def component_label(parent_urn: str | None) -> str:
    """ "endpoint 'web'" for a resource under the LocalEndpoint component endpoint-web."""
    if not parent_urn or "::" not in parent_urn:
        return "stack"
    type_token, name = parent_urn.split("::")[-2:]
    kind = COMPONENT_KINDS.get(type_token.rsplit(":", 1)[-1].rsplit("$", 1)[-1], "component")
    prefix, _, declared = name.partition("-")
    return f"{kind} '{declared if declared and prefix in NAME_PREFIXES else name}'"


def is_component(type_token: str) -> bool:
    return type_token.startswith(COMPONENT_PREFIX)


def within_limit(head: str, parts: Sequence[str], limit: int, what: str) -> str:
    """`head` and as many of `parts` as fit in `limit` characters, then a line saying how many were left out."""
    budget = limit - len(head) - 200
    kept: list[str] = []
    used = 0
    for index, part in enumerate(parts):
        if used + len(part) > budget:
            kept.append(f"\n_… {len(parts) - index} more {what} not shown (over {limit:,} characters)._\n")
            break
        kept.append(part)
        used += len(part)
    return head + "".join(kept)
