"""Read YAML and JSON declarations with the line and column of every key and value.

Validation errors must name the file, the line and the field; PyYAML's composer keeps the marks
that plain `yaml.safe_load` throws away, so the tree is composed first and converted here.
AML v1 files (inferenceconfig.json, deploymentconfig.json) are read as Azure ML's loaders read
them: as YAML first (so a trailing comma loads), then as JSON (so tab indentation loads).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

PathKey = tuple[str | int, ...]


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with a declaration, printed as `FILE:LINE:COL: field.path: message`."""

    file: str
    line: int
    col: int
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.path}: " if self.path else ""
        return f"{self.file}:{self.line}:{self.col}: {where}{self.message}"


class SpecError(Exception):
    """A declaration is invalid; `problems` lists every problem found."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(set(problems))
        super().__init__("\n".join(str(p) for p in self.problems))


@dataclass
class Document:
    """A parsed file: plain data plus the 1-based (line, col) of every path in it."""

    file: Path
    data: Any
    positions: dict[PathKey, tuple[int, int]] = field(default_factory=dict)

    def position(self, path: PathKey) -> tuple[int, int]:
        """The position of `path`, or of its nearest ancestor that has one (a missing key)."""
        probe = tuple(path)
        while probe:
            if probe in self.positions:
                return self.positions[probe]
            probe = probe[:-1]
        return self.positions.get((), (1, 1))

    def problem(self, path: PathKey, message: str, label: str | None = None) -> Problem:
        line, col = self.position(path)
        return Problem(str(self.file), line, col, label if label is not None else dotted(path), message)


def dotted(path: PathKey) -> str:
    """`("endpoints", "web", "ports", 0)` → `endpoints.web.ports[0]`."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def _mark(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _convert(node: yaml.Node, path: PathKey, doc: Document, problems: list[Problem]) -> Any:
    if isinstance(node, yaml.MappingNode):
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                line, col = _mark(key_node)
                problems.append(Problem(str(doc.file), line, col, dotted(path), "keys must be plain scalars"))
                continue
            # Scalar keys become strings (a port 5001 → "5001"); the models convert them back.
            key = str(key_node.value)
            child = (*path, key)
            if key in result:
                line, col = _mark(key_node)
                problems.append(
                    Problem(
                        str(doc.file),
                        line,
                        col,
                        dotted(child),
                        f"duplicate key '{key}' (first at line {doc.positions[child][0]}); names must be unique",
                    )
                )
                continue
            doc.positions[child] = _mark(key_node)
            result[key] = _convert(value_node, child, doc, problems)
        return result
    if isinstance(node, yaml.SequenceNode):
        items = []
        for index, item in enumerate(node.value):
            doc.positions[(*path, index)] = _mark(item)
            items.append(_convert(item, (*path, index), doc, problems))
        return items
    return _scalar(node)


def _scalar(node: yaml.Node) -> Any:
    """A scalar typed as PyYAML's safe resolver says (int, float, bool, null, str)."""
    return yaml.constructor.SafeConstructor().construct_object(node, deep=True)


def _read(path: Path, shown: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError([Problem(shown, 1, 1, "", "file not found")]) from None
    except (OSError, UnicodeDecodeError) as error:
        raise SpecError([Problem(shown, 1, 1, "", f"cannot read the file: {error}")]) from None


def _compose(text: str, shown: str) -> yaml.Node | None:
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        reason = error.problem or error.context or "syntax error"
        raise SpecError([Problem(shown, line, col, "", f"invalid YAML: {reason}")]) from None


def _compose_json(text: str, shown: str) -> yaml.Node | None:
    """JSON that YAML refused (tab indentation): checked by `json`, then composed with its tabs as
    spaces, which keeps every line and column."""
    try:
        json.loads(text)
    except json.JSONDecodeError as error:
        raise SpecError(
            [Problem(shown, error.lineno, error.colno, "", f"neither YAML nor JSON: {error.msg}")]
        ) from None
    return _compose(text.replace("\t", " "), shown)


def load_document(path: Path, display: str | None = None, aml: bool = False) -> Document:
    """Parse a YAML file, or with `aml` a file as Azure ML reads it (YAML, else JSON); raise SpecError
    with positions for syntax errors and duplicates."""
    shown = display or str(path)
    text = _read(path, shown)
    doc = Document(Path(shown), None, {(): (1, 1)})
    try:
        root = _compose(text, shown)
    except SpecError:
        if not aml:
            raise
        root = _compose_json(text, shown)
    problems: list[Problem] = []
    doc.data = _convert(root, (), doc, problems) if root is not None else {}
    if problems:
        raise SpecError(problems)
    return doc
