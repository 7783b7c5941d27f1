"""A team's shared state: two checkouts keep one stack in Azure Blob Storage (`azblob://`), through the
real CLI, Pulumi's own azblob backend and Azurite (the Azure Storage emulator, on loopback, with an
account key of the test's own). Each checkout has its own folder and local state folder; what they
share is the backend and the team's passphrase. A second `up` while one runs is refused naming who
holds the lock, and nothing of it is applied; a checkout without the team's passphrase is told so."""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from azure.storage.blob import BlobServiceClient, ContainerClient

from modelplane.engine import PROJECT_ROOT, venv_bin
from tests.conftest import free_port

pytestmark = [pytest.mark.engine]

MODEL = PROJECT_ROOT / "examples" / "sklearn-regression" / "model" / "sklearn_regression_model.pkl"
# Where scripts/bootstrap-azurite installs the emulator (keyed by its lock file's hash).
AZURITE_ROOT = Path(os.environ.get("MODELPLANE_CACHE") or Path.home() / ".cache" / "modelplane") / "azurite"
ACCOUNT = "teamstate"
CONTAINER = "state"
BACKEND_URL = f"azblob://{CONTAINER}"
TEAM_PASSPHRASE = "the-teams-passphrase"
ONE_MODEL = "models:\n  ridge: {path: model.pkl, framework: scikit-learn}\n"
TWO_MODELS = ONE_MODEL + "  ridge2: {path: model.pkl, framework: scikit-learn}\n"


def azurite_blob() -> Path:
    found = sorted(AZURITE_ROOT.glob("*/node_modules/.bin/azurite-blob"))
    assert found, f"Azurite is not installed under {AZURITE_ROOT}: run scripts/bootstrap-azurite (make test does)"
    return found[-1]


@dataclass
class Azurite:
    port: int
    key: str = field(repr=False)
    log: Path

    def storage_env(self) -> dict[str, str]:
        """How Pulumi's azblob backend reaches this emulator instead of Azure."""
        return {
            "AZURE_STORAGE_ACCOUNT": ACCOUNT,
            "AZURE_STORAGE_KEY": self.key,
            "AZURE_STORAGE_DOMAIN": f"127.0.0.1:{self.port}",
            "AZURE_STORAGE_PROTOCOL": "http",
            "AZURE_STORAGE_IS_LOCAL_EMULATOR": "true",
        }

    def container(self) -> ContainerClient:
        endpoint = f"http://127.0.0.1:{self.port}/{ACCOUNT}"
        connection = f"AccountName={ACCOUNT};AccountKey={self.key};BlobEndpoint={endpoint};"
        return BlobServiceClient.from_connection_string(connection).get_container_client(CONTAINER)

    def blob(self, name: str) -> bytes:
        return bytes(self.container().download_blob(name).readall())

    def names(self, prefix: str) -> list[str]:
        return [blob.name for blob in self.container().list_blobs(name_starts_with=prefix)]


def _wait_listening(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, f"Azurite exited: {log.read_text()[-2000:]}"
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise AssertionError(f"Azurite did not listen on 127.0.0.1:{port} in 30 s: {log.read_text()[-2000:]}")


@pytest.fixture(scope="module")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    folder = tmp_path_factory.mktemp("azurite")
    emulator = Azurite(free_port(), base64.b64encode(os.urandom(32)).decode(), folder / "azurite.log")
    command = [str(azurite_blob()), "--blobHost", "127.0.0.1", "--blobPort", str(emulator.port)]
    # In memory, no telemetry (it would call out to Application Insights), the test's own account.
    command += ["--inMemoryPersistence", "--disableTelemetry", "--skipApiVersionCheck"]
    env = {**os.environ, "AZURITE_ACCOUNTS": f"{ACCOUNT}:{emulator.key}"}
    with emulator.log.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=folder)
    try:
        _wait_listening(emulator.port, process, emulator.log)
        emulator.container().create_container()
        yield emulator
    finally:
        process.terminate()
        process.wait(timeout=30)


@dataclass
class Checkout:
    """One teammate's working copy: its stack file, model and local state folder."""

    folder: Path
    stack: str
    env: dict[str, str] = field(repr=False)  # holds the storage key and the team's passphrase

    @property
    def file(self) -> Path:
        return self.folder / f"{self.stack}.yaml"

    def declare(self, text: str) -> None:
        self.file.write_text(text)

    def cli(self, command: str, *args: str) -> subprocess.CompletedProcess[str]:
        line = [str(venv_bin() / "modelplane"), "--backend-url", BACKEND_URL, command, "--file", str(self.file)]
        return subprocess.run([*line, *args], capture_output=True, text=True, env=self.env, timeout=600)

    def plan(self) -> dict[str, object]:
        result = self.cli("plan", "--format", "json")
        assert result.returncode == 0, result.stderr[-3000:]
        return dict(json.loads(result.stdout))


def _checkout(root: Path, name: str, stack: str, azurite: Azurite) -> Checkout:
    folder = root / name
    (folder / ".modelplane").mkdir(parents=True)
    (folder / ".modelplane" / "passphrase").write_text(f"{name}-local-passphrase\n")
    shutil.copy(MODEL, folder / "model.pkl")
    env = {**os.environ, **azurite.storage_env(), "MODELPLANE_STATE": str(folder / ".modelplane")}
    env["PULUMI_CONFIG_PASSPHRASE"] = TEAM_PASSPHRASE
    for variable in ("PULUMI_BACKEND_URL", "PULUMI_CONFIG_PASSPHRASE_FILE"):
        env.pop(variable, None)
    checkout = Checkout(folder, stack, env)
    checkout.declare(ONE_MODEL)
    return checkout


@dataclass
class Team:
    alice: Checkout
    bob: Checkout
    azurite: Azurite

    @property
    def state_blob(self) -> str:
        return f".pulumi/stacks/modelplane/{self.alice.stack}.json"


@pytest.fixture(scope="module")
def team(azurite: Azurite, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Team]:
    root = tmp_path_factory.mktemp("team")
    stack = f"team{free_port()}"
    shared = Team(_checkout(root, "alice", stack, azurite), _checkout(root, "bob", stack, azurite), azurite)
    result = shared.alice.cli("up", "--yes")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    yield shared
    shared.alice.cli("destroy", "--yes")
    (PROJECT_ROOT / f"Pulumi.{stack}.yaml").unlink(missing_ok=True)


def _ops(plan: dict[str, object]) -> dict[str, str]:
    resources = plan["resources"]
    assert isinstance(resources, list)
    return {str(r["name"]): str(r["op"]) for r in resources if r["op"] != "same"}


def test_two_checkouts_share_one_stack_in_blob_storage(team: Team) -> None:
    checkpoint = json.loads(team.azurite.blob(team.state_blob))
    resources = [r["urn"] for r in checkpoint["checkpoint"]["latest"]["resources"]]
    assert any(urn.endswith("::model-ridge-store") for urn in resources), resources
    assert not (team.alice.folder / ".modelplane" / "state" / ".pulumi" / "stacks").exists(), "state stayed local"

    # Bob, with the same declaration, plans against Alice's stack: nothing to create. His model store
    # is his checkout's own folder, so the stored copy moves there.
    assert _ops(team.bob.plan()) == {"model-ridge-store": "replace"}
    team.bob.declare(TWO_MODELS)
    result = team.bob.cli("up", "--yes")
    assert result.returncode == 0 and "2 create, 1 replace" in result.stdout, result.stdout[-2000:]
    # Alice's declaration is now behind the shared stack: her plan would remove Bob's model.
    assert _ops(team.alice.plan()) == {"model-ridge2-store": "delete", "model-ridge-store": "replace"}
    team.alice.declare(TWO_MODELS)
    result = team.alice.cli("up", "--yes")
    assert result.returncode == 0, result.stderr[-2000:]


def test_a_checkout_without_the_teams_passphrase_is_told_so(team: Team) -> None:
    outsider = Checkout(team.bob.folder, team.bob.stack, {**team.bob.env})
    del outsider.env["PULUMI_CONFIG_PASSPHRASE"]
    before = team.azurite.blob(team.state_blob)
    result = outsider.cli("up", "--yes")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    own_file = team.bob.folder / ".modelplane" / "passphrase"
    assert f"the passphrase from {own_file} does not open stack {team.bob.stack}'s secrets" in result.stderr
    assert team.azurite.blob(team.state_blob) == before


def _held_lock(azurite: Azurite, stack: str, seconds: float = 120) -> dict[str, object]:
    """The lock an `up` takes in the bucket, once it appears."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        locks = azurite.names(f".pulumi/locks/organization/modelplane/{stack}/")
        if locks:
            return dict(json.loads(azurite.blob(locks[0])))
        time.sleep(0.05)
    raise AssertionError(f"no lock appeared in {seconds} s")


def test_a_second_up_while_one_runs_is_refused_naming_its_holder(team: Team) -> None:
    team.alice.declare(ONE_MODEL)
    team.bob.declare(TWO_MODELS + "  ridge3: {path: model.pkl, framework: scikit-learn}\n")
    alice = subprocess.Popen(
        [str(venv_bin() / "modelplane"), "--backend-url", BACKEND_URL, "up", "--file", str(team.alice.file), "--yes"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=team.alice.env,
    )
    lock = _held_lock(team.azurite, team.alice.stack)
    holder = int(str(lock["pid"]))
    # Alice's engine holds the lock, stopped mid-update, while Bob tries his own.
    os.kill(holder, signal.SIGSTOP)
    try:
        before = team.azurite.blob(team.state_blob)
        refused = team.bob.cli("up", "--yes")
        after = team.azurite.blob(team.state_blob)
    finally:
        os.kill(holder, signal.SIGCONT)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    who = f"is locked by {lock['username']}@{lock['hostname']}, pid {holder}, since "
    assert f"stack {team.bob.stack} {who}" in refused.stderr, refused.stderr
    assert after == before, "the refused update wrote to the state"
    output, _ = alice.communicate(timeout=300)
    assert alice.returncode == 0, output[-2000:]
    assert not team.azurite.names(f".pulumi/locks/organization/modelplane/{team.alice.stack}/")
    # Alice's update is what the state holds; Bob's, run again, then applies on top of it.
    assert _ops(team.alice.plan()) == {}
    result = team.bob.cli("up", "--yes")
    assert result.returncode == 0, result.stderr[-2000:]
