"""The code stays ruff- and mypy-clean: CI runs these with the rest of the suite."""

from __future__ import annotations

import subprocess

import pytest

from modelplane.engine import PROJECT_ROOT, venv_bin

pytestmark = pytest.mark.lint


def run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=600)


def test_ruff_lint_and_format() -> None:
    lint = run(str(venv_bin() / "ruff"), "check", ".")
    assert lint.returncode == 0, lint.stdout
    formatted = run(str(venv_bin() / "ruff"), "format", "--check", ".")
    assert formatted.returncode == 0, formatted.stdout


def test_mypy_strict() -> None:
    result = run(str(venv_bin() / "mypy"), "modelplane", "components", "policies", "__main__.py", "bench", "tests")
    assert result.returncode == 0, result.stdout
