"""`modelplane batch run`: a batch job in its scoring image on the local Docker engine, with AML's
ParallelRunStep semantics (mini-batches, retries, error threshold, append_row)."""

from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from modelplane.batch import BatchError, run_batch
from modelplane.engine import PROJECT_ROOT
from modelplane.spec import load_stack

pytestmark = pytest.mark.docker

EXAMPLE = PROJECT_ROOT / "examples" / "batch-scoring"
MODEL_DIR = PROJECT_ROOT / "examples" / "sklearn-regression" / "model"
# Fails its mini-batch at the first try when a row is marked `flaky` (the retry, in the same worker,
# succeeds), and every time when a row is marked `poison`.
FLAKY_SCRIPT = """
import os
import joblib

tried = set()


def init():
    global model
    model = joblib.load(os.path.join(os.environ["AZUREML_MODEL_DIR"], "sklearn_regression_model.pkl"))


def run(mini_batch):
    first = int(mini_batch.index[0])
    if mini_batch["poison"].any():
        raise ValueError(f"poisoned row in the mini-batch starting at row {first}")
    if mini_batch["flaky"].any() and first not in tried:
        tried.add(first)
        raise ConnectionError("feature store timed out")
    return [f"{value:.6f}" for value in model.predict(mini_batch.drop(columns=["poison", "flaky"]).to_numpy())]
"""


def stack_file(folder: Path, source: Path, script: str, **job: Any) -> Path:
    data = {
        "models": {"diabetes-ridge": {"path": str(MODEL_DIR / "sklearn_regression_model.pkl")}},
        "images": {
            "batch": {
                "entry_script": script,
                "source_directory": str(source),
                "conda_file": str(EXAMPLE / "environment.yml"),
                "models": ["diabetes-ridge"],
            }
        },
        "batch": {"job": {"image": "batch", **job}},
    }
    path = folder / "batchtest.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def rows(count: int, seed: int = 7) -> pd.DataFrame:
    """`count` patients drawn around the diabetes data's own."""
    base = pd.read_csv(EXAMPLE / "data" / "diabetes.csv")
    generator = np.random.default_rng(seed)
    picked = base.sample(count, replace=True, random_state=seed).reset_index(drop=True)
    return picked + generator.normal(0, 0.01, picked.shape)


def in_process(frame: pd.DataFrame, size: int) -> list[str]:
    """The example's entry script called here, mini-batch by mini-batch, as AML's runner calls it."""
    spec = importlib.util.spec_from_file_location("score_batch", EXAMPLE / "score_batch.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    os.environ["AZUREML_MODEL_DIR"] = str(MODEL_DIR)
    module.init()
    results: list[str] = []
    for start in range(0, len(frame), size):
        results += module.run(frame.iloc[start : start + size])
    return results


@pytest.fixture
def progress() -> Iterator[list[str]]:
    lines: list[str] = []
    yield lines


def test_ten_thousand_rows_give_what_the_model_gives_in_process(tmp_path: Path, progress: list[str]) -> None:
    frame = rows(10_000)
    frame.to_csv(tmp_path / "patients.csv", index=False)
    stack = stack_file(tmp_path, EXAMPLE, "score_batch.py", mini_batch_size=100, error_threshold=0)
    result = run_batch(load_stack(stack), "job", str(tmp_path / "patients.csv"), str(tmp_path / "out"), progress.append)
    written = (tmp_path / "out" / "predictions.csv").read_text().splitlines()
    assert written == in_process(frame, 100)
    assert result.summary["succeeded"] == 10_000 and result.summary["mini_batches"] == 100
    assert any(line.startswith("batch: mini-batches 100/100") for line in progress)
    assert result.summary["workers"] >= 1


def test_file_input_gives_one_line_per_file(tmp_path: Path, progress: list[str]) -> None:
    inputs = tmp_path / "requests"
    inputs.mkdir()
    for index, row in rows(25).iterrows():
        (inputs / f"patient-{index:03d}.json").write_text(json.dumps({"data": row.tolist()}))
    stack = stack_file(tmp_path, EXAMPLE, "score_batch.py", mini_batch_size=10)
    result = run_batch(load_stack(stack), "job", str(inputs), str(tmp_path / "out" / "scores.txt"), progress.append)
    written = (tmp_path / "out" / "scores.txt").read_text().splitlines()
    assert [line.split(":")[0] for line in written] == [f"patient-{i:03d}.json" for i in range(25)]
    assert result.summary["mini_batches"] == 3


def flaky_input(tmp_path: Path, flaky: list[int], poison: list[int]) -> Path:
    frame = rows(200)
    frame["poison"] = frame.index.isin(poison)
    frame["flaky"] = frame.index.isin(flaky)
    path = tmp_path / "marked.csv"
    frame.to_csv(path, index=False)
    return path


def flaky_stack(tmp_path: Path, **job: Any) -> Path:
    source = tmp_path / "source"
    source.mkdir()
    (source / "flaky_batch.py").write_text(FLAKY_SCRIPT)
    return stack_file(tmp_path, source, "flaky_batch.py", mini_batch_size=20, **job)


def test_a_mini_batch_that_raises_once_is_retried_and_the_job_succeeds(tmp_path: Path, progress: list[str]) -> None:
    stack = flaky_stack(tmp_path, error_threshold=0)
    marked = flaky_input(tmp_path, flaky=[45], poison=[])
    result = run_batch(load_stack(stack), "job", str(marked), str(tmp_path / "out"), progress.append)
    assert result.summary["retried_mini_batches"] == 1
    assert result.summary["failed"] == 0
    assert len((tmp_path / "out" / "predictions.csv").read_text().splitlines()) == 200


def test_a_mini_batch_that_always_raises_past_the_threshold_fails_the_job_naming_it(
    tmp_path: Path, progress: list[str]
) -> None:
    stack = flaky_stack(tmp_path, error_threshold=5, max_retries=2)
    marked = flaky_input(tmp_path, flaky=[], poison=[130])
    with pytest.raises(BatchError) as raised:
        run_batch(load_stack(stack), "job", str(marked), str(tmp_path / "out"), progress.append)
    message = str(raised.value)
    assert "batch job failed: 20 failed inputs exceed error_threshold 5" in message
    assert "mini-batch 6 (rows 120-139)" in message
    assert "ValueError: poisoned row in the mini-batch starting at row 120" in message


def test_failures_under_the_threshold_are_counted_not_fatal(tmp_path: Path, progress: list[str]) -> None:
    stack = flaky_stack(tmp_path, error_threshold=-1, max_retries=0)
    marked = flaky_input(tmp_path, flaky=[], poison=[10])
    result = run_batch(load_stack(stack), "job", str(marked), str(tmp_path / "out"), progress.append)
    assert (result.summary["succeeded"], result.summary["failed"]) == (180, 20)
    assert result.summary["failed_inputs"] == ["mini-batch 0 (rows 0-19)"]


def test_a_missing_input_is_named(tmp_path: Path) -> None:
    stack = stack_file(tmp_path, EXAMPLE, "score_batch.py")
    with pytest.raises(BatchError, match=r"input .*nowhere\.csv does not exist"):
        run_batch(load_stack(stack), "job", str(tmp_path / "nowhere.csv"), None, print)


def test_an_init_that_raises_fails_the_job_with_its_error(tmp_path: Path, progress: list[str]) -> None:
    source = tmp_path / "source"
    source.mkdir()
    (source / "broken_batch.py").write_text(
        'def init():\n    raise FileNotFoundError("model.pkl is not in AZUREML_MODEL_DIR")\n\n\ndef run(mini_batch):\n'
        "    return []\n"
    )
    stack = stack_file(tmp_path, source, "broken_batch.py")
    data = tmp_path / "rows.csv"
    rows(30).to_csv(data, index=False)
    with pytest.raises(BatchError, match=r"batch job failed: init\(\) failed in the workers"):
        run_batch(load_stack(stack), "job", str(data), str(tmp_path / "out"), progress.append)
    assert "batch: FileNotFoundError: model.pkl is not in AZUREML_MODEL_DIR" in progress
