"""Shared fixtures: a throwaway file backend for the real Pulumi engine."""

from __future__ import annotations

import socket
import subprocess
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pulumi import automation as auto

from modelplane.engine import EngineSettings, pulumi_command, venv_bin


@pytest.fixture
def engine(tmp_path: Path) -> EngineSettings:
    """A file backend and passphrase of the test's own, so tests never touch the project's state."""
    state = tmp_path / "state"
    state.mkdir()
    passphrase = tmp_path / "passphrase"
    passphrase.write_text("test-passphrase-not-a-secret\n")
    return EngineSettings(state_dir=state, passphrase_file=passphrase)


ProgramStack = Callable[[str], auto.Stack]


@pytest.fixture
def program_stack(tmp_path: Path, engine: EngineSettings) -> Iterator[ProgramStack]:
    """Create a stack from Python program text in a project folder of its own; destroyed afterwards."""
    stacks: list[auto.Stack] = []

    def make(program: str) -> auto.Stack:
        project = tmp_path / f"project{len(stacks)}"
        project.mkdir()
        (project / "Pulumi.yaml").write_text(
            f"name: throwaway\nruntime:\n  name: python\n  options:\n    virtualenv: {venv_bin().parent}\n"
        )
        (project / "__main__.py").write_text(textwrap.dedent(program))
        stack = auto.create_stack(
            f"test{len(stacks)}",
            work_dir=str(project),
            opts=auto.LocalWorkspaceOptions(pulumi_command=pulumi_command(), env_vars=engine.env()),
        )
        stacks.append(stack)
        return stack

    yield make
    for stack in stacks:
        stack.destroy(on_output=lambda _line: None)


def modelplane(
    command: str, stack_file: Path | None, env: dict[str, str], *args: str, transcript: list[str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The project's CLI, as a user runs it: `modelplane COMMAND --file STACK ARGS…`; its output is
    appended to `transcript` (tests check it for secrets)."""
    where = ["--file", str(stack_file)] if stack_file is not None else []
    result = subprocess.run(
        [str(venv_bin() / "modelplane"), command, *where, *args], capture_output=True, text=True, env=env, timeout=900
    )
    if transcript is not None:
        transcript += [result.stdout, result.stderr]
    return result


def succeeded(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, f"{result.args[1:]}: {result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
