"""The program's start on the real engine: the explicit local-resources provider and declaration errors."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from pulumi import automation as auto

from modelplane.automation import StackRef, open_stack
from modelplane.engine import PROJECT_ROOT, EngineSettings
from tests.conftest import ProgramStack

pytestmark = pytest.mark.engine

KEYS_PROGRAM = """
import pulumi
from modelplane.providers import local_resources_provider
from modelplane.providers.keys import EndpointKeys

{provider}
keys = EndpointKeys("web-keys", opts=opts)
pulumi.export("keys", keys.as_secret_dict())
"""


def _state_resources(stack: auto.Stack) -> list[dict[str, str]]:
    deployment = stack.export_stack().deployment
    assert deployment is not None
    return list(deployment["resources"])


def test_a_stack_made_with_the_default_provider_moves_to_the_explicit_one_unchanged(
    program_stack: ProgramStack,
) -> None:
    # Stacks deployed before the explicit provider existed ran their dynamic resources in Pulumi's
    # default provider for the package: the alias must carry them over without a replacement.
    stack = program_stack(KEYS_PROGRAM.format(provider="opts = None"))
    stack.up(on_output=lambda _line: None)
    keys_before = stack.outputs()["keys"].value
    provider_before = next(r for r in _state_resources(stack) if r["type"] == "pulumi:providers:pulumi-python")
    assert provider_before["urn"].endswith("::default")

    program = Path(stack.workspace.work_dir) / "__main__.py"
    program.write_text(
        textwrap.dedent(
            KEYS_PROGRAM.format(
                provider="opts = pulumi.ResourceOptions(provider=local_resources_provider())",
            )
        )
    )
    preview = stack.preview(on_output=lambda _line: None)
    assert set(preview.change_summary) == {"same"}, preview.change_summary
    stack.up(on_output=lambda _line: None)
    assert stack.outputs()["keys"].value == keys_before, "the keys were not regenerated"
    resources = _state_resources(stack)
    provider = next(r for r in resources if r["type"] == "pulumi:providers:pulumi-python")
    assert provider["urn"].endswith("::local-resources")
    assert provider["id"] == provider_before["id"], "the provider itself was kept, not replaced"
    keys = next(r for r in resources if r["type"] == "pulumi-python:dynamic/keys:EndpointKeys")
    assert keys["provider"] == f"{provider['urn']}::{provider['id']}"


def test_a_declaration_error_reaching_the_engine_names_file_line_and_field(
    engine: EngineSettings, tmp_path: Path
) -> None:
    # `modelplane` validates before it starts the engine; a plain `pulumi preview` gets the same
    # messages from the program, and no traceback.
    declaration = tmp_path / "startup-bad.yaml"
    declaration.write_text("endpoints:\n  web:\n    image: scorer\n    port: seventy\n")
    stack = open_stack(StackRef.from_args(None, str(declaration)), engine)
    try:
        with pytest.raises(auto.CommandError) as failure:
            stack.preview(on_output=lambda _line: None)
    finally:
        (PROJECT_ROOT / "Pulumi.startup-bad.yaml").unlink(missing_ok=True)  # the engine's stack settings
    output = str(failure.value)
    assert f"{declaration}:3:5: endpoints.web.image: unknown image 'scorer'" in output
    assert f"{declaration}:4:5: endpoints.web.port:" in output
    assert "the stack declaration has 2 problem(s); nothing was changed" in output
    assert "Traceback" not in output


def test_a_stack_named_after_a_file_run_reads_its_own_declaration(engine: EngineSettings, tmp_path: Path) -> None:
    # `--file elsewhere/NAME.yaml` records that file in the stack's settings; a later `--stack NAME`
    # means stacks/NAME.yaml (here missing), never the other file still named there.
    elsewhere = tmp_path / "startup-renamed.yaml"
    elsewhere.write_text("endpoints: {}\n")
    try:
        open_stack(StackRef.from_args(None, str(elsewhere)), engine)
        named = open_stack(StackRef.from_args("startup-renamed", None), engine)
        with pytest.raises(auto.CommandError) as failure:
            named.preview(on_output=lambda _line: None)
    finally:
        (PROJECT_ROOT / "Pulumi.startup-renamed.yaml").unlink(missing_ok=True)
    assert "stacks/startup-renamed.yaml:1:1: file not found" in str(failure.value), str(failure.value)[-2000:]


UNTYPED_KEYS_PROGRAM = """
import pulumi
from pulumi.dynamic import Resource
from modelplane.providers import local_resources_provider
from modelplane.providers.keys import KeysProvider


class UntypedKeys(Resource):  # what every dynamic resource was: pulumi-python:dynamic:Resource
    def __init__(self, name, opts):
        secret = pulumi.ResourceOptions(additional_secret_outputs=["primary_key", "secondary_key"])
        super().__init__(
            KeysProvider(), name, {"rotation": 0, "primary_key": None, "secondary_key": None},
            pulumi.ResourceOptions.merge(secret, opts),
        )


opts = pulumi.ResourceOptions(provider=local_resources_provider())
keys = UntypedKeys("web-keys", opts)
pulumi.export("keys", pulumi.Output.secret(pulumi.Output.all(keys.primary_key, keys.secondary_key)))
"""

TYPED_KEYS_PROGRAM = """
import pulumi
from modelplane.providers import local_resources_provider
from modelplane.providers.keys import EndpointKeys

opts = pulumi.ResourceOptions(provider=local_resources_provider())
keys = EndpointKeys("web-keys", opts=opts)
pulumi.export("keys", pulumi.Output.secret(pulumi.Output.all(keys.primary_key, keys.secondary_key)))
"""


def test_a_dynamic_resource_deployed_untyped_moves_to_its_own_type_unchanged(program_stack: ProgramStack) -> None:
    # Before each dynamic resource had a type of its own, all were pulumi-python:dynamic:Resource:
    # the alias must carry them over with no change and no replacement (keys kept).
    stack = program_stack(UNTYPED_KEYS_PROGRAM)
    stack.up(on_output=lambda _line: None)
    keys_before = stack.outputs()["keys"].value
    (Path(stack.workspace.work_dir) / "__main__.py").write_text(TYPED_KEYS_PROGRAM)
    preview = stack.preview(on_output=lambda _line: None)
    assert set(preview.change_summary) == {"same"}, preview.change_summary
    stack.up(on_output=lambda _line: None)
    assert stack.outputs()["keys"].value == keys_before, "the keys were not regenerated"
    types = {r["type"] for r in _state_resources(stack) if "web-keys" in r["urn"]}
    assert types == {"pulumi-python:dynamic/keys:EndpointKeys"}
