"""The program's first steps, in the order that lets the engine start the provider host early.

The engine starts Pulumi's Python dynamic-provider host (a second interpreter importing pulumi,
grpc and dill: ~0.2 s here) when the provider of the first dynamic resource is registered, and a
registration leaves this process only when the program hands control back to the event loop.
So the program registers that provider first, with nothing but `pulumi` imported, and does its
own slow part — importing Modelplane's components and reading and validating the stack file —
in a worker thread while the event loop sends the registration. The components are then built on
the event loop as before. (bench/: engine overhead; docs/performance-findings.md)
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import pulumi

from modelplane.engine import PROJECT_ROOT
from modelplane.providers import local_resources_provider

if TYPE_CHECKING:
    from modelplane.source import SpecError
    from modelplane.spec import StackSpec


def stack_file(stack_name: str, config: pulumi.Config) -> Path:
    """`modelplane:stackFile` when set, else stacks/<stack>.yaml in the project."""
    configured = config.get("stackFile")
    return Path(configured) if configured else PROJECT_ROOT / "stacks" / f"{stack_name}.yaml"


def load_program(stack_name: str, declaration: Path) -> tuple[ModuleType, StackSpec | SpecError]:
    """Import the program module and read the declaration. Makes no Pulumi call: Pulumi's settings
    live in the event loop's context, which a worker thread does not have."""
    from modelplane import program
    from modelplane.source import SpecError
    from modelplane.spec import load_stack

    try:
        return program, load_stack(declaration, name=stack_name)
    except SpecError as error:
        return program, error


def run() -> None:
    """The program body: register the local-resources provider, then load, build and export.
    (Importing `modelplane.providers` has made this process freeze its heap at exit.)"""
    provider = local_resources_provider()
    stack_name = pulumi.get_stack()
    config = pulumi.Config("modelplane")

    async def build() -> None:
        loop = asyncio.get_running_loop()
        program, loaded = await loop.run_in_executor(None, load_program, stack_name, stack_file(stack_name, config))
        if not isinstance(loaded, program.StackSpec):
            raise program.spec_failure(loaded)
        for warning in loaded.warnings:
            pulumi.log.warn(str(warning))
        options = program.ProgramOptions(iot_hub_endpoint=config.get("iotHubEndpoint"), local_provider=provider)
        program.export(program.build_stack(loaded, stack_name, options))

    pulumi.run(build)
