"""A locked stack explained from the engine's own lines, on any backend: who holds each lock, and
whether that process is gone when it ran on this machine."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pulumi import automation as auto

from modelplane.engine import EngineSettings
from modelplane.state_guard import engine_error_lines, explain_engine_error, lock_holders

LOCKED = (
    "error: the stack is currently locked by 2 lock(s). Either wait for the other process(es) to end or "
    "delete the lock file with `pulumi cancel`.\n"
    "  azblob://state/.pulumi/locks/organization/modelplane/web/1.json: created by alice@laptop7 (pid 4242) "
    "at 2026-12-02T08:10:08Z\n"
    "  azblob://state/.pulumi/locks/organization/modelplane/web/2.json: created by ci@{host} (pid {pid}) "
    "at 2026-12-02T08:11:00Z\n"
)


def _gone_pid() -> int:
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(finished.stdout)


def _engine_error(stderr: str) -> auto.CommandError:
    return auto.CommandError(auto.CommandResult(stdout="", stderr=stderr, code=255))


def test_each_lock_is_named_with_its_holder_and_a_dead_local_holder_is_called_gone() -> None:
    pid = _gone_pid()
    lines = engine_error_lines(_engine_error(LOCKED.format(host=socket.gethostname(), pid=pid)))
    assert lock_holders(lines) == [
        "alice@laptop7, pid 4242, since 2026-12-02T08:10:08Z",
        f"ci@{socket.gethostname()}, pid {pid}, since 2026-12-02T08:11:00Z (no such process runs here any more)",
    ]


def test_the_advice_names_the_holders_and_the_cancel_command() -> None:
    lines = engine_error_lines(_engine_error(LOCKED.format(host="buildbox", pid=1)))
    team = EngineSettings(state_dir=Path("/unused"), user_backend_url="azblob://state")
    advice = explain_engine_error(lines, team, stack="web")
    assert advice is not None
    assert advice.startswith("stack web is locked by alice@laptop7, pid 4242, since 2026-12-02T08:10:08Z; ci@buildbox")
    cancel = "PULUMI_BACKEND_URL='azblob://state' pulumi cancel --stack organization/modelplane/web --yes"
    assert cancel in advice


def test_lines_after_the_error_that_are_not_indented_are_not_its_detail() -> None:
    stderr = "error: update failed\n  detail of it\nwarning: something else\n  not a detail\n"
    assert engine_error_lines(_engine_error(stderr)) == ["error: update failed", "  detail of it"]


def test_an_unreadable_passphrase_file_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in ("PULUMI_CONFIG_PASSPHRASE", "PULUMI_CONFIG_PASSPHRASE_FILE"):
        monkeypatch.delenv(variable, raising=False)
    stderr = "error: get stack secrets manager: unable to read PULUMI_CONFIG_PASSPHRASE_FILE: open /w/passphrase\n"
    settings = EngineSettings(state_dir=Path("/w/state"), passphrase_file=Path("/w/passphrase"))
    advice = explain_engine_error(engine_error_lines(_engine_error(stderr)), settings, stack="web")
    assert advice is not None and advice.startswith(
        "the passphrase file /w/passphrase cannot be read; nothing was done."
    )


def test_a_holder_killed_and_not_yet_reaped_is_gone() -> None:
    unreaped = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        deadline = time.monotonic() + 10
        while "Z" not in Path(f"/proc/{unreaped.pid}/stat").read_text().rpartition(")")[2][:3]:
            assert time.monotonic() < deadline, "the child did not exit"
            time.sleep(0.05)
        line = f"  file:///s/1.json: created by ci@{socket.gethostname()} (pid {unreaped.pid}) at 2026-12-02T08:11:00Z"
        assert lock_holders([line])[0].endswith("(no such process runs here any more)")
    finally:
        unreaped.wait()
