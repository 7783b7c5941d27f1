"""Where the Pulumi engine lives on this machine and how Modelplane talks to it.

scripts/bootstrap links the CLI, the Python language host and the SDK scripts into `.venv/bin`,
keeps state under `.modelplane/state` (a file backend) and writes the local stacks' passphrase to
`.modelplane/passphrase`. Everything that starts the engine takes its environment from here.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pulumi import automation as auto

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PULUMI_VERSION = "3.259.0"


@dataclass(frozen=True)
class EngineSettings:
    """The engine's backend and secrets for one run."""

    state_dir: Path
    passphrase_file: Path | None = None
    user_backend_url: str | None = None
    """The user's own backend (`PULUMI_BACKEND_URL`, e.g. a team's `azblob://…`), which wins over the file backend."""

    @property
    def backend_url(self) -> str:
        return self.user_backend_url or f"file://{self.state_dir}"

    def env(self) -> dict[str, str]:
        """Variables for the CLI: the backend, the local passphrase (unless the user gives one), no update
        checks or plugin downloads."""
        env = {
            "PULUMI_BACKEND_URL": self.backend_url,
            "PULUMI_SKIP_UPDATE_CHECK": "true",
            "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
            "PATH": f"{venv_bin()}{os.pathsep}{os.environ.get('PATH', '')}",
        }
        users_own = {"PULUMI_CONFIG_PASSPHRASE", "PULUMI_CONFIG_PASSPHRASE_FILE"} & set(os.environ)
        if not users_own and self.passphrase_file is not None:
            env["PULUMI_CONFIG_PASSPHRASE_FILE"] = str(self.passphrase_file)
        return env


# What `modelplane --backend-url URL` sets, for the commands it runs and the engine's programs.
BACKEND_URL_VARIABLE = "MODELPLANE_BACKEND_URL"


def venv_bin() -> Path:
    """The bin folder of the interpreter running Modelplane (the project's .venv)."""
    return Path(sys.executable).parent


def state_root() -> Path:
    """Modelplane's local state: `$MODELPLANE_STATE` (tests use their own), else `.modelplane`."""
    configured = os.environ.get("MODELPLANE_STATE")
    return Path(configured) if configured else PROJECT_ROOT / ".modelplane"


def default_settings() -> EngineSettings:
    """The backend given by `--backend-url` (MODELPLANE_BACKEND_URL), else the user's `PULUMI_BACKEND_URL`,
    else the local file backend that scripts/bootstrap prepared (with its passphrase file).
    `MODELPLANE_STATE` (a state folder of its own, as the tests use) sets aside `PULUMI_BACKEND_URL`,
    which may be the user's shell setting, but not an explicit `--backend-url`."""
    state = state_root()
    user_backend = os.environ.get(BACKEND_URL_VARIABLE) or None
    if user_backend is None and "MODELPLANE_STATE" not in os.environ:
        user_backend = os.environ.get("PULUMI_BACKEND_URL") or None
    return EngineSettings(
        state_dir=state / "state", passphrase_file=state / "passphrase", user_backend_url=user_backend
    )


def pulumi_command() -> auto.PulumiCommand:
    """The CLI that scripts/bootstrap put beside this interpreter, at the version it pins.

    `PulumiCommand()` runs `pulumi version` to learn what the bootstrap already guarantees; this one
    is built without that round trip."""
    # Imported here: the Pulumi program imports this module, and never needs the Automation API.
    from pulumi import automation as auto
    from semver import VersionInfo

    command = auto.PulumiCommand.__new__(auto.PulumiCommand)
    command.command = str(venv_bin() / "pulumi")
    command.version = VersionInfo.parse(PULUMI_VERSION)
    return command


def interrupt_update(stack_name: str) -> bool:
    """Ask the CLI running an update of `stack_name` for this process (the Automation API's child)
    to cancel it, as Ctrl-C does: the engine asks its providers to stop waiting, starts nothing new
    and saves the state as it knows it. Whether such a CLI was found."""
    import psutil

    found = False
    for child in psutil.Process().children():
        with contextlib.suppress(psutil.Error):  # it may end meanwhile
            if child.name() == "pulumi" and stack_name in child.cmdline():
                child.send_signal(signal.SIGINT)
                found = True
    return found


def pulumi_home() -> Path:
    return Path(os.environ.get("PULUMI_HOME") or Path.home() / ".pulumi")


def azure_plugin_problem() -> str | None:
    """Why an online command on an Azure stack cannot start here, in one line (None when it can): the
    engine runs without automatic plugin downloads, so the azure-native plugin must be installed."""
    from importlib.metadata import version

    pinned = version("pulumi-azure-native")
    plugin = pulumi_home() / "plugins" / f"resource-azure-native-v{pinned}" / "pulumi-resource-azure-native"
    if plugin.is_file():
        return None
    return (
        f"the azure-native provider plugin v{pinned} is not installed ({plugin.parent}): run"
        f" `pulumi plugin install resource azure-native v{pinned}` where get.pulumi.com answers"
        " (scripts/bootstrap tries it), or plan without Azure: `modelplane plan --offline`"
    )
