"""`load_stack(path)`: a stack file read, AML v1 files merged in, checked and validated into a StackSpec
with its warnings, or one SpecError listing every problem as `FILE:LINE:COL: path.to.field: what is wrong`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from modelplane.source import Document, SpecError, load_document
from modelplane.spec.aml_v1 import Translate, include, translate_deployment_config, translate_inference_config
from modelplane.spec.notices import check_notices
from modelplane.spec.positions import Findings, Origins, display, pydantic_problems
from modelplane.spec.references import SECTIONS, check_stack, resolve_stack_paths
from modelplane.spec.schema import StackSpec

# Item keys that name an AML v1 file, by section, with the translation of that file.
AML_FILES: tuple[tuple[str, str, Translate], ...] = (
    ("images", "inference_config", translate_inference_config),
    ("endpoints", "deployment_config", translate_deployment_config),
)
MAPPING_SECTIONS = (*SECTIONS, "azure", "tags")
EMPTY_STACK = (
    "declares nothing: deploying it would remove everything the stack has deployed"
    " (a file cut short by a bad merge?); `modelplane destroy` is the command that removes a stack"
)


def load_stack(path: Path | str, name: str | None = None) -> StackSpec:
    """Parse, validate and normalise a stack declaration; raise SpecError with every problem."""
    file = Path(path)
    doc = load_document(file, display=display(file))
    origins = Origins(doc)
    findings = Findings()
    data = _sections(doc, findings)
    stack_dir = file.resolve().parent
    data = _merged(data, stack_dir, origins, findings)
    findings.problems.extend(check_stack(data, origins, stack_dir))
    resolve_stack_paths(data, stack_dir)
    findings.extend(check_notices(data, origins))
    data.update(source=file.resolve(), name=name or file.stem, warnings=tuple(sorted(set(findings.warnings))))
    try:
        spec = StackSpec.model_validate(data)
    except ValidationError as error:
        findings.problems.extend(pydantic_problems(error, origins, data))
    if findings.problems:
        raise SpecError(findings.problems)
    return spec


def _sections(doc: Document, findings: Findings) -> dict[str, Any]:
    """The stack's top level: a mapping of sections, each section a mapping (an empty one may be
    written as nothing); a section of another shape is reported and left out."""
    if not isinstance(doc.data, dict):
        raise SpecError([doc.problem((), "a stack declaration must be a mapping of sections")])
    data = dict(doc.data)
    for section in MAPPING_SECTIONS:
        value = data.get(section, {})
        if value is None and section != "azure":
            data[section] = {}
        elif value is not None and not isinstance(value, dict):
            findings.problems.append(doc.problem((section,), _shape_message(section, value)))
            del data[section]
    if not any(data.get(section) for section in (*SECTIONS, "azure")) and not findings.problems:
        raise SpecError([doc.problem((), EMPTY_STACK)])
    return data


def _shape_message(section: str, value: Any) -> str:
    kind = "a list" if isinstance(value, list) else f"'{value}'"
    if section in SECTIONS:
        return f"must be a mapping of names to {section} (`name:` then its fields), not {kind}"
    return f"must be a mapping of settings, not {kind}"


def batch_images(data: dict[str, Any], origins: Origins, findings: Findings) -> None:
    """A batch job that names an AML v1 `inference_config` (and its `models`) instead of an `image`
    gets an image of its own, `<job>-batch`, as AML's ParallelRunConfig took an environment and script."""
    jobs = data.get("batch")
    if not isinstance(jobs, dict):
        return
    for name, job in jobs.items():
        if not isinstance(job, dict) or "inference_config" not in job:
            continue
        if "image" in job:
            message = "give `image` or `inference_config` (with `models`), not both"
            findings.problems.append(origins.problem(("batch", name, "inference_config"), message))
            continue
        image = f"{name}-batch"
        images = data.setdefault("images", {})
        if image in images:
            message = f"its image would be named '{image}', which `images:` already declares"
            findings.problems.append(origins.problem(("batch", name, "inference_config"), message))
            continue
        images[image] = {"inference_config": job.pop("inference_config"), "models": job.pop("models", [])}
        job["image"] = image


def _merged(data: dict[str, Any], stack_dir: Path, origins: Origins, findings: Findings) -> dict[str, Any]:
    """The stack's data with the AML files its items name merged in, and endpoints' compute_type set."""
    batch_images(data, origins, findings)
    for section, key, translate in AML_FILES:
        found = data.get(section)
        if isinstance(found, dict):
            data[section] = {
                item_name: include(item, key, (section, item_name), stack_dir, origins, findings, translate)
                if isinstance(item, dict) and key in item
                else item
                for item_name, item in found.items()
            }
    for item in (data.get("endpoints") or {}).values():
        if isinstance(item, dict):
            item.setdefault("compute_type", "local")
    return data
