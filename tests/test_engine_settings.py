"""Whose backend the engine uses: the user's `PULUMI_BACKEND_URL` (a team's shared state) wins over the
local file backend, except where Modelplane was given a state folder of its own."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelplane.cli import main
from modelplane.engine import BACKEND_URL_VARIABLE, default_settings, state_root


@pytest.fixture(autouse=True)
def plain_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    passphrase = ("PULUMI_CONFIG_PASSPHRASE", "PULUMI_CONFIG_PASSPHRASE_FILE")
    for name in ("PULUMI_BACKEND_URL", BACKEND_URL_VARIABLE, "MODELPLANE_STATE", *passphrase):
        monkeypatch.delenv(name, raising=False)


def test_the_local_file_backend_is_the_default() -> None:
    env = default_settings().env()
    assert env["PULUMI_BACKEND_URL"] == f"file://{state_root() / 'state'}"
    assert env["PULUMI_CONFIG_PASSPHRASE_FILE"] == str(state_root() / "passphrase")


def test_the_users_backend_and_passphrase_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PULUMI_BACKEND_URL", "azblob://team-state?storage_account=modelplaneteam")
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE_FILE", "/secrets/team-passphrase")
    env = default_settings().env()
    assert env["PULUMI_BACKEND_URL"] == "azblob://team-state?storage_account=modelplaneteam"
    assert "PULUMI_CONFIG_PASSPHRASE_FILE" not in env, "the user's own file stays in force"


def test_a_state_folder_of_its_own_keeps_the_file_backend(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PULUMI_BACKEND_URL", "azblob://team-state")
    monkeypatch.setenv("MODELPLANE_STATE", str(tmp_path))
    assert default_settings().env()["PULUMI_BACKEND_URL"] == f"file://{tmp_path / 'state'}"


def test_the_backend_url_flag_wins_even_over_a_state_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PULUMI_BACKEND_URL", "azblob://someone-elses")
    monkeypatch.setenv("MODELPLANE_STATE", str(tmp_path))
    monkeypatch.setenv(BACKEND_URL_VARIABLE, "")  # restored after the test: main() sets it
    main(["--backend-url", "azblob://team-state", "validate", str(tmp_path / "any.yaml")])
    assert default_settings().env()["PULUMI_BACKEND_URL"] == "azblob://team-state"
