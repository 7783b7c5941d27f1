"""The command line's own handling of engine failures and missing plugins (no engine needed)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from pulumi import automation as auto

ROOT = Path(__file__).resolve().parent.parent


def test_a_quiet_up_that_fails_shows_the_engines_diagnostics() -> None:
    from pulumi.automation._cmd import CommandResult

    from modelplane.cli import engine_diagnostics

    stdout = (
        "Updating (web):\n\nDiagnostics:\n  pulumi:pulumi:Stack (modelplane-web):\n    error: update failed\n\n"
        "  pulumi-python:dynamic/docker:Container (endpoint-web-red):\n"
        "    error: Exception calling application: container web-red-1 did not become ready\n"
        "    Traceback-free detail line\n\nResources:\n    17 unchanged\n"
    )
    error = auto.CommandError(CommandResult(stdout, "", 255))
    assert engine_diagnostics(error) == [
        "  pulumi:pulumi:Stack (modelplane-web):",
        "    error: update failed",
        "  pulumi-python:dynamic/docker:Container (endpoint-web-red):",
        "    error: Exception calling application: container web-red-1 did not become ready",
        "    Traceback-free detail line",
    ]


def test_an_online_command_on_an_azure_stack_without_its_plugin_says_how_to_get_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from modelplane.cli import main

    monkeypatch.setenv("PULUMI_HOME", str(tmp_path))
    assert main(["preview", "--stack", "dev"]) == 1
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1
    assert "the azure-native provider plugin v3.29.0 is not installed" in lines[0]
    assert "pulumi plugin install resource azure-native v3.29.0" in lines[0]


def test_an_installed_plugin_lets_the_command_through(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from modelplane.engine import azure_plugin_problem

    monkeypatch.setenv("PULUMI_HOME", str(tmp_path))
    assert azure_plugin_problem() is not None
    plugin = tmp_path / "plugins" / "resource-azure-native-v3.29.0" / "pulumi-resource-azure-native"
    plugin.parent.mkdir(parents=True)
    plugin.write_text("#!/bin/sh\n")
    assert azure_plugin_problem() is None


def test_the_bootstrap_tries_the_plugin_download_once_a_day(tmp_path: Path) -> None:
    """Here the download does not answer: the attempt says so, and the next bootstrap does not wait for it again."""
    env = {**os.environ, "PULUMI_HOME": str(tmp_path / "home"), "MODELPLANE_PLUGIN_TIMEOUT": "60"}
    script = [str(ROOT / "scripts" / "install-azure-native-plugin"), str(tmp_path)]
    first = subprocess.run(script, env=env, capture_output=True, text=True, timeout=120, check=True).stdout
    plugin = tmp_path / "home" / "plugins" / "resource-azure-native-v3.29.0" / "pulumi-resource-azure-native"
    if "installed v3.29.0" in first:  # a machine that reaches get.pulumi.com
        assert plugin.is_file()
        return
    assert "azure-native plugin: download unreachable" in first
    assert (tmp_path / "azure-native-v3.29.0.unreachable").is_file()
    second = subprocess.run(script, env=env, capture_output=True, text=True, timeout=10, check=True).stdout
    assert "not installed (download unreachable at" in second


def test_an_endpoint_that_refuses_says_how_to_find_and_restore_what_is_gone(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import socket

    import requests

    from modelplane import cli
    from modelplane.operations import EXIT_FAILED

    with socket.socket() as closed:  # a port nothing listens on once this block ends
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    monkeypatch.setattr(cli, "_invoke", lambda _args: requests.post(f"http://127.0.0.1:{port}/score", timeout=5))
    assert cli.main(["invoke", "--stack", "local", "web"]) == EXIT_FAILED
    error = capsys.readouterr().err
    assert "modelplane: request failed:" in error and "Connection refused" in error, error
    assert "`modelplane drift --stack local` reports it" in error, error
    assert "`modelplane up --stack local --refresh` puts it back" in error, error
