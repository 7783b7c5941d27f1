"""The command line's own handling of engine failures (no engine needed)."""

from __future__ import annotations

from pulumi import automation as auto


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
