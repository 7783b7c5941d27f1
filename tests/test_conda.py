"""Conda environments as a pip-only image reads them: match specs translated, the Python pin read."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from modelplane.base_images import DEFAULT_BASE
from modelplane.conda import (
    CondaSpecError,
    base_for,
    pip_requirement,
    python_allows,
    read_environment,
    split_match_spec,
)

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "sklearn-regression"


@pytest.mark.parametrize(
    ("spec", "requirement"),
    [
        ("numpy", "numpy"),
        ("numpy>=1.16", "numpy>=1.16"),
        ("numpy>=1.16,<2", "numpy>=1.16,<2"),
        ("numpy==1.16", "numpy==1.16"),
        # conda's single '=' and the space form are prefix matches.
        ("numpy=1.16", "numpy==1.16.*"),
        ("numpy 1.16", "numpy==1.16.*"),
        ("numpy=1.*", "numpy==1.*"),
        # A channel prefix and a build string have no pip meaning.
        ("conda-forge::scikit-learn=0.22.1=py_0", "scikit-learn==0.22.1.*"),
    ],
)
def test_conda_match_specs_become_pip_requirements(spec: str, requirement: str) -> None:
    assert pip_requirement(*split_match_spec(spec)) == requirement


def test_alternatives_have_no_pip_equivalent() -> None:
    with pytest.raises(CondaSpecError, match="alternatives"):
        pip_requirement(*split_match_spec("numpy 1.11|1.12"))


def test_an_environment_file_gives_its_pin_channels_and_requirements(tmp_path: Path) -> None:
    conda = {
        "channels": ["conda-forge"],
        "dependencies": ["python=3.8", "pip", "scikit-learn=1.7.2", "conda-forge::numpy", {"pip": ["joblib==1.5.2"]}],
    }
    environment = read_environment(conda)
    assert environment.python == "python=3.8"
    assert environment.channels == ("conda-forge",)
    assert environment.requirements == ("scikit-learn==1.7.2.*", "numpy", "joblib==1.5.2")
    seed = read_environment(yaml.safe_load((EXAMPLE / "myenv.yml").read_text()))
    assert seed.python == "python=3.11" and seed.requirements[0] == "scikit-learn==1.7.2"


@pytest.mark.parametrize(
    ("pin", "allowed"),
    [
        ("python=3.11", True),
        ("python>=3.8", True),
        ("python 3.11", True),
        ("python=3.8", False),
        ("python==3.10,<3.12", False),
        ("python>=3.8,<3.10", False),
        ("python=3.12", False),
    ],
)
def test_the_python_pin_is_checked_against_the_base_image(pin: str, allowed: bool) -> None:
    assert python_allows(pin) is allowed, f"{pin} against {DEFAULT_BASE.python}"


@pytest.mark.parametrize(
    ("pin", "suite"),
    [
        (None, "bookworm"),
        ("python=3.11", "bookworm"),
        ("python>=3.8", "bookworm"),
        ("python=3.9", "bullseye"),
        ("python 3.9.2", "bullseye"),
        ("python>=3.12", "trixie"),
        ("python=3.8", None),
        ("python=3.9.7", None),
    ],
)
def test_a_pin_chooses_the_base_image_whose_python_meets_it(pin: str | None, suite: str | None) -> None:
    base = base_for(pin)
    assert (base.suite if base else None) == suite
