"""Problems at their source: every pydantic error mapped to the file, line and column it came from
(the stack file, or the AML v1 JSON file a value was translated from), worded for a person.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from modelplane.source import Document, PathKey, Problem, dotted
from modelplane.spec.schema import StackSpec


@dataclass
class Findings:
    """What reading a declaration found: problems (nothing is deployed) and warnings (settings that
    have no effect here, each saying why)."""

    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)

    def extend(self, other: Findings) -> None:
        self.problems.extend(other.problems)
        self.warnings.extend(other.warnings)


# Fields whose value is a secret: problems with them do not repeat the value.
SECRET_FIELDS = frozenset({"primary_key", "secondary_key", "password"})


class Origins:
    """Where each value of the merged stack data came from, for error positions."""

    def __init__(self, stack: Document) -> None:
        self.stack = stack
        # A path prefix in the merged data → (document, path in that document).
        self.redirects: dict[PathKey, tuple[Document, dict[PathKey, PathKey]]] = {}
        # Items whose AML file could not be read: their problem is reported once, there.
        self.broken: set[PathKey] = set()

    def is_broken(self, path: PathKey) -> bool:
        return any(path[: len(prefix)] == prefix for prefix in self.broken)

    def problem(self, path: PathKey, message: str) -> Problem:
        for prefix, (doc, mapping) in self.redirects.items():
            if path[: len(prefix)] == prefix:
                rest = path[len(prefix) :]
                probe = rest
                while probe and probe not in mapping:
                    probe = probe[:-1]
                if probe:
                    source_path = mapping[probe]
                    return doc.problem(source_path, message, label=dotted(source_path))
        return self.stack.problem(path, message)


def display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path.resolve())


def pydantic_problems(error: ValidationError, origins: Origins, data: dict[str, Any]) -> list[Problem]:
    problems = []
    for item in error.errors():
        loc: list[str | int] = []
        for part in item["loc"]:
            # Drop the discriminator tag pydantic puts in union locations.
            if part in ("local", "aci", "aks") and loc and loc[0] == "endpoints" and len(loc) == 2:
                continue
            loc.append(part)
        path = tuple(loc)
        if origins.is_broken(path):
            continue
        kind = item["type"]
        if kind == "extra_forbidden":
            message = f"unknown field '{path[-1]}'; allowed: {allowed_fields(path, data)}"
        elif kind == "missing":
            message = "required field is missing"
        elif kind == "union_tag_invalid" or kind == "union_tag_not_found":
            message = "compute_type must be one of: local, aci, aks"
            path = (*path, "compute_type") if kind == "union_tag_invalid" else path
        elif kind == "value_error":
            message = str(item["msg"]).removeprefix("Value error, ")
        elif path and path[-1] in SECRET_FIELDS:
            message = str(item["msg"])  # Never echo what was given for a secret.
        else:
            message = f"{item['msg']} (got {item.get('input')!r})"
        problems.append(origins.problem(path, message))
    return problems


def allowed_fields(path: PathKey, data: dict[str, Any]) -> str:
    """The field names a model at `path` accepts, for 'unknown field' messages."""
    model: Any = StackSpec
    node: Any = data
    for part in path[:-1]:
        if isinstance(node, dict):
            node = node.get(part)
        fields = getattr(model, "model_fields", None)
        if fields is None:
            continue
        if part in fields:
            annotation = fields[part].annotation
            model = model_of(annotation, node)
    names = sorted(n for n in getattr(model, "model_fields", {}) if n not in ("source", "name"))
    return ", ".join(names)


def model_of(annotation: Any, node: Any) -> Any:
    """The model class inside an annotation (dict values, optionals, the endpoint union)."""
    args = getattr(annotation, "__args__", ())
    metadata = getattr(annotation, "__metadata__", None)
    if metadata is not None:
        return model_of(args[0] if args else annotation.__origin__, node)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    candidates = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
    if len(candidates) > 1 and isinstance(node, dict):
        tag = node.get("compute_type", "local")
        for candidate in candidates:
            if candidate.model_fields.get("compute_type") and tag in str(
                candidate.model_fields["compute_type"].annotation
            ):
                return candidate
    if candidates:
        return candidates[0]
    for arg in args:
        inner = model_of(arg, node)
        if inner is not None and inner is not arg:
            return inner
    return annotation
