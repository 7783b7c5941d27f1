"""`load_stack(path)`: a stack file read, AML v1 files merged in, checked and validated into a StackSpec,
or one SpecError listing every problem as `FILE:LINE:COL: path.to.field: what is wrong`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from modelplane.source import Problem, SpecError, load_document
from modelplane.spec.aml_v1 import Translate, include, translate_deployment_config, translate_inference_config
from modelplane.spec.positions import Origins, display, pydantic_problems
from modelplane.spec.references import check_stack, resolve_stack_paths
from modelplane.spec.schema import StackSpec

# Item keys that name an AML v1 file, by section, with the translation of that file.
AML_FILES: tuple[tuple[str, str, Translate], ...] = (
    ("images", "inference_config", translate_inference_config),
    ("endpoints", "deployment_config", translate_deployment_config),
)


def load_stack(path: Path | str, name: str | None = None) -> StackSpec:
    """Parse, validate and normalise a stack declaration; raise SpecError with every problem."""
    file = Path(path)
    doc = load_document(file, display=display(file))
    origins = Origins(doc)
    if not isinstance(doc.data, dict):
        raise SpecError([doc.problem((), "a stack declaration must be a mapping of sections")])
    problems: list[Problem] = []
    stack_dir = file.resolve().parent
    data = _merged(dict(doc.data), stack_dir, origins, problems)
    problems.extend(check_stack(data, origins, stack_dir))
    resolve_stack_paths(data, stack_dir)
    data["source"] = file.resolve()
    data["name"] = name or file.stem
    try:
        spec = StackSpec.model_validate(data)
    except ValidationError as error:
        problems.extend(pydantic_problems(error, origins, data))
    if problems:
        raise SpecError(problems)
    return spec


def _merged(data: dict[str, Any], stack_dir: Path, origins: Origins, problems: list[Problem]) -> dict[str, Any]:
    """The stack's data with the AML files its items name merged in, and endpoints' compute_type set."""
    for section, key, translate in AML_FILES:
        found = data.get(section)
        if isinstance(found, dict):
            data[section] = {
                item_name: include(item, key, (section, item_name), stack_dir, origins, problems, translate)
                if isinstance(item, dict) and key in item
                else item
                for item_name, item in found.items()
            }
    for item in (data.get("endpoints") or {}).values() if isinstance(data.get("endpoints"), dict) else ():
        if isinstance(item, dict):
            item.setdefault("compute_type", "local")
    return data
