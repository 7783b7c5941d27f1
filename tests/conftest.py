"""Shared fixtures: a throwaway file backend for the real Pulumi engine, and a guard that keeps every
connection the tests make on this machine."""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import signal
import socket
import subprocess
import textwrap
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from pulumi import automation as auto

from modelplane.destinations import carried_here
from modelplane.engine import PROJECT_ROOT, EngineSettings, pulumi_command, venv_bin

DEPLOYMENT_HEADER = "azureml-model-deployment"
EXAMPLE = PROJECT_ROOT / "examples" / "sklearn-regression"


def destination_here(address: Any) -> bool:
    """Whether a socket address (host, port, …) is one this machine carries itself."""
    host = str(address[0])
    try:
        return carried_here(str(ipaddress.ip_address(host.split("%")[0])))
    except ValueError:
        return all(carried_here(str(info[4][0])) for info in socket.getaddrinfo(host, None))


def _interrupted(_signal: int, _frame: Any) -> None:
    raise KeyboardInterrupt


# Heaviest first: a file's rank is its heaviest test's (`make test` keeps this order with xdist's
# --no-loadscope-reorder, which would otherwise put the files with the most tests first).
FILE_WEIGHTS = ("kubernetes", "docker", "engine")


def _rank(item: pytest.Item) -> int:
    return next(
        (rank for rank, marker in enumerate(FILE_WEIGHTS) if item.get_closest_marker(marker)), len(FILE_WEIGHTS)
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Files in the order `--dist loadfile` hands them to workers: the Kubernetes module first (the
    longest, on a worker of its own at once), then the Docker files, then the engine's, then the quick
    ones, which fill both workers' last minutes instead of a long file starting last."""
    file_rank: dict[Path, int] = {}
    for item in items:
        file_rank[item.path] = min(file_rank.get(item.path, len(FILE_WEIGHTS)), _rank(item))
    items.sort(key=lambda item: file_rank[item.path])


def pytest_configure(config: pytest.Config) -> None:
    # `kill` (SIGTERM) ends a run as Ctrl-C does: fixtures tear down, so a local cluster's processes,
    # pods and rules do not outlive the run.
    signal.signal(signal.SIGTERM, _interrupted)


@pytest.fixture(autouse=True, scope="session")
def traffic_stays_here() -> Iterator[None]:
    """Every TCP/UDP connection from the test process goes to loopback or a network this machine
    carries (a Docker or cluster bridge); anything else fails the test before a packet leaves."""
    original_connect, original_connect_ex = socket.socket.connect, socket.socket.connect_ex

    def refuse_remote(sock: socket.socket, address: Any) -> None:
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not destination_here(address):
            raise AssertionError(f"a test tried to reach {address[0]}, which is not on this machine")

    def connect(sock: socket.socket, address: Any) -> None:
        refuse_remote(sock, address)
        original_connect(sock, address)

    def connect_ex(sock: socket.socket, address: Any) -> int:
        refuse_remote(sock, address)
        return original_connect_ex(sock, address)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", connect)
        patch.setattr(socket.socket, "connect_ex", connect_ex)
        yield


@pytest.fixture
def engine(tmp_path: Path) -> EngineSettings:
    """A file backend and passphrase of the test's own, so tests never touch the project's state."""
    state = tmp_path / "state"
    state.mkdir()
    passphrase = tmp_path / "passphrase"
    passphrase.write_text("test-passphrase-not-a-secret\n")
    return EngineSettings(state_dir=state, passphrase_file=passphrase)


ProgramStack = Callable[[str], auto.Stack]


@pytest.fixture
def program_stack(tmp_path: Path, engine: EngineSettings) -> Iterator[ProgramStack]:
    """Create a stack from Python program text in a project folder of its own; destroyed afterwards."""
    stacks: list[auto.Stack] = []

    def make(program: str) -> auto.Stack:
        project = tmp_path / f"project{len(stacks)}"
        project.mkdir()
        (project / "Pulumi.yaml").write_text(
            f"name: throwaway\nruntime:\n  name: python\n  options:\n    virtualenv: {venv_bin().parent}\n"
        )
        (project / "__main__.py").write_text(textwrap.dedent(program))
        stack = auto.create_stack(
            f"test{len(stacks)}",
            work_dir=str(project),
            opts=auto.LocalWorkspaceOptions(pulumi_command=pulumi_command(), env_vars=engine.env()),
        )
        stacks.append(stack)
        return stack

    yield make
    for stack in stacks:
        stack.destroy(on_output=lambda _line: None)


def modelplane(
    command: str, stack_file: Path | None, env: dict[str, str], *args: str, transcript: list[str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The project's CLI, as a user runs it: `modelplane COMMAND --file STACK ARGS…`; its output is
    appended to `transcript` (tests check it for secrets)."""
    where = ["--file", str(stack_file)] if stack_file is not None else []
    result = subprocess.run(
        [str(venv_bin() / "modelplane"), command, *where, *args], capture_output=True, text=True, env=env, timeout=900
    )
    if transcript is not None:
        transcript += [result.stdout, result.stderr]
    return result


def started_alone(command: str, stack_file: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """`modelplane COMMAND --file STACK --yes` in a process group of its own, to be killed whole."""
    line = [str(venv_bin() / "modelplane"), command, "--file", str(stack_file), "--yes"]
    return subprocess.Popen(line, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def kill_when(process: subprocess.Popen[bytes], moment: Callable[[], bool], seconds: float = 240) -> None:
    """SIGKILL the process's whole group (CLI, engine, language host, providers: what a cancelled CI job
    or the OOM killer leaves) as soon as `moment()` holds."""
    deadline = time.monotonic() + seconds
    while not moment():
        assert process.poll() is None, "the run ended before the moment to kill it"
        assert time.monotonic() < deadline, f"the moment to kill did not come in {seconds} s"
        time.sleep(0.1)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def checkpoint_file(state_folder: Path, stack: str) -> Path:
    """A stack's checkpoint in a file backend's folder."""
    return state_folder / ".pulumi" / "stacks" / "modelplane" / f"{stack}.json"


def latest_state(state_folder: Path, stack: str) -> dict[str, Any]:
    """The stack's last checkpoint: its resources and pending operations."""
    return dict(json.loads(checkpoint_file(state_folder, stack).read_text())["checkpoint"].get("latest") or {})


def succeeded(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, f"{result.args[1:]}: {result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def one_endpoint_stack(folder: Path, name: str, endpoint: str) -> tuple[Path, dict[str, str]]:
    """The seed's regression example (copied to `folder/example`, to be changed at will) behind local
    endpoint `web` (`endpoint`: its settings after `image: scorer`), with a state folder of its own:
    the stack file and the CLI's environment."""
    shutil.copytree(EXAMPLE, folder / "example", ignore=shutil.ignore_patterns("__pycache__"))
    stack = folder / f"{name}.yaml"
    stack.write_text(
        "models:\n  ridge: {path: example/model/sklearn_regression_model.pkl, framework: scikit-learn}\n"
        "images:\n  scorer: {inference_config: example/inferenceconfig.json, source_directory: example, "
        "models: [ridge]}\n"
        f"endpoints:\n  web: {{image: scorer, {endpoint}}}\n"
    )
    (folder / "work" / "state").mkdir(parents=True)
    (folder / "work" / "passphrase").write_text(f"{name}-passphrase-not-a-secret\n")
    env = {**os.environ, "MODELPLANE_STATE": str(folder / "work")}
    env.pop("PULUMI_CONFIG_PASSPHRASE", None)
    return stack, env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(port: int, seconds: float = 120) -> None:
    """Until the local endpoint on `port` answers /ready (its scoring server has loaded the model)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if requests.get(f"http://127.0.0.1:{port}/ready", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise AssertionError(f"the endpoint on port {port} never became ready")


class Load:
    """A load generator: `concurrency` threads calling the endpoint back to back (a new connection each
    time, as most clients do) until the block ends. Counts requests, failures (anything but 200, and
    connection errors) and the deployment that answered (`azureml-model-deployment`)."""

    def __init__(self, uri: str, key: str, body: Any, concurrency: int) -> None:
        # Encoded once: the generator's CPU goes to calling, so the endpoint, not the client, is loaded.
        self.uri, self.body, self.concurrency = uri, json.dumps(body).encode(), concurrency
        self.headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        self.requests = 0
        self.failures: list[str] = []
        self.answered_by: Counter[str] = Counter()
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(concurrency)]

    def _run(self) -> None:
        while not self.stop.is_set():
            deployment = ""
            try:
                response = requests.post(self.uri, data=self.body, headers=self.headers, timeout=30)
                failure = None if response.status_code == 200 else f"HTTP {response.status_code}: {response.text[:200]}"
                deployment = response.headers.get(DEPLOYMENT_HEADER, "")
            except requests.RequestException as error:
                failure = f"{type(error).__name__}: {error}"
            with self.lock:
                self.requests += 1
                self.answered_by[deployment] += 1
                if failure is not None:
                    self.failures.append(failure)

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=60)


def tally_answers(uri: str, key: str, body: Any, count: int, concurrency: int = 8) -> Counter[str]:
    """`count` requests on kept-alive connections: how many each deployment answered (non-200: by status)."""
    tally: Counter[str] = Counter()
    lock = threading.Lock()

    def worker(share: int) -> None:
        with requests.Session() as session:
            for _ in range(share):
                response = session.post(uri, json=body, headers={"Authorization": f"Bearer {key}"}, timeout=30)
                ok = response.status_code == 200
                label = response.headers.get(DEPLOYMENT_HEADER, "?") if ok else str(response.status_code)
                with lock:
                    tally[label] += 1

    threads = [threading.Thread(target=worker, args=(count // concurrency,)) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return tally
