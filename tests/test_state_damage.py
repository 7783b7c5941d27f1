"""Damaged state, through the real CLI and engine on a stack of one stored model (the smallest that
holds infrastructure): a wrong passphrase, a corrupted state file and a lost one each end in a clear
message that names the file and what to do, never a traceback, and nothing is deployed from empty
state over what runs. What the messages advise works: the state put back, `up` finds nothing to do."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from modelplane.engine import PROJECT_ROOT, EngineSettings, venv_bin
from modelplane.state_guard import infrastructure_in, refuse_lost_state
from tests.conftest import free_port, modelplane, succeeded

pytestmark = [pytest.mark.engine]

MODEL = PROJECT_ROOT / "examples" / "sklearn-regression" / "model" / "sklearn_regression_model.pkl"


@dataclass
class SmallStack:
    file: Path
    work: Path
    env: dict[str, str]

    @property
    def state_file(self) -> Path:
        return self.work / "state" / ".pulumi" / "stacks" / "modelplane" / f"{self.file.stem}.json"

    def cli(self, *args: str) -> tuple[int, str]:
        result = modelplane(args[0], self.file, self.env, *args[1:])
        return result.returncode, result.stdout + result.stderr


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SmallStack]:
    folder = tmp_path_factory.mktemp("state-damage")
    shutil.copy(MODEL, folder / "model.pkl")
    name = f"damage{free_port()}"
    stack_file = folder / f"{name}.yaml"
    stack_file.write_text("models:\n  ridge: {path: model.pkl, framework: scikit-learn}\n")
    work = folder / "work"
    (work / "state").mkdir(parents=True)
    (work / "passphrase").write_text("the-right-passphrase\n")
    env = {**os.environ, "MODELPLANE_STATE": str(work)}
    for variable in ("PULUMI_CONFIG_PASSPHRASE", "PULUMI_CONFIG_PASSPHRASE_FILE"):
        env.pop(variable, None)
    small = SmallStack(stack_file, work, env)
    succeeded(modelplane("up", stack_file, env, "--yes"))
    yield small
    modelplane("destroy", stack_file, env, "--yes")
    (PROJECT_ROOT / f"Pulumi.{name}.yaml").unlink(missing_ok=True)


def _unchanged(stack: SmallStack) -> None:
    code, output = stack.cli("up", "--yes")
    assert code == 0 and "no changes" in output, output[-2000:]


def test_a_wrong_passphrase_names_where_it_came_from(deployed: SmallStack) -> None:
    passphrase = deployed.work / "passphrase"
    passphrase.write_text("not-the-passphrase\n")
    try:
        code, output = deployed.cli("up", "--yes")
    finally:
        passphrase.write_text("the-right-passphrase\n")
    assert code == 1 and "Traceback" not in output
    assert f"the passphrase from {passphrase} does not open stack {deployed.file.stem}'s secrets" in output, output
    _unchanged(deployed)


def test_a_corrupted_state_file_is_named_with_the_copies_to_restore(deployed: SmallStack) -> None:
    deployed.state_file.write_text('{"version": 3, "checkpoint": {')
    code, output = deployed.cli("up", "--yes")
    assert code == 1 and "Traceback" not in output
    assert f"state file ({deployed.state_file}) is damaged; nothing was done" in output, output
    copy = re.search(r"then run the command again: (\S+?)(,|$)", output, re.MULTILINE)
    assert copy is not None, output
    shutil.copy(copy.group(1), deployed.state_file)
    _unchanged(deployed)


def test_a_lost_state_file_is_refused_and_nothing_is_deployed(deployed: SmallStack) -> None:
    kept = deployed.state_file.read_bytes()
    deployed.state_file.unlink()
    for command in (("up", "--yes"), ("plan",), ("drift",)):
        code, output = deployed.cli(*command)
        assert code == 1 and "Traceback" not in output, output
        assert f"refused: stack {deployed.file.stem} has no state file" in output, output
        assert "model-ridge" in output, output
    # Nothing made a new, empty stack to deploy into.
    assert not deployed.state_file.exists()
    deployed.state_file.write_bytes(kept)
    _unchanged(deployed)


def _lock(stack: SmallStack, pid: int) -> Path:
    """A lock as Pulumi's file backend writes one while an update runs."""
    folder = stack.work / "state" / ".pulumi" / "locks" / "organization" / "modelplane" / stack.file.stem
    folder.mkdir(parents=True, exist_ok=True)
    lock = folder / "8d4c1c55-held.json"
    holder = {"pid": pid, "username": "ci", "hostname": socket.gethostname(), "timestamp": "2026-12-02T05:32:08Z"}
    lock.write_text(json.dumps(holder))
    return lock


def test_a_locked_stack_is_refused_naming_the_holder_and_nothing_is_applied(deployed: SmallStack) -> None:
    model = deployed.file.parent / "model.pkl"
    kept = model.read_bytes()
    model.write_bytes(kept + b"\0")  # a new model version: an update to apply
    before = deployed.state_file.read_bytes()
    lock = _lock(deployed, os.getpid())
    try:
        code, output = deployed.cli("up", "--yes")
        assert code == 1 and "Traceback" not in output
        assert f"stack {deployed.file.stem} is locked by ci@{socket.gethostname()}, pid {os.getpid()}" in output, output
        assert "nothing was done" in output and "no such process" not in output, output
        assert deployed.state_file.read_bytes() == before
        # The advice removes the lock (for a holder that was killed elsewhere).
        cancel = re.search(r"`\. \.modelplane/env\.sh && (pulumi cancel [^`]+)`", output)
        assert cancel is not None, output
        settings = EngineSettings(deployed.work / "state", deployed.work / "passphrase")
        subprocess.run(
            [str(venv_bin() / "pulumi"), *cancel.group(1).split()[1:]],
            env={**os.environ, **settings.env()},
            cwd=PROJECT_ROOT,
            check=True,
            capture_output=True,
        )
        assert not lock.exists()
    finally:
        lock.unlink(missing_ok=True)
        model.write_bytes(kept)
    _unchanged(deployed)


def test_a_lock_whose_holder_was_killed_here_is_removed_by_the_next_up(deployed: SmallStack) -> None:
    model = deployed.file.parent / "model.pkl"
    kept = model.read_bytes()
    finished = subprocess.Popen(["true"])
    finished.wait()
    lock = _lock(deployed, finished.pid)
    try:
        model.write_bytes(kept + b"\0")
        code, output = deployed.cli("up", "--yes")
        assert code == 0 and "update succeeded" in output, output
        holder = f"ci@{socket.gethostname()}, pid {finished.pid}, since 2026-12-02T05:32:08Z"
        assert f"removed the lock of a run that was killed ({holder} (no such process runs here any more))" in output
        assert not lock.exists()
    finally:
        lock.unlink(missing_ok=True)
        model.write_bytes(kept)
    assert deployed.cli("up", "--yes")[0] == 0
    _unchanged(deployed)


def _checkpoint(folder: Path, stack: str, types: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    resources = [{"urn": f"urn:pulumi:{stack}::modelplane::{t}::x", "type": t} for t in types]
    (folder / f"{stack}.1.json").write_text(json.dumps({"checkpoint": {"latest": {"resources": resources}}}))


def test_a_destroyed_or_new_stack_is_not_refused(tmp_path: Path) -> None:
    backend = f"file://{tmp_path}"
    refuse_lost_state(backend, "never-deployed")
    backups = tmp_path / ".pulumi" / "backups" / "modelplane" / "gone"
    _checkpoint(backups, "gone", ["pulumi:pulumi:Stack", "pulumi:providers:kubernetes"])
    assert infrastructure_in(backups / "gone.1.json") == []
    refuse_lost_state(backend, "gone")
    # A team's own backend is not read.
    _checkpoint(backups, "gone", ["pulumi:pulumi:Stack", "kubernetes:apps/v1:Deployment"])
    refuse_lost_state("azblob://state", "gone")
