"""The toolchain that scripts/bootstrap builds: CLI, language host, dynamic providers, Docker."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from pathlib import Path

import docker
import pytest
from docker.errors import NotFound

from modelplane.engine import PULUMI_VERSION, venv_bin
from tests.conftest import ProgramStack, free_port

BASE_IMAGE = "modelplane/base:bookworm-py3"

pytestmark = pytest.mark.engine


def test_cli_reports_the_stamped_version() -> None:
    out = subprocess.run([venv_bin() / "pulumi", "version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"v{PULUMI_VERSION}"


def test_language_host_and_sdk_scripts_sit_beside_the_cli() -> None:
    for tool in ("pulumi-language-python", "pulumi-language-python-exec", "pulumi-resource-pulumi-python"):
        assert (venv_bin() / tool).resolve().is_file(), tool


def test_dynamic_provider_goes_through_up_and_destroy(program_stack: ProgramStack, tmp_path: Path) -> None:
    marker = tmp_path / "created-by-provider.txt"
    stack = program_stack(
        f"""
        import pathlib
        import pulumi
        from pulumi.dynamic import CreateResult, Resource, ResourceProvider

        class FileProvider(ResourceProvider):
            def create(self, props):
                pathlib.Path(props["path"]).write_text(props["text"])
                return CreateResult(id_=props["path"], outs=props)

            def delete(self, id_, props):
                pathlib.Path(id_).unlink()

        class File(Resource):
            def __init__(self, name, props):
                super().__init__(FileProvider(), name, props)

        f = File("marker", {{"path": {str(marker)!r}, "text": "hello"}})
        pulumi.export("path", f.path)
        """
    )
    result = stack.up(on_output=lambda _line: None)
    assert result.summary.result == "succeeded"
    assert result.outputs["path"].value == str(marker)
    assert marker.read_text() == "hello"
    preview = stack.preview(on_output=lambda _line: None)
    assert set(preview.change_summary) == {"same"}
    stack.destroy(on_output=lambda _line: None)
    assert not marker.exists()


def _inspect(name: str) -> dict[str, object] | None:
    try:
        return docker.from_env().containers.get(name).attrs  # type: ignore[no-any-return]
    except NotFound:
        return None


def test_docker_container_runs_previews_clean_and_is_destroyed(program_stack: ProgramStack) -> None:
    port = free_port()
    name = f"modelplane-toolchain-test-{port}"
    stack = program_stack(
        f"""
        import pulumi
        from modelplane.providers.docker import Container

        web = Container("web", {{
            "name": {name!r},
            "image": {BASE_IMAGE!r},
            "command": ["python3", "-m", "http.server", "8000"],
            "ports": [{{"internal": 8000, "external": {port}, "host_ip": "127.0.0.1"}}],
            "labels": {{"modelplane.test": "toolchain"}},
            "restart": "no",
        }})
        pulumi.export("container_id", web.container_id)
        """
    )
    result = stack.up(on_output=lambda _line: None)
    container_id = result.outputs["container_id"].value
    attrs = _inspect(name)
    assert attrs is not None and attrs["Id"] == container_id
    assert json.dumps(attrs["State"]).count('"Running": true') == 1

    # The container really serves on the declared port.
    body = b""
    for _ in range(50):
        try:
            body = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2).read()
            break
        except OSError:
            time.sleep(0.2)
    assert b"Directory listing" in body

    preview = stack.preview(on_output=lambda _line: None)
    assert set(preview.change_summary) == {"same"}, preview.change_summary

    stack.destroy(on_output=lambda _line: None)
    assert _inspect(name) is None
