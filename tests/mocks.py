"""Test helpers over modelplane.plan.mocks: run a declared stack under mocks and look at the results."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi

from modelplane.engine import PROJECT_ROOT
from modelplane.plan.mocks import REGISTRY_PASSWORD, RecordingMocks, is_secret, plain, set_recording_mocks
from modelplane.program import ProgramOptions, StackOutputs, build_stack, export
from modelplane.providers import local_resources_provider
from modelplane.spec import StackSpec

__all__ = ["REGISTRY_PASSWORD", "MockRun", "RecordingMocks", "is_secret", "plain", "run_under_mocks"]


@dataclass
class MockRun:
    mocks: RecordingMocks
    outputs: StackOutputs
    resolved: dict[str, Any]
    secret: dict[str, bool]


def run_under_mocks(
    spec: StackSpec,
    state_dir: Path,
    stack_name: str = "test",
    collect: Callable[[StackOutputs], dict[str, Any]] | None = None,
    explicit_provider: bool = False,
) -> MockRun:
    """Run the program for `spec` under mocks; `collect` picks outputs to resolve (value and secretness);
    `explicit_provider`: dynamic resources under the local-resources provider, as `pulumi up` runs them."""
    mocks = set_recording_mocks(stack_name, preview=False)
    resolved: dict[str, Any] = {}
    secret: dict[str, bool] = {}
    holder: dict[str, StackOutputs] = {}

    @pulumi.runtime.test  # type: ignore[untyped-decorator]
    def program() -> pulumi.Output[Any]:
        provider = local_resources_provider() if explicit_provider else None
        out = build_stack(spec, stack_name, ProgramOptions(state_dir=state_dir, local_provider=provider))
        export(out)
        holder["out"] = out
        wanted = collect(out) if collect else {}

        async def settle() -> None:
            for key, output in wanted.items():
                resolved[key] = await output.future()
                secret[key] = await output.is_secret()

        return pulumi.Output.from_input(settle())

    program()
    return MockRun(mocks, holder["out"], resolved, secret)


def routed_prod_stack(
    tmp_path: Path, green: str = "{image: regression, num_replicas: 2}", traffic: str = "90, 10"
) -> Path:
    """stacks/prod.yaml with its `regression` endpoint as two deployments behind a router."""
    blue, green_share = traffic.split(", ")
    text = (PROJECT_ROOT / "stacks" / "prod.yaml").read_text().replace("../examples", str(PROJECT_ROOT / "examples"))
    old = "    cluster: prod-aks\n    image: regression\n"
    assert old in text
    routed = (
        f"    cluster: prod-aks\n    deployments:\n      blue: {{image: regression}}\n      green: {green}\n"
        f"    traffic: {{blue: {blue}, green: {green_share}}}\n"
    )
    stack = tmp_path / "prod.yaml"
    stack.write_text(text.replace(old, routed, 1))
    return stack
