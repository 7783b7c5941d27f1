"""The CI workflows we ship: valid YAML with the keys GitHub needs, and only commands the CLI has."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from modelplane.cli import build_parser
from modelplane.engine import PROJECT_ROOT

WORKFLOWS = sorted((PROJECT_ROOT / ".github" / "workflows").glob("*.yml"))


def load(path: Path) -> dict[Any, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict)
    return data


def modelplane_commands(workflow: dict[Any, Any]) -> list[list[str]]:
    """Every `.venv/bin/modelplane ...` invocation in the workflow's run steps, as argv."""
    commands = []
    for job in workflow["jobs"].values():
        for step in job["steps"]:
            script = step.get("run", "")
            script = re.sub(r"\$\{\{[^}]*\}\}", "X", script).replace("\\\n", " ")
            for line in script.splitlines():
                if ".venv/bin/modelplane" in line:
                    before, command = line.split(".venv/bin/modelplane", 1)
                    if before.rstrip().endswith("$("):  # a command substitution ends at its parenthesis
                        command = command.rsplit(")", 1)[0]
                    argv = shlex.split(command)
                    commands.append([a.replace('"', "") for a in argv])
    return commands


def test_the_three_workflows_exist() -> None:
    assert {p.name for p in WORKFLOWS} == {"preview.yml", "drift.yml", "deploy.yml"}


@pytest.mark.parametrize("path", WORKFLOWS, ids=[p.name for p in WORKFLOWS])
def test_workflow_shape(path: Path) -> None:
    workflow = load(path)
    # PyYAML reads the key `on` as True (YAML 1.1).
    triggers = workflow.get("on", workflow.get(True))
    assert triggers, "a workflow needs triggers"
    assert workflow["name"] and workflow["jobs"]
    for job in workflow["jobs"].values():
        assert job["runs-on"]
        assert any(step.get("run") == "make bootstrap" for step in job["steps"])
        assert all("run" in step or "uses" in step for step in job["steps"])


def test_preview_runs_on_pull_requests_and_drift_on_a_schedule() -> None:
    preview = load(PROJECT_ROOT / ".github/workflows/preview.yml")
    drift = load(PROJECT_ROOT / ".github/workflows/drift.yml")
    # YAML 1.1 reads a bare `on:` key as True.
    preview_on, drift_on = preview.get("on", preview.get(True)), drift.get("on", drift.get(True))
    assert preview_on is not None and drift_on is not None
    assert "pull_request" in preview_on
    assert drift_on["schedule"][0]["cron"]
    assert preview["permissions"]["pull-requests"] == "write"
    assert drift["permissions"]["issues"] == "write"


@pytest.mark.parametrize("path", WORKFLOWS, ids=[p.name for p in WORKFLOWS])
def test_commands_exist_in_the_cli(path: Path) -> None:
    commands = modelplane_commands(load(path))
    assert commands, "the workflow should run modelplane"
    parser = build_parser()
    for argv in commands:
        try:
            parser.parse_args(argv)
        except SystemExit:
            pytest.fail(f"{path.name}: `modelplane {' '.join(argv)}` is not accepted by the CLI")


def test_deploy_runs_on_pushes_to_main_and_on_registered_models() -> None:
    deploy = load(PROJECT_ROOT / ".github/workflows/deploy.yml")
    triggers = deploy.get("on", deploy.get(True))
    assert triggers is not None
    assert triggers["push"]["branches"] == ["main"]
    assert triggers["repository_dispatch"]["types"] == ["model-registered"]
    # A deployment is never cancelled half-way by the next push.
    assert deploy["concurrency"]["cancel-in-progress"] is False


def test_production_stacks_deploy_behind_the_production_environment() -> None:
    jobs = load(PROJECT_ROOT / ".github/workflows/deploy.yml")["jobs"]
    for name in ("deploy", "deploy-registered"):
        assert jobs[name]["environment"] == "${{ matrix.production && 'production' || 'staging' }}"
        assert "fromJSON" in jobs[name]["strategy"]["matrix"]["include"]


def test_the_deploy_matrix_is_what_modelplane_affected_prints(capsys: pytest.CaptureFixture[str]) -> None:
    """The workflow feeds `affected --format json` to a matrix whose jobs read `stack` and `production`."""
    import json

    from modelplane.cli import main

    assert main(["affected", "--stacks", str(PROJECT_ROOT / "stacks" / "prod.yaml"), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == [{"stack": "prod", "production": True}]
    steps = load(PROJECT_ROOT / ".github/workflows/deploy.yml")["jobs"]["deploy"]["steps"]
    assert any('--stack "${{ matrix.stack }}" --yes' in step.get("run", "") for step in steps)


def test_a_registered_model_goes_through_model_set() -> None:
    commands = modelplane_commands(load(PROJECT_ROOT / ".github/workflows/deploy.yml"))
    assert ["model", "set", "--stack", "$STACK", "$MODEL", "--path", "$MODEL_PATH"] in commands
