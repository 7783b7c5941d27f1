"""The scoring image: a deterministic Dockerfile and build context rendered from an inference config.

Layer order puts what changes least first, so that a new model version rebuilds only the last
layer and a new entry script only the last two:

    base image → virtualenv → environment (conda_file/pip_requirements) → scoring runtime
    → extra_docker_file_steps → source_directory → model files

A conda file is installed with pip: the base image has no conda, and AML environments keep their
Python packages in the `pip:` section anyway; conda-only packages are named in the error.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import yaml

from modelplane.content import content_digest, files_under

RUNTIME_REQUIREMENTS = ("azureml-inference-server-http==1.5.1",)
DEFAULT_BASE_IMAGE = "modelplane/base:bookworm-py3"
APP_ROOT = "/var/azureml-app"
RUNTIME_SOURCE = Path(__file__).parent / "runtime"
# Conda packages that pip installs under the same name; anything else is refused with its name.
CONDA_SKIP = {"python", "pip"}


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


def conda_to_requirements(conda_file: Path) -> list[str]:
    """pip requirement lines for a conda environment file."""
    data = yaml.safe_load(conda_file.read_text(encoding="utf-8")) or {}
    lines: list[str] = []
    for dependency in data.get("dependencies") or []:
        if isinstance(dependency, dict):
            lines.extend(str(item) for item in dependency.get("pip") or [])
            continue
        spec = str(dependency).split("::")[-1]
        name, _, version = spec.partition("=")
        if name in CONDA_SKIP:
            continue
        version = version.lstrip("=")
        lines.append(f"{name}=={version}" if version and "*" not in version else name)
    return lines


def requirements_of(recipe: ImageRecipe) -> list[str]:
    if recipe.pip_requirements is not None:
        return [
            line.strip()
            for line in recipe.pip_requirements.read_text(encoding="utf-8").splitlines()
            if line.strip() and not line.strip().startswith("#")
        ]
    if recipe.conda_file is not None:
        return conda_to_requirements(recipe.conda_file)
    return []


def model_dir_env(recipe: ImageRecipe) -> str:
    """AZUREML_MODEL_DIR as AML sets it: the model's version folder for one model, else the root."""
    root = f"{APP_ROOT}/azureml-models"
    if len(recipe.models) == 1:
        model = recipe.models[0]
        return f"{root}/{model.name}/{model.version}"
    return root


def render_dockerfile(recipe: ImageRecipe) -> str:
    source_root = recipe.source_directory or recipe.entry_script.parent
    entry = recipe.entry_script.relative_to(source_root) if recipe.entry_script.is_absolute() else recipe.entry_script
    lines = [
        "# Rendered by Modelplane from the inference config; do not edit.",
        f"FROM {recipe.base_image}",
        "ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1",
        "RUN python3 -m venv /opt/venv",
        "ENV PATH=/opt/venv/bin:$PATH",
        "COPY environment/requirements.txt /opt/modelplane/requirements.txt",
        "RUN pip install -r /opt/modelplane/requirements.txt",
        "COPY runtime-requirements.txt /opt/modelplane/runtime-requirements.txt",
        "RUN pip install -r /opt/modelplane/runtime-requirements.txt",
        "COPY runtime/ /opt/modelplane/runtime/modelplane_runtime/",
        "ENV PYTHONPATH=/opt/modelplane/runtime",
    ]
    if recipe.extra_docker_file_steps is not None:
        lines.append("# extra_docker_file_steps")
        lines.extend(recipe.extra_docker_file_steps.read_text(encoding="utf-8").rstrip().splitlines())
    lines += [
        f"COPY source/ {APP_ROOT}/",
        f"COPY models/ {APP_ROOT}/azureml-models/",
        f"WORKDIR {APP_ROOT}",
        f"ENV AZUREML_ENTRY_SCRIPT={entry.as_posix()} AZUREML_SOURCE_DIRECTORY={APP_ROOT} "
        f"AZUREML_MODEL_DIR={model_dir_env(recipe)} MODELPLANE_PORT={recipe.port}",
        f"EXPOSE {recipe.port}",
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
        _copy(model.path, context / "models" / model.name / model.version)
    (context / "Dockerfile").write_text(render_dockerfile(recipe))
    return content_digest(context)
