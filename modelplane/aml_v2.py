"""An image (AML v1's InferenceConfig) as Azure ML v2 assets: an environment (base image and conda
file), code (the source folder and its scoring script) and the model it serves.

One place for how Modelplane reads an inference config the v2 way: the online endpoint component
registers these assets, and `modelplane migrate` writes them as `az ml` YAML.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from modelplane.base_images import DEFAULT_BASE
from modelplane.content import content_digest, text_digest, version_of
from modelplane.spec import EnvironmentSpec, ImageSpec

# The base image of AML v2's curated inference environments (Ubuntu 22.04, OpenMPI 4.1).
V2_BASE_IMAGE = "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04:latest"
# AML v2 runs a deployment's scoring script with this server: a custom environment must install it.
INFERENCE_SERVER = "azureml-inference-server-http"
# v1's meta-package (azureml-core and the server): v2 environments take the server alone.
V1_DEFAULTS = "azureml-defaults"


@dataclass(frozen=True)
class V2Environment:
    """An AML v2 environment: a base image and, unless the image holds everything, a conda file."""

    image: str
    conda: dict[str, Any] | None
    variables: dict[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    """What was changed on the way (e.g. azureml-defaults replaced by the inference server)."""

    @property
    def conda_yaml(self) -> str | None:
        return yaml.safe_dump(self.conda, sort_keys=False) if self.conda is not None else None

    @property
    def version(self) -> str:
        """A version that changes with the content: AML environment versions are immutable."""
        text = json.dumps([self.image, self.conda, sorted(self.variables.items())], sort_keys=True)
        return text_digest(text)[:12]


@dataclass(frozen=True)
class V2Code:
    """The folder uploaded as a v2 code asset, and the scoring script inside it."""

    folder: Path
    scoring_script: str

    @property
    def version(self) -> str:
        return version_of(content_digest(self.folder))


def code_of(image: ImageSpec) -> V2Code:
    """The source folder (the entry script's own when none is given) and the script's path in it."""
    script = image.entry_script
    if image.source_directory is None:
        return V2Code(folder=script.parent, scoring_script=script.name)
    folder = image.source_directory
    full = script if script.is_absolute() else folder / script
    return V2Code(folder=folder, scoring_script=full.relative_to(folder).as_posix())


def environment_of(image: ImageSpec, name: str) -> V2Environment:
    """The v2 environment of an inference config: its base image (AML v2's default when it names none)
    and its conda file, inline conda dependencies or pip requirements as one conda file that
    installs the inference server."""
    environment = image.environment or EnvironmentSpec()
    base = image.base or V2_BASE_IMAGE
    variables = dict(environment.environment_variables)
    if environment.user_managed_dependencies:
        return V2Environment(base, None, variables)
    conda = _declared_conda(image, environment, name)
    conda, notes = with_inference_server(conda)
    return V2Environment(base, conda, variables, tuple(notes))


def _declared_conda(image: ImageSpec, environment: EnvironmentSpec, name: str) -> dict[str, Any]:
    if image.conda_file is not None:
        loaded = yaml.safe_load(image.conda_file.read_text(encoding="utf-8"))
        return dict(loaded) if isinstance(loaded, dict) else {}
    if environment.conda_dependencies is not None:
        return dict(environment.conda_dependencies)
    requirements = _requirement_lines(image.pip_requirements) if image.pip_requirements is not None else []
    python = ".".join(DEFAULT_BASE.python.split(".")[:2])
    return {
        "name": name,
        "channels": ["conda-forge"],
        "dependencies": [f"python={python}", "pip", {"pip": requirements}],
    }


def _requirement_lines(path: Path) -> list[str]:
    lines = (line.split("#", 1)[0].strip() for line in path.read_text(encoding="utf-8").splitlines())
    return [line for line in lines if line]


def with_inference_server(conda: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The conda environment with AML's inference server among its pip packages, replacing v1's
    azureml-defaults; the changes made, as notes."""
    dependencies = list(conda.get("dependencies") or [])
    pip_index = next((i for i, d in enumerate(dependencies) if isinstance(d, dict) and "pip" in d), None)
    if pip_index is None:
        dependencies += [] if "pip" in dependencies else ["pip"]
        dependencies.append({"pip": []})
        pip_index = len(dependencies) - 1
    packages = [str(p) for p in dependencies[pip_index].get("pip") or []]
    notes = []
    kept = [p for p in packages if _package_name(p) != V1_DEFAULTS]
    if len(kept) != len(packages):
        notes.append(f"{V1_DEFAULTS} (AML v1) replaced by {INFERENCE_SERVER}")
    if not any(_package_name(p) == INFERENCE_SERVER for p in kept):
        kept.append(INFERENCE_SERVER)
        if not notes:
            notes.append(f"{INFERENCE_SERVER} added: AML v2 serves the scoring script with it")
    dependencies[pip_index] = {"pip": kept}
    return {**conda, "dependencies": dependencies}, notes


def _package_name(requirement: str) -> str:
    for separator in ("[", "=", "<", ">", "!", "~", ";", " "):
        requirement = requirement.split(separator, 1)[0]
    return requirement.strip().lower().replace("_", "-")


def iso_duration(milliseconds: int) -> str:
    """Milliseconds as the ISO 8601 duration AML v2's REST API takes (`PT5S`, `PT0.5S`)."""
    seconds = milliseconds / 1000
    text = f"{seconds:.3f}".rstrip("0").rstrip(".")
    return f"PT{text}S"
