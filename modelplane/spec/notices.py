"""Warnings about a stack: settings Azure ML has that Modelplane accepts but cannot honour, each named
with its file, line and the reason, so that nothing a user wrote is dropped in silence.

- A field marked `NoEffect` in the schema, set to anything but its default.
- An environment given only by name (a registered one, which is not read here).
- A conda environment's `python` pin that no base image's Python meets, and its channels (the
  packages come from PyPI). A conda spec with no pip equivalent is a problem, not a warning.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from modelplane.base_images import DEFAULT_BASE, available
from modelplane.conda import CondaSpecError, base_for, pip_requirement, split_match_spec
from modelplane.source import PathKey, Problem, SpecError, load_document
from modelplane.spec.positions import Findings, Origins, display, model_of
from modelplane.spec.references import SECTIONS, azure_built_images, items
from modelplane.spec.schema import V2_UNMAPPED_IMAGE_SETTINGS, StackSpec, no_effect_fields

NO_APP_INSIGHTS = (
    "has no effect here: a stack without `target: azure` has no workspace Application Insights to send to;"
    " the scoring server logs to the container (`modelplane logs`) and serves Prometheus metrics"
)
CHANNELS_UNUSED = "conda channels are not used: the image installs packages from PyPI with pip"
ProblemAt = Callable[[PathKey, str], Problem]


def check_notices(data: dict[str, Any], origins: Origins) -> Findings:
    """Every warning about the merged, path-resolved stack data (and the problems found on the way)."""
    findings = Findings()
    for section in SECTIONS:
        annotation = StackSpec.model_fields[section].annotation
        for name, item in items(data, section).items():
            model = model_of(annotation, item)
            if isinstance(model, type) and issubclass(model, BaseModel):
                _no_effect(model, item, (section, name), origins, findings)
    if data.get("target") != "azure":
        for name, endpoint in items(data, "endpoints").items():
            if endpoint.get("enable_app_insights"):
                found_at = origins.problem(("endpoints", name, "enable_app_insights"), NO_APP_INSIGHTS)
                findings.warnings.append(found_at)
    for name, job in items(data, "batch").items():
        _batch(job, ("batch", name), data.get("target") == "azure", origins, findings)
    built_by_azure = azure_built_images(data)
    for name, image in items(data, "images").items():
        if name in built_by_azure:
            _online_image(image, ("images", name), origins, findings)
        else:
            _environment(image, ("images", name), origins, findings)
    return findings


# Batch settings that only one target reads, with why the other ignores them.
LOCAL_ONLY_BATCH = {
    "cpu_cores": "on Azure the cluster's vm_size sizes the job",
    "memory_gb": "on Azure the cluster's vm_size sizes the job",
}
AZURE_ONLY_BATCH = {
    "compute": "the job runs in a container on this machine (`modelplane batch run`), not on an AmlCompute cluster",
    "instance_count": "the job runs on this machine, in one container",
}


def _batch(job: dict[str, Any], where: PathKey, on_azure: bool, origins: Origins, found: Findings) -> None:
    ignored = LOCAL_ONLY_BATCH if on_azure else AZURE_ONLY_BATCH
    for key, reason in ignored.items():
        if job.get(key) not in (None, 1) or (key == "compute" and key in job):
            found.warnings.append(origins.problem((*where, key), f"has no effect here: {reason}"))
    if on_azure and isinstance(job.get("mini_batch_size"), str):
        message = "AML v2 batch deployments count files per mini-batch: a size has no effect on Azure (give a count)"
        found.warnings.append(origins.problem((*where, "mini_batch_size"), message))


def _online_image(image: dict[str, Any], where: PathKey, origins: Origins, found: Findings) -> None:
    """What a v2 deployment cannot take from an inference config: each setting by name, and all but one model."""
    for key, advice in V2_UNMAPPED_IMAGE_SETTINGS.items():
        if image.get(key) not in (None, False):
            found.warnings.append(origins.problem((*where, key), f"has no effect on AML v2 deployments: {advice}"))
    models = image.get("models")
    if isinstance(models, list) and len(models) > 1:
        message = (
            f"an AML v2 deployment serves one model: it gets '{models[0]}'; the others"
            f" ({', '.join(map(str, models[1:]))}) are not mounted (ship them with the code, or deploy them apart)"
        )
        found.warnings.append(origins.problem((*where, "models"), message))


def _no_effect(model: type[BaseModel], item: dict[str, Any], where: PathKey, origins: Origins, found: Findings) -> None:
    """NoEffect fields set to something else than their default, nested models included."""
    for field_name, marker in no_effect_fields(model).items():
        if field_name in item and item[field_name] != model.model_fields[field_name].default:
            found.warnings.append(origins.problem((*where, field_name), f"has no effect here: {marker.reason}"))
    for field_name, info in model.model_fields.items():
        value = item.get(field_name)
        if not isinstance(value, dict) or field_name in no_effect_fields(model):
            continue
        inner = model_of(info.annotation, value)
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            _no_effect(inner, value, (*where, field_name), origins, found)


def _environment(image: dict[str, Any], where: PathKey, origins: Origins, found: Findings) -> None:
    environment = image.get("environment")
    if isinstance(environment, dict) and _registered_only(environment):
        message = (
            f"the registered environment '{environment.get('name')}' is not read here: the image gets"
            f" Modelplane's default environment (Python {DEFAULT_BASE.python}, the AML inference server); give its"
            " python.condaDependencies inline to install its packages"
        )
        found.warnings.append(origins.problem((*where, "environment"), message))
    if image.get("base_image") or (isinstance(environment, dict) and _custom_base(environment)):
        return  # The Python is the custom base image's own.
    conda_file = image.get("conda_file")
    if isinstance(conda_file, str):
        _conda_file(Path(conda_file), found)
    elif isinstance(environment, dict) and isinstance(environment.get("conda_dependencies"), dict):
        inline = (*where, "environment", "conda_dependencies")
        _conda(environment["conda_dependencies"], lambda path, text: origins.problem((*inline, *path), text), found)


def _registered_only(environment: dict[str, Any]) -> bool:
    given = {key for key, value in environment.items() if value not in (None, {}, False)}
    return bool(given) and given <= {"name", "version"}


def _custom_base(environment: dict[str, Any]) -> bool:
    return bool(environment.get("base_image") or environment.get("base_dockerfile"))


def _conda_file(file: Path, found: Findings) -> None:
    if not file.is_file():
        return  # Reported with the stack's files.
    try:
        doc = load_document(file, display=display(file))
    except SpecError as error:
        found.problems.extend(error.problems)
        return
    _conda(doc.data, doc.problem, found)


def _conda(data: Any, problem_at: ProblemAt, found: Findings) -> None:
    """The pin, the channels and the specs of one conda environment."""
    if not isinstance(data, dict):
        return
    if data.get("channels"):
        found.warnings.append(problem_at(("channels",), CHANNELS_UNUSED))
    for index, dependency in enumerate(data.get("dependencies") or []):
        if isinstance(dependency, dict):
            continue
        where = ("dependencies", index)
        try:
            name, version = split_match_spec(str(dependency))
            pip_requirement(name, version)
        except CondaSpecError as error:
            found.problems.append(problem_at(where, str(error)))
            continue
        if name == "python" and version and base_for(str(dependency)) is None:
            message = (
                f"{dependency} is pinned, but no base image here has such a Python (available: {available()},"
                f" Debian's): the image runs Python {DEFAULT_BASE.python}"
            )
            found.warnings.append(problem_at(where, message))
