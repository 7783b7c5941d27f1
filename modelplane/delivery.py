"""Continuous deployment: which stacks a change touches (`modelplane affected`), and a stack's model
reference moved to a newly registered model (`modelplane model set`), as .github/workflows/deploy.yml
uses them.

A stack is touched by a change to its declaration, to the AML v1 files it names, to any file or folder
its items name (models, source folders, entry scripts, environments, certificates), or to Modelplane
itself (its code decides what every stack deploys).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import yaml

from modelplane.constants import is_production
from modelplane.engine import PROJECT_ROOT
from modelplane.source import SpecError, load_document
from modelplane.spec import load_stack

# What Modelplane itself is made of: a change here touches every stack.
OWN_PATHS = ("components", "modelplane", "policies", "__main__.py", "Pulumi.yaml", "pyproject.toml")
T = TypeVar("T")
AML_FILE_KEYS = (("images", "inference_config"), ("endpoints", "deployment_config"), ("batch", "inference_config"))


def _leaves(value: Any, kind: type[T]) -> Iterator[T]:
    """Every value of type `kind` in nested dicts, lists and tuples."""
    if isinstance(value, kind):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _leaves(item, kind)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _leaves(item, kind)


def stack_inputs(file: Path) -> set[Path]:
    """Every file or folder that a deploy of this stack reads. A stack that does not load here (a
    cluster's kubeconfig that only exists while it runs) is read as text: every value that names an
    existing file or folder beside it counts."""
    found = {file.resolve()}
    raw = raw_stack(file)
    try:
        spec = load_stack(file)
    except SpecError:
        named = ((file.parent / value).resolve() for value in _leaves(raw, str) if "\n" not in value)
        # A value such as "." names the stacks' own folder, not an input.
        enclosing = {file.parent.resolve(), *file.parent.resolve().parents}
        return found | {path for path in named if path.exists() and path not in enclosing}
    found |= {path.resolve() for path in _leaves(spec.model_dump(mode="python"), Path)}
    for section, key in AML_FILE_KEYS:
        for item in (raw.get(section) or {}).values():
            if isinstance(item, dict) and isinstance(item.get(key), str):
                found.add((file.parent / item[key]).resolve())
    return found


def touches(inputs: Iterable[Path], changed: Path) -> bool:
    return any(changed == path or path in changed.parents for path in inputs)


def affected(stack_files: Iterable[Path], changed: Iterable[Path], root: Path = PROJECT_ROOT) -> list[str]:
    """The stacks (by name) that the changed files touch, in the order given."""
    changed = [path.resolve() for path in changed]
    own = [(root / name).resolve() for name in OWN_PATHS]
    if any(touches(own, path) for path in changed):
        return [file.stem for file in stack_files]
    return [file.stem for file in stack_files if any(touches(stack_inputs(file), path) for path in changed)]


def changed_since(ref: str, root: Path = PROJECT_ROOT) -> list[Path]:
    """The files that differ between `ref` and the working tree's HEAD (from their merge base)."""
    result = subprocess.run(
        ["git", "diff", "--name-only", f"{ref}...HEAD"], cwd=root, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise ValueError(f"git diff {ref}...HEAD failed: {result.stderr.strip()}")
    return [root / line for line in result.stdout.splitlines() if line.strip()]


def raw_stack(file: Path) -> dict[str, Any]:
    """A stack file's data as written, read without validation ({} when it does not parse: a deploy of it
    reports that)."""
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except yaml.YAMLError:
        return {}
    return data if isinstance(data, dict) else {}


def stack_is_production(file: Path) -> bool:
    """Whether a stack is tagged as production (the policy pack's production rules apply to it)."""
    tags = raw_stack(file).get("tags")
    return isinstance(tags, dict) and is_production(tags.get("environment"))


def render(stack_files: list[Path], names: list[str], output_format: str) -> str:
    """Stack names one per line; or, for a workflow's matrix, JSON: each stack and whether it is production."""
    if output_format != "json":
        return "".join(f"{name}\n" for name in names)
    files = {file.stem: file for file in stack_files}
    return json.dumps([{"stack": name, "production": stack_is_production(files[name])} for name in names]) + "\n"


def set_model_path(file: Path, model: str, path: str) -> str:
    """Point `models.<model>.path` of a stack file at `path`, changing that value's text only (comments
    and layout stay); the value as it was written."""
    doc = load_document(file)
    models = doc.data.get("models") if isinstance(doc.data, dict) else None
    if not isinstance(models, dict) or model not in models:
        declared = ", ".join(models or {}) if isinstance(models, dict) else ""
        raise SpecError([doc.problem(("models",), f"no model '{model}' to update; declared: {declared or 'none'}")])
    text = file.read_text(encoding="utf-8")
    node = _value_node(yaml.compose(text), ("models", model, "path"))
    if node is None:
        raise SpecError([doc.problem(("models", model), "has no `path` to update")])
    start, end = node.start_mark.index, node.end_mark.index
    file.write_text(text[:start] + json.dumps(path) + text[end:], encoding="utf-8")
    return text[start:end]


def _value_node(node: yaml.Node | None, keys: tuple[str, ...]) -> yaml.Node | None:
    """The value node at `keys` in a composed YAML document."""
    for key in keys:
        if not isinstance(node, yaml.MappingNode):
            return None
        node = next((value for name, value in node.value if getattr(name, "value", None) == key), None)
    return node
