"""Continuous deployment: the stacks a change touches, a model reference moved in a stack file, and
models kept on Azure (azureml:// URIs) registered where they are."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from modelplane.cli import main
from modelplane.delivery import affected, changed_since, set_model_path, stack_inputs
from modelplane.source import SpecError
from modelplane.spec import load_stack
from tests.mocks import run_under_mocks

ROOT = Path(__file__).resolve().parent.parent
STACKS = ROOT / "stacks"
EXAMPLES = ROOT / "examples"
DATASTORE_MODEL = "azureml://datastores/workspaceblobstore/paths/models/ridge/7/"


def test_a_stack_reads_its_declaration_models_code_and_aml_files() -> None:
    inputs = stack_inputs(STACKS / "local.yaml")
    assert STACKS / "local.yaml" in inputs
    assert EXAMPLES / "sklearn-regression" / "model" / "sklearn_regression_model.pkl" in inputs
    assert EXAMPLES / "digits-classifier" in inputs  # a source folder: every file under it
    assert EXAMPLES / "sklearn-regression" / "inferenceconfig.json" in inputs


@pytest.mark.parametrize(
    ("changed", "expected"),
    [
        ("examples/digits-classifier/score.py", ["local", "prod"]),
        ("examples/batch-scoring/environment.yml", ["batch", "dev-v2"]),
        # In the source folder of the regression image: every stack that builds it.
        ("examples/sklearn-regression/deploymentconfig.json", ["dev", "dev-v2", "local", "prod"]),
        ("stacks/dev.yaml", ["dev"]),
        ("README.md", []),
        ("modelplane/program.py", ["batch", "dev", "dev-v2", "local", "prod"]),
    ],
)
def test_only_the_stacks_a_change_touches_are_deployed(changed: str, expected: list[str]) -> None:
    stacks = [STACKS / f"{name}.yaml" for name in ("batch", "dev", "dev-v2", "local", "prod")]
    assert affected(stacks, [ROOT / changed]) == expected


def test_changes_are_read_from_git_between_a_ref_and_head(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()

    def git(*args: str) -> None:
        subprocess.run(
            ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=repo, check=True, capture_output=True
        )

    git("init", "-q", "-b", "main")
    (repo / "a.txt").write_text("1")
    git("add", ".")
    git("commit", "-qm", "one")
    (repo / "b.txt").write_text("2")
    git("add", ".")
    git("commit", "-qm", "two")
    assert changed_since("HEAD~1", repo) == [repo / "b.txt"]
    with pytest.raises(ValueError, match=r"git diff nowhere\.\.\.HEAD failed"):
        changed_since("nowhere", repo)


def copy_stack(tmp_path: Path, name: str = "local") -> Path:
    """stacks/<name>.yaml beside a copy of examples/, so its relative paths hold."""
    shutil.copytree(EXAMPLES, tmp_path / "examples")
    (tmp_path / "stacks").mkdir()
    return Path(shutil.copy(STACKS / f"{name}.yaml", tmp_path / "stacks" / f"{name}.yaml"))


def test_a_model_reference_moves_and_nothing_else_in_the_file_does(tmp_path: Path) -> None:
    stack = copy_stack(tmp_path)
    before = stack.read_text()
    new = "../examples/digits-classifier/model/digits_model.pkl"
    old = set_model_path(stack, "diabetes-ridge", new)
    assert old == "../examples/sklearn-regression/model/sklearn_regression_model.pkl"
    after = stack.read_text()
    changed = [(a, b) for a, b in zip(before.splitlines(), after.splitlines(), strict=True) if a != b]
    assert changed == [(f"    path: {old}", f'    path: "{new}"')]
    assert load_stack(stack).models["diabetes-ridge"].path == (stack.parent / new).resolve()


def test_a_model_set_that_breaks_the_stack_leaves_it_as_it_was(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stack = copy_stack(tmp_path)
    before = stack.read_text()
    assert main(["model", "set", "--file", str(stack), "diabetes-ridge", "--path", "missing.pkl"]) == 2
    assert "models.diabetes-ridge.path: file not found: missing.pkl" in capsys.readouterr().err
    assert stack.read_text() == before
    with pytest.raises(SpecError, match="no model 'nope' to update; declared: diabetes-ridge, digits"):
        set_model_path(stack, "nope", "x.pkl")


def v2_stack(tmp_path: Path, change: Any = None) -> Path:
    data = yaml.safe_load((STACKS / "dev-v2.yaml").read_text().replace("../examples", str(EXAMPLES)))
    data["models"]["diabetes-ridge"]["path"] = DATASTORE_MODEL
    if change is not None:
        change(data)
    path = tmp_path / "stack.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_a_model_on_azure_is_registered_where_it_is(tmp_path: Path) -> None:
    spec = load_stack(v2_stack(tmp_path))
    assert spec.models["diabetes-ridge"].path == DATASTORE_MODEL
    run = run_under_mocks(spec, tmp_path / "state")
    version = run.mocks.one("azure-native:machinelearningservices:ModelVersion").inputs
    assert version["properties"]["modelUri"] == DATASTORE_MODEL
    assert [r.name for r in run.mocks.of_type("azure-native:storage:Blob") if r.name.startswith("model-")] == []
    deployment = run.mocks.one("azure-native:machinelearningservices:OnlineDeployment", "endpoint-regression-v2-blue")
    assert deployment.inputs["properties"]["model"] == "model-diabetes-ridge-version-id"


def test_a_model_on_azure_cannot_go_into_an_image_built_here(tmp_path: Path) -> None:
    def aci(data: dict[str, Any]) -> None:
        data["endpoints"]["regression-aci"] = {"compute_type": "aci", "image": "regression"}

    with pytest.raises(SpecError) as raised:
        load_stack(v2_stack(tmp_path, aci))
    assert "models.diabetes-ridge.path: is on Azure, but image 'regression' is built on this machine" in str(
        raised.value
    )


def test_a_model_on_azure_is_refused_on_a_local_stack(tmp_path: Path) -> None:
    stack = copy_stack(tmp_path)
    seed = "../examples/sklearn-regression/model/sklearn_regression_model.pkl"
    stack.write_text(stack.read_text().replace(seed, DATASTORE_MODEL))
    with pytest.raises(SpecError, match=r"models\.diabetes-ridge\.path: is on Azure: a stack that runs here needs"):
        load_stack(stack)


def test_a_stack_that_does_not_parse_or_does_not_exist_is_named_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("tags: [\n")
    assert affected([broken], [tmp_path / "elsewhere.txt"]) == []
    assert affected([broken], [broken]) == ["broken"]
    assert main(["affected", "--stacks", str(tmp_path / "missing.yaml")]) == 2
    assert "no such stack declaration" in capsys.readouterr().err
