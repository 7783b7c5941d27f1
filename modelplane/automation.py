"""Stacks driven through Pulumi's Automation API, on the project's own program."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pulumi import automation as auto

from modelplane.engine import PROJECT_ROOT, EngineSettings, default_settings, pulumi_command
from modelplane.spec import StackSpec, load_stack

STACK_FILE_KEY = "modelplane:stackFile"


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


def open_stack(ref: StackRef, settings: EngineSettings | None = None, create: bool = True) -> auto.Stack:
    """The engine's stack for `ref`, created on first use, pointing at the declaration file."""
    settings = settings or default_settings()
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    opts = auto.LocalWorkspaceOptions(pulumi_command=pulumi_command(), env_vars=settings.env())
    if create:
        stack = auto.create_or_select_stack(stack_name=ref.name, work_dir=str(PROJECT_ROOT), opts=opts)
    else:
        stack = auto.select_stack(stack_name=ref.name, work_dir=str(PROJECT_ROOT), opts=opts)
    default_file = PROJECT_ROOT / "stacks" / f"{ref.name}.yaml"
    if ref.file != default_file:
        stack.set_config(STACK_FILE_KEY, auto.ConfigValue(str(ref.file)))
    return stack


def printer(stream: Any = None) -> Callable[[str], None]:
    """Pulumi's progress lines, as they come."""
    target = stream or sys.stdout

    def emit(line: str) -> None:
        print(line, file=target, flush=True)

    return emit
