"""What Modelplane says when a stack's state is damaged or locked, and the one case it refuses outright: a stack
whose state file is gone while its backups show it held infrastructure (an `up` from empty state
would create everything a second time beside what runs).

Pulumi's file backend keeps `<state>/.pulumi/stacks/<project>/<stack>.json`, the copy before the last
write beside it (`.json.bak`) and a copy per update under `.pulumi/backups/<project>/<stack>/`.
Only a local file backend's files are read; a lock is explained from the engine's own message, on any backend.
"""

from __future__ import annotations

import json
import os
import re
import socket
from pathlib import Path

from modelplane.engine import EngineSettings

PROJECT = "modelplane"
PASSPHRASE_VARIABLES = ("PULUMI_CONFIG_PASSPHRASE", "PULUMI_CONFIG_PASSPHRASE_FILE")
# Resources every stack has, which say nothing about infrastructure.
BOOKKEEPING_TYPES = ("pulumi:pulumi:Stack",)
BOOKKEEPING_PREFIX = "pulumi:providers:"
# Pulumi's line for each lock it found: `  <lock URL>: created by user@host (pid N) at T`.
LOCK_LINE = re.compile(r": created by (\S+)@(\S+) \(pid (\d+)\) at (\S+)")
RESTORE = "put the newest good copy in its place (`cp <copy> {state}`), then run the command again"


class StateError(Exception):
    """A stack's state cannot be used as it is (the message says why and what to do)."""


def _file_backend(backend_url: str) -> Path | None:
    """The `.pulumi` folder of a file backend, or None for another backend."""
    return Path(backend_url.removeprefix("file://")) / ".pulumi" if backend_url.startswith("file://") else None


def state_file(backend_url: str, stack: str) -> Path | None:
    root = _file_backend(backend_url)
    return root / "stacks" / PROJECT / f"{stack}.json" if root is not None else None


def copies(backend_url: str, stack: str) -> list[Path]:
    """The stack's earlier checkpoints, newest first: the one beside it, then the backups."""
    root = _file_backend(backend_url)
    if root is None:
        return []
    beside = root / "stacks" / PROJECT / f"{stack}.json.bak"
    backups = (root / "backups" / PROJECT / stack).glob(f"{stack}.*.json")
    by_age = sorted(backups, key=lambda path: path.stat().st_mtime, reverse=True)
    return [path for path in [beside, *by_age] if path.is_file()]


def infrastructure_in(checkpoint: Path) -> list[str]:
    """The URNs a checkpoint lists beyond the stack and its providers ([] when it cannot be read)."""
    try:
        resources = json.loads(checkpoint.read_text())["checkpoint"]["latest"].get("resources") or []
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return []
    return [
        str(r.get("urn"))
        for r in resources
        if r.get("type") not in BOOKKEEPING_TYPES and not str(r.get("type", "")).startswith(BOOKKEEPING_PREFIX)
    ]


def refuse_lost_state(backend_url: str, stack: str) -> None:
    """Raise StateError when `stack` is about to be created from nothing while its newest copy shows it
    held infrastructure; a stack that never existed, or that was destroyed, goes ahead."""
    current = state_file(backend_url, stack)
    found = copies(backend_url, stack)
    if current is None or current.exists() or not found:
        return
    held = infrastructure_in(found[0])
    if not held:
        return
    raise StateError(
        f"stack {stack} has no state file ({current}), but its newest copy ({found[0]}) lists {len(held)} "
        f"resources, e.g. {held[0]}: its state was lost or moved, and an update from empty state would "
        f"create them a second time. Nothing was done; {RESTORE.format(state=current)}. Copies: "
        + ", ".join(str(path) for path in found[:3])
    )


def engine_error_lines(error: Exception) -> list[str]:
    """The `error: …` lines of the failed command's stderr, each with the indented lines that detail it
    (e.g. who holds a lock)."""
    _, _, stderr = str(error).partition("\n stderr: ")
    lines: list[str] = []
    detailing = False
    for line in stderr.splitlines():
        if line.strip().startswith("error:"):
            lines.append(line.strip())
            detailing = True
        elif detailing and line.startswith("  ") and line.strip():
            lines.append(line.rstrip())
        else:
            detailing = False
    return lines


def lock_holders(engine_lines: list[str]) -> list[str]:
    """Who holds the stack's lock (`user@host, pid N, since T`, and whether that process is gone), from
    the lines the engine prints under its lock error, one per lock, for any backend."""
    holders = []
    for line in engine_lines:
        held = LOCK_LINE.search(line)
        if held is None:
            continue
        user, host, pid, since = held.groups()
        holder = f"{user}@{host}, pid {pid}, since {since}"
        if host == socket.gethostname() and not _running(int(pid)):
            holder += " (no such process runs here any more)"
        holders.append(holder)
    return holders


def _running(pid: int) -> bool:
    """Whether a process with this pid runs (one killed and not yet reaped by its parent does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return pid > 0 and not _zombie(pid)


def _zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[:1] == ["Z"]


def explain_lock(engine_lines: list[str], settings: EngineSettings, stack: str) -> str:
    holders = lock_holders(engine_lines)
    by = "; ".join(holders) if holders else "another process"
    # .modelplane/env.sh points plain `pulumi` at the local file backend; a team's backend is named.
    backend = "" if _file_backend(settings.backend_url) else f"PULUMI_BACKEND_URL='{settings.backend_url}' "
    return (
        f"stack {stack} is locked by {by}: another `up`, `destroy` or `drift --remediate` is changing it; "
        "nothing was done. Wait for it to end; if it was killed, remove its lock with "
        f"`. .modelplane/env.sh && {backend}pulumi cancel --stack organization/{PROJECT}/{stack} --yes`"
    )


def explain_passphrase(settings: EngineSettings, stack: str, unreadable: bool) -> str:
    given = [name for name in PASSPHRASE_VARIABLES if name in os.environ]
    source = given[0] if given else settings.passphrase_file
    if unreadable:
        passphrase_file = os.environ.get("PULUMI_CONFIG_PASSPHRASE_FILE") or settings.passphrase_file
        problem = f"the passphrase file {passphrase_file} cannot be read"
    else:
        problem = f"the passphrase from {source} does not open stack {stack}'s secrets"
    return (
        f"{problem}; nothing was done. Give the passphrase the stack was created with "
        f"({' or '.join(PASSPHRASE_VARIABLES)}, else the file {settings.passphrase_file})"
    )


def explain_engine_error(lines: list[str], settings: EngineSettings, stack: str) -> str | None:
    """What to do about an engine error that is about the state or its secrets, or None."""
    text = " ".join(lines)
    if "currently locked" in text:
        return explain_lock(lines, settings, stack)
    if "incorrect passphrase" in text or "unable to read PULUMI_CONFIG_PASSPHRASE_FILE" in text:
        return explain_passphrase(settings, stack, unreadable="incorrect passphrase" not in text)
    if "failed to load checkpoint" in text:
        where = state_file(settings.backend_url, stack)
        found = copies(settings.backend_url, stack)
        restore = RESTORE.format(state=where) + (": " + ", ".join(str(p) for p in found[:3]) if found else "")
        return f"stack {stack}'s state file ({where or 'in the backend'}) is damaged; nothing was done; {restore}"
    return None
