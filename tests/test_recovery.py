"""What a killed run left, judged from the exported state: which of its pending operations to name,
which locks are stale, and which Docker objects are older than the recovery."""

from __future__ import annotations

import os
import socket
import subprocess
from datetime import UTC, datetime

from pulumi import automation as auto

from modelplane.recovery import (
    CONTAINER_TYPE,
    Leftovers,
    interrupted,
    pending_creates,
    recover_interrupted,
    stale_lock,
)

PENDING = {
    "pending_operations": [
        {
            "type": "creating",
            "resource": {
                "urn": f"urn:pulumi:s::modelplane::x:y:LocalEndpoint${CONTAINER_TYPE}::endpoint-web-default",
                "type": CONTAINER_TYPE,
                "inputs": {"name": "modelplane-s-web-default", "unique_name": True},
            },
        },
        {"type": "deleting", "resource": {"urn": "urn:pulumi:s::modelplane::x:y:StoredModel::model-ridge-store"}},
    ]
}
LOCKED = "error: the stack is currently locked by 1 lock(s). Either wait for the other process(es) to end …"


def _lock_line(host: str, pid: int) -> str:
    return f"  file:///s/.pulumi/locks/s/1.json: created by ci@{host} (pid {pid}) at 2026-12-02T08:00:00Z"


def test_the_interrupted_operations_are_named_by_resource() -> None:
    assert interrupted(PENDING["pending_operations"]) == "creating endpoint-web-default, deleting model-ridge-store"
    assert pending_creates(PENDING, CONTAINER_TYPE) == [{"name": "modelplane-s-web-default", "unique_name": True}]


def test_only_a_lock_of_dead_local_processes_is_stale() -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()
    here = socket.gethostname()
    assert stale_lock([LOCKED, _lock_line(here, gone.pid)])
    assert not stale_lock([LOCKED, _lock_line(here, os.getpid())]), "a live holder"
    assert not stale_lock([LOCKED, _lock_line("another-machine", gone.pid)]), "a holder elsewhere"
    assert not stale_lock([LOCKED, _lock_line(here, gone.pid), _lock_line(here, os.getpid())]), "one of two alive"
    assert not stale_lock(["error: update failed"])


def test_only_what_existed_before_the_recovery_is_a_leftover() -> None:
    left = Leftovers(PENDING, set(), datetime(2026, 12, 2, 9, 0, 16, 500000, tzinfo=UTC))
    assert left.older("2026-12-02T09:00:16.499999999Z")
    assert not left.older("2026-12-02T09:00:16.500000001Z")
    assert left.older("2026-12-02T08:59:00Z")


class NeverCreated:
    """A stack the engine has not created yet (the first `up` of stacks/<name>.yaml creates it)."""

    name = "fresh"

    def export_stack(self) -> None:
        raise auto.StackNotFoundError(auto.CommandResult(stdout="", stderr="no stack named 'fresh' found", code=255))


def test_a_stack_not_created_yet_has_nothing_to_recover() -> None:
    said: list[str] = []
    recover_interrupted(NeverCreated(), said.append)  # type: ignore[arg-type]
    assert said == []
