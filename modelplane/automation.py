"""Stacks driven through Pulumi's Automation API, on the project's own program, with as few round
trips to the CLI as each command needs: the CLI's version is known (scripts/bootstrap pins it), a
stack is selected by the `--stack` flag of each command rather than a `stack select` of its own and
created only when an operation finds it missing, and the stack-file setting is written only when it
changes.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pulumi import automation as auto
from pulumi.automation._stack import StackInitMode

from modelplane.engine import PROJECT_ROOT, EngineSettings, azure_plugin_problem, default_settings, pulumi_command
from modelplane.spec import StackSpec, load_stack
from modelplane.state_guard import refuse_lost_state

STACK_FILE_KEY = "modelplane:stackFile"
Result = TypeVar("Result")


@dataclass(frozen=True)
class StackRef:
    """A declared stack: by name (stacks/<name>.yaml) or by a declaration file anywhere on disk."""

    name: str
    file: Path

    @classmethod
    def from_args(cls, stack: str | None, file: str | None) -> StackRef:
        if file is not None:
            path = Path(file).resolve()
            return cls(name=path.stem, file=path)
        if stack is None:
            raise ValueError("give --stack NAME or --file PATH")
        return cls(name=stack, file=PROJECT_ROOT / "stacks" / f"{stack}.yaml")

    def load(self) -> StackSpec:
        """The declaration, validated (raises SpecError)."""
        return load_stack(self.file, name=self.name)

    @property
    def default_file(self) -> bool:
        return self.file == PROJECT_ROOT / "stacks" / f"{self.name}.yaml"


class NamedStack(auto.Stack):
    """A stack addressed by name: every command passes `--stack`, so no `stack select` is run first."""

    def __init__(self, name: str, workspace: auto.LocalWorkspace) -> None:
        self.name = name
        self.workspace = workspace
        self._mode = StackInitMode.SELECT


class MissingPluginError(Exception):
    """A provider plugin the stack needs is not installed (the message says how to get it)."""


def targets_azure(ref: StackRef) -> bool:
    """Whether the declaration says `target: azure` (read as text: a broken file is reported elsewhere)."""
    try:
        data = yaml.safe_load(ref.file.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return False
    return isinstance(data, dict) and data.get("target") == "azure"


def open_stack(ref: StackRef, settings: EngineSettings | None = None, create: bool = True) -> auto.Stack:
    """The engine's stack for `ref` (created on first use when `create`), pointing at the declaration file.
    An Azure stack without its provider plugin stops here, before the engine starts."""
    if targets_azure(ref) and (problem := azure_plugin_problem()) is not None:
        raise MissingPluginError(problem)
    settings = settings or default_settings()
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    workspace = auto.LocalWorkspace(
        work_dir=str(PROJECT_ROOT), pulumi_command=pulumi_command(), env_vars=settings.env()
    )
    configured = _configured_stack_file(ref.name)
    if create and not ref.default_file and configured != str(ref.file):
        # Writing the setting needs the stack to exist.
        refuse_lost_state(settings.backend_url, ref.name)
        stack = auto.Stack.create_or_select(ref.name, workspace)
        stack.set_config(STACK_FILE_KEY, auto.ConfigValue(str(ref.file)))
        return stack
    named = NamedStack(ref.name, workspace)
    if ref.default_file and configured is not None:
        _forget_stack_file(named)
    return named


def _forget_stack_file(stack: auto.Stack) -> None:
    """`--stack NAME` after a `--file elsewhere/NAME.yaml`: the program reads stacks/NAME.yaml again,
    as the command says, not the file the setting still names."""
    try:
        stack.remove_config(STACK_FILE_KEY)
    except auto.StackNotFoundError:
        # The settings outlived their stack: a stack made anew starts without them.
        (PROJECT_ROOT / f"Pulumi.{stack.name}.yaml").unlink(missing_ok=True)


def _configured_stack_file(stack_name: str) -> str | None:
    """The stack-file setting in Pulumi.<stack>.yaml, read without the CLI."""
    settings = PROJECT_ROOT / f"Pulumi.{stack_name}.yaml"
    try:
        config = (yaml.safe_load(settings.read_text()) or {}).get("config") or {}
    except (OSError, yaml.YAMLError):
        return None
    value = config.get(STACK_FILE_KEY)
    return value if isinstance(value, str) else None


def on_stack(stack: auto.Stack, operation: Callable[[auto.Stack], Result], create: bool = True) -> Result:
    """Run `operation`; a stack that does not exist yet is created (when `create`) and the operation run again."""
    try:
        return operation(stack)
    except auto.StackNotFoundError:
        if not create:
            raise
    refuse_lost_state(str(stack.workspace.env_vars.get("PULUMI_BACKEND_URL", "")), stack.name)
    stack.workspace.create_stack(stack.name)
    return operation(stack)


def printer(stream: Any = None) -> Callable[[str], None]:
    """Pulumi's progress lines, as they come."""
    target = stream or sys.stdout

    def emit(line: str) -> None:
        print(line, file=target, flush=True)

    return emit
