"""Conda environments (AML's CondaDependencies: a conda file, or an environment's inline
`condaDependencies`) read for an image that installs with pip.

The base image has no conda, and AML environments keep their Python packages in the `pip:` section
anyway; conda packages are installed from PyPI under the same name, their match specs translated
(conda's `numpy=1.16` is `numpy 1.16.*`, so pip's `numpy==1.16.*`). The `python` pin is read, not
installed: it chooses the base image whose Python meets it (`base_for`), and `spec.notices` says
when none does.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from packaging.specifiers import InvalidSpecifier, SpecifierSet

from modelplane.base_images import DEFAULT_BASE, PYTHON_BASES, PythonBase

# Conda packages that are not pip packages: the interpreter and the installer themselves.
CONDA_ONLY = {"python", "pip"}
MATCH_SPEC = re.compile(r"^(?P<name>[A-Za-z0-9_.\-\[\],]+)\s*(?P<version>.*)$")
OPERATORS = ("==", ">=", "<=", "!=", ">", "<", "~=")


class CondaSpecError(ValueError):
    """A conda match spec with no pip equivalent."""


@dataclass(frozen=True)
class CondaEnvironment:
    """What an image takes from a conda environment."""

    python: str | None
    """The `python` dependency as written (e.g. `python=3.8`, `python>=3.8`), or None."""
    channels: tuple[str, ...]
    """Conda channels: not used, as packages come from PyPI."""
    requirements: tuple[str, ...]
    """pip requirement lines: the conda packages translated, then the `pip:` section."""


def read_environment(data: Any) -> CondaEnvironment:
    """A conda environment from its parsed YAML (or an inline `condaDependencies` object)."""
    data = data if isinstance(data, dict) else {}
    python: str | None = None
    requirements: list[str] = []
    pip_lines: list[str] = []
    for dependency in data.get("dependencies") or []:
        if isinstance(dependency, dict):
            pip_lines.extend(str(item) for item in dependency.get("pip") or [])
            continue
        name, version = split_match_spec(str(dependency))
        if name == "python":
            python = str(dependency) if version else None
        elif name not in CONDA_ONLY:
            requirements.append(pip_requirement(name, version))
    channels = tuple(str(channel) for channel in data.get("channels") or [])
    return CondaEnvironment(python, channels, (*requirements, *pip_lines))


def split_match_spec(spec: str) -> tuple[str, str]:
    """`conda-forge::numpy>=1.16` → (`numpy`, `>=1.16`); `numpy 1.16` → (`numpy`, `1.16`)."""
    spec = spec.split("::")[-1].strip()
    match = MATCH_SPEC.match(spec)
    if match is None:
        raise CondaSpecError(f"'{spec}' is not a conda match spec")
    return match["name"].lower(), match["version"].strip()


def pip_specifier(version: str) -> str:
    """A conda version spec as pip's: `=1.2` and `1.2` are fuzzy (`==1.2.*`), a build string is dropped."""
    if not version:
        return ""
    if "|" in version:
        raise CondaSpecError(f"'{version}': alternatives ('|') have no pip equivalent")
    clauses = []
    for clause in version.split(","):
        clause = clause.strip()
        if clause.startswith(OPERATORS):
            clauses.append(clause)
            continue
        exact = clause.lstrip("=").split("=")[0].strip()
        if not exact:
            continue
        clauses.append(f"=={exact}" if exact.endswith("*") else f"=={exact}.*")
    return ",".join(clauses)


def pip_requirement(name: str, version: str) -> str:
    return f"{name}{pip_specifier(version)}"


def python_allows(pin: str, python: str = DEFAULT_BASE.python) -> bool:
    """Whether a conda `python` dependency (`python=3.8`) admits this Python version."""
    try:
        return SpecifierSet(pip_specifier(split_match_spec(pin)[1])).contains(python, prereleases=True)
    except (InvalidSpecifier, CondaSpecError):
        return False


def base_for(pin: str | None) -> PythonBase | None:
    """The base image whose Python meets a `python` pin (the default when it does, or when there is no
    pin); None when no base image here has such a Python."""
    if pin is None:
        return DEFAULT_BASE
    return next((base for base in PYTHON_BASES if python_allows(pin, base.python)), None)


def conda_environment(conda_file: Path | None, inline: Mapping[str, Any] | None) -> CondaEnvironment | None:
    """An image's conda environment: its conda file, or an environment's inline dependencies."""
    if conda_file is not None:
        return read_environment(yaml.safe_load(conda_file.read_text(encoding="utf-8")))
    if inline is not None:
        return read_environment(inline)
    return None
