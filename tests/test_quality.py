"""The code stays ruff- and mypy-clean with short functions: CI runs these with the rest of the suite."""

from __future__ import annotations

import ast
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


MAX_FUNCTION_LINES = 60
PRODUCT_FOLDERS = ("modelplane", "components", "policies")


def long_functions() -> list[str]:
    found = []
    for folder in PRODUCT_FOLDERS:
        for path in sorted((PROJECT_ROOT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    length = (node.end_lineno or node.lineno) - node.lineno + 1
                    if length > MAX_FUNCTION_LINES:
                        found.append(f"{path.relative_to(PROJECT_ROOT)}:{node.lineno} {node.name} ({length} lines)")
    return found


def test_no_product_function_over_60_lines() -> None:
    assert long_functions() == []
