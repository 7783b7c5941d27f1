"""The scoring image: a deterministic Dockerfile and build context rendered from an inference config.

Layer order puts what changes least first, so that a new model version rebuilds only the last
layer and a new entry script only the last two:

    base image → virtualenv → environment (conda_file/pip_requirements) → scoring runtime
    → extra_docker_file_steps → source_directory → model files

A conda environment is installed with pip (`modelplane.conda`). Models sit where AML puts them,
`azureml-models/<name>/<version>/`, a folder model under its own folder name there.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelplane.conda import conda_environment
from modelplane.content import content_digest, files_under
from modelplane.runtime.ports import METRICS_PORT

RUNTIME_REQUIREMENTS = (
    "azureml-inference-server-http==1.5.1",
    # The gate verifies token auth's JWTs; the metrics port is Prometheus's client.
    "PyJWT==2.15.1",
    "prometheus-client==0.26.0",
)
APP_ROOT = "/var/azureml-app"
RUNTIME_SOURCE = Path(__file__).parent / "runtime"


@dataclass(frozen=True)
class ModelFiles:
    """One registered model as it goes into the image."""

    name: str
    version: str
    path: Path


@dataclass(frozen=True)
class ImageRecipe:
    """Everything that decides the image's bytes."""

    entry_script: Path
    source_directory: Path | None
    conda_file: Path | None
    pip_requirements: Path | None
    extra_docker_file_steps: Path | None
    base_image: str
    models: tuple[ModelFiles, ...]
    port: int = 5001
    conda_dependencies: Mapping[str, Any] | None = None
    """An environment's inline conda environment (instead of conda_file)."""
    user_managed_dependencies: bool = False
    """Install none of the user's packages: the base image holds them."""
    environment_variables: tuple[tuple[str, str], ...] = ()
    """Set in the image, as AML sets an environment's variables."""
    base_dockerfile: str | None = None
    """Dockerfile text that makes the base (instead of FROM base_image)."""


def requirements_of(recipe: ImageRecipe) -> list[str]:
    if recipe.user_managed_dependencies:
        return []
    if recipe.pip_requirements is not None:
        return [
            line.strip()
            for line in recipe.pip_requirements.read_text(encoding="utf-8").splitlines()
            if line.strip() and not line.strip().startswith("#")
        ]
    environment = conda_environment(recipe.conda_file, recipe.conda_dependencies)
    return list(environment.requirements) if environment is not None else []


def model_dir_env(recipe: ImageRecipe) -> str:
    """AZUREML_MODEL_DIR as AML sets it: the model's version folder for one model, else the root."""
    root = f"{APP_ROOT}/azureml-models"
    if len(recipe.models) == 1:
        model = recipe.models[0]
        return f"{root}/{model.name}/{model.version}"
    return root


def models_env(recipe: ImageRecipe) -> str:
    """MODELPLANE_MODELS, the metrics' model labels: "name:version,…" (empty quotes for none)."""
    return ",".join(f"{m.name}:{m.version}" for m in recipe.models) or '""'


def base_lines(recipe: ImageRecipe) -> list[str]:
    """The image's base: an environment's base Dockerfile as written, else FROM the base image."""
    if recipe.base_dockerfile is not None:
        return ["# the environment's base Dockerfile", *recipe.base_dockerfile.rstrip().splitlines()]
    return [f"FROM {recipe.base_image}"]


def environment_lines(recipe: ImageRecipe) -> list[str]:
    """ENV lines for the environment's variables, each value quoted as Dockerfile ENV reads it."""
    return [f"ENV {name}={json.dumps(value)}" for name, value in recipe.environment_variables]


def render_dockerfile(recipe: ImageRecipe) -> str:
    source_root = recipe.source_directory or recipe.entry_script.parent
    entry = recipe.entry_script.relative_to(source_root) if recipe.entry_script.is_absolute() else recipe.entry_script
    lines = [
        "# Rendered by Modelplane from the inference config; do not edit.",
        *base_lines(recipe),
        "ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1",
        "RUN python3 -m venv /opt/venv",
        "ENV PATH=/opt/venv/bin:$PATH",
        "COPY environment/requirements.txt /opt/modelplane/requirements.txt",
        "RUN pip install -r /opt/modelplane/requirements.txt",
        "COPY runtime-requirements.txt /opt/modelplane/runtime-requirements.txt",
        "RUN pip install -r /opt/modelplane/runtime-requirements.txt",
        "COPY runtime/ /opt/modelplane/runtime/modelplane_runtime/",
        "ENV PYTHONPATH=/opt/modelplane/runtime",
        *environment_lines(recipe),
    ]
    if recipe.extra_docker_file_steps is not None:
        lines.append("# extra_docker_file_steps")
        lines.extend(recipe.extra_docker_file_steps.read_text(encoding="utf-8").rstrip().splitlines())
    lines += [
        f"COPY source/ {APP_ROOT}/",
        f"COPY models/ {APP_ROOT}/azureml-models/",
        f"WORKDIR {APP_ROOT}",
        f"ENV AZUREML_ENTRY_SCRIPT={entry.as_posix()} AZUREML_SOURCE_DIRECTORY={APP_ROOT} AML_APP_ROOT={APP_ROOT} "
        f"AZUREML_MODEL_DIR={model_dir_env(recipe)} MODELPLANE_PORT={recipe.port} "
        f"MODELPLANE_MODELS={models_env(recipe)}",
        f"EXPOSE {recipe.port} {METRICS_PORT}",
        'CMD ["python", "-m", "modelplane_runtime.serve"]',
    ]
    return "\n".join(lines) + "\n"


def _copy(source: Path, target: Path, skip: frozenset[Path] = frozenset()) -> None:
    root = source if source.is_dir() else source.parent
    for file in files_under(source):
        if any(file == s or s in file.parents for s in skip):
            continue
        destination = target / file.relative_to(root)
        destination.parent.mkdir(parents=True, exist_ok=True)
        # A file removed while the folder is copied (an editor's or a tool's temporary file) is left
        # out: the context's digest is taken from what was copied.
        with contextlib.suppress(FileNotFoundError):
            shutil.copy2(file, destination)


def write_context(recipe: ImageRecipe, context: Path) -> str:
    """Lay out the build context in `context` (emptied first) and return its content digest."""
    if context.exists():
        shutil.rmtree(context)
    (context / "environment").mkdir(parents=True)
    (context / "environment" / "requirements.txt").write_text("\n".join(requirements_of(recipe)) + "\n")
    (context / "runtime-requirements.txt").write_text("\n".join(RUNTIME_REQUIREMENTS) + "\n")
    _copy(RUNTIME_SOURCE, context / "runtime")
    source_root = recipe.source_directory or recipe.entry_script.parent
    # Model files inside the source folder go in the models layer only, so a model change
    # leaves the source layer as it was.
    model_paths = frozenset(m.path.resolve() for m in recipe.models)
    _copy(source_root, context / "source", skip=model_paths)
    (context / "models").mkdir()
    for model in recipe.models:
        version_dir = context / "models" / model.name / model.version
        # As AML registers a folder: under its own name in the version folder.
        _copy(model.path, version_dir / model.path.name if model.path.is_dir() else version_dir)
    (context / "Dockerfile").write_text(render_dockerfile(recipe))
    return content_digest(context)
