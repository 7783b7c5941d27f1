"""Bench section `crashes`: `up` and `destroy` of a one-endpoint local stack killed with SIGKILL (the
whole process group) at random points, then run again. Each `up` trial changes the entry script (a new
image and a new scoring container), kills the run somewhere within an uninterrupted run's duration,
and checks that the next `up` converges: it succeeds, the state has no pending operations, every
container, image and network of the stack is one the state knows, a further `up` finds nothing to
change, and the endpoint answers. Each `destroy` trial deploys the stack, kills a `destroy`, and
checks that the next one leaves nothing. tests/test_faults.py kills at the worst points, once.

Bench section `daemon`: the Docker daemon restarted under a deployed stack (SIGTERM, then
`scripts/bootstrap` starts it again, as a host's service manager would): how long until the endpoint
answers again (its containers' restart policy), and whether `drift` reports anything after.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from statistics import median
from typing import Any

import docker
import requests

from bench.updates import ROOT, SAMPLE, bench_folder, free_port, state_env

UP_TRIALS = 10
DESTROY_TRIALS = 5
DAEMON_WAIT_S = 120.0
DAEMON_TARGET_S = 60.0


@dataclass
class CrashBench:
    folder: Path
    port: int

    @property
    def name(self) -> str:
        return f"crashbench{self.port}"

    @property
    def file(self) -> Path:
        return self.folder / f"{self.name}.yaml"

    def command(self, *args: str) -> list[str]:
        return [str(ROOT / ".venv" / "bin" / "modelplane"), args[0], "--file", str(self.file), *args[1:]]

    def run(self, *args: str) -> tuple[int, str, float]:
        """Exit code, output and seconds taken."""
        started = time.monotonic()
        result = subprocess.run(self.command(*args), capture_output=True, text=True, env=state_env(self.folder))
        return result.returncode, result.stdout + result.stderr, time.monotonic() - started

    def killed(self, command: str, after_s: float) -> None:
        process = subprocess.Popen(
            self.command(command, "--yes"),
            env=state_env(self.folder),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        time.sleep(after_s)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()

    def latest(self) -> dict[str, Any]:
        state = self.folder / "state" / ".pulumi" / "stacks" / "modelplane" / f"{self.name}.json"
        return dict(json.loads(state.read_text())["checkpoint"].get("latest") or {})

    def leftovers(self) -> list[str]:
        """The stack's containers, images and networks that the state does not know, and its pending operations."""
        latest = self.latest()
        known = {str(r.get("id")) for r in latest.get("resources") or []}
        client, label = docker.from_env(), {"label": f"modelplane.stack={self.name}"}
        found = [f"container {c.name}" for c in client.containers.list(all=True, filters=label) if c.id not in known]
        found += [f"network {n.name}" for n in client.networks.list(filters=label) if n.id not in known]
        tags = {
            tag for image in client.images.list() for tag in image.tags if tag.startswith(f"modelplane/{self.name}-")
        }
        found += [f"image {tag}" for tag in sorted(tags - known)]
        return found + [f"pending {op.get('type')}" for op in latest.get("pending_operations") or []]

    def key(self) -> str:
        code, output, _ = self.run("outputs", "--show-secrets")
        if code != 0:
            raise RuntimeError(f"modelplane outputs failed: {output[-2000:]}")
        return str(json.loads(output[output.index("{") :])["endpoint_keys"]["web"]["primary_key"])

    def answers(self, key: str) -> bool:
        try:
            response = requests.post(
                f"http://127.0.0.1:{self.port}/score",
                json=SAMPLE,
                headers={"Authorization": f"Bearer {key}"},
                timeout=30,
            )
        except requests.RequestException:
            return False
        return response.status_code == 200


@contextmanager
def deployed_bench() -> Iterator[CrashBench]:
    """The one-endpoint stack in a bench folder of its own, deployed, and destroyed after."""
    with bench_folder() as folder:
        bench = CrashBench(folder, free_port())
        _declare(bench)
        try:
            bench.run("up", "--yes")
            yield bench
        finally:
            bench.run("destroy", "--yes")
            (ROOT / f"Pulumi.{bench.name}.yaml").unlink(missing_ok=True)


def _declare(bench: CrashBench) -> None:
    bench.file.write_text(
        "models:\n  ridge: {path: example/model/sklearn_regression_model.pkl, framework: scikit-learn}\n"
        "images:\n  scorer: {inference_config: example/inferenceconfig.json, source_directory: example, "
        "models: [ridge]}\n"
        f"endpoints:\n  web: {{image: scorer, port: {bench.port}}}\n"
    )


def _new_version(bench: CrashBench, trial: int) -> None:
    with (bench.folder / "example" / "score.py").open("a") as score:
        score.write(f"# version {trial}\n")


def up_trial(bench: CrashBench, trial: int, window_s: float) -> dict[str, Any]:
    _new_version(bench, trial)
    kill_at = round(random.uniform(1.0, window_s), 1)
    bench.killed("up", kill_at)
    pending = [op.get("type") for op in bench.latest().get("pending_operations") or []]
    code, output, took = bench.run("up", "--yes")
    leftovers = bench.leftovers()
    if code != 0:
        leftovers.append("the next up failed: " + " | ".join(output.strip().splitlines()[-5:]))
    no_op, second, _ = bench.run("up", "--yes")
    if no_op != 0 or "no changes" not in second:
        leftovers.append("a further up changed: " + " | ".join(second.strip().splitlines()[-3:]))
    if code == 0 and not bench.answers(bench.key()):
        leftovers.append("the endpoint did not answer")
    return {
        "killed_at_s": kill_at,
        "pending": pending,
        "recovered": [line.removeprefix("modelplane: ") for line in output.splitlines() if "killed" in line],
        "next_up_s": round(took, 1),
        "converged": not leftovers,
        "leftovers": leftovers,
    }


def destroy_trial(bench: CrashBench, window_s: float) -> dict[str, Any]:
    bench.run("up", "--yes")
    kill_at = round(random.uniform(0.5, window_s), 1)
    bench.killed("destroy", kill_at)
    code, _, took = bench.run("destroy", "--yes")
    latest = bench.latest()
    leftovers = bench.leftovers() + [f"resource {r.get('urn')}" for r in latest.get("resources") or []]
    return {
        "killed_at_s": kill_at,
        "next_destroy_s": round(took, 1),
        "converged": code == 0 and not leftovers,
        "leftovers": leftovers,
    }


def crashes() -> dict[str, Any]:
    with deployed_bench() as bench:
        _new_version(bench, -1)
        _, _, up_window = bench.run("up", "--yes")  # how long an uninterrupted update takes
        ups = [up_trial(bench, trial, up_window) for trial in range(UP_TRIALS)]
        _, _, destroy_window = bench.run("destroy", "--yes")
        destroys = [destroy_trial(bench, max(destroy_window, 2.0)) for _ in range(DESTROY_TRIALS)]
    windows = {"up_window_s": round(up_window, 1), "destroy_window_s": round(destroy_window, 1)}
    return {**windows, "up": ups, "destroy": destroys}


def _stop_dockerd() -> None:
    (pid,) = (int(line) for line in subprocess.check_output(["pgrep", "-x", "dockerd"], text=True).split())
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + DAEMON_WAIT_S
    while Path(f"/proc/{pid}").exists():
        if time.monotonic() > deadline:
            raise RuntimeError(f"dockerd (pid {pid}) did not stop in {DAEMON_WAIT_S} s")
        time.sleep(0.2)


def daemon() -> dict[str, Any]:
    with deployed_bench() as bench:
        return daemon_restart(bench)


def daemon_restart(bench: CrashBench) -> dict[str, Any]:
    """Restart dockerd under the deployed stack: seconds until it answers, until the endpoint does, and drift after."""
    key = bench.key()
    _stop_dockerd()
    stopped = time.monotonic()
    subprocess.run([str(ROOT / "scripts" / "bootstrap")], check=True, capture_output=True)
    daemon_s = time.monotonic() - stopped
    answered = bench.answers(key)
    while not answered and time.monotonic() - stopped < DAEMON_WAIT_S:
        time.sleep(0.5)
        answered = bench.answers(key)
    answered_s = time.monotonic() - stopped
    code, output, _ = bench.run("drift")
    return {
        "daemon_s": round(daemon_s, 1),
        "answered_s": round(answered_s, 1) if answered else None,
        "drift_clean": code == 0,
        "drift": output.strip().splitlines()[-3:],
    }


def markdown_lines(section: dict[str, Any]) -> list[str]:
    rows = [
        f"| `up` #{n + 1} | {t['killed_at_s']} s | {', '.join(t['pending']) or 'none'} | {t['next_up_s']} s | "
        f"{'yes' if t['converged'] else 'NO: ' + '; '.join(t['leftovers'])} |"
        for n, t in enumerate(section["up"])
    ]
    rows += [
        f"| `destroy` #{n + 1} | {t['killed_at_s']} s | | {t['next_destroy_s']} s | "
        f"{'yes' if t['converged'] else 'NO: ' + '; '.join(t['leftovers'])} |"
        for n, t in enumerate(section["destroy"])
    ]
    recovery = round(median(t["next_up_s"] for t in section["up"]), 1)
    return [
        "### Runs killed with SIGKILL, then run again",
        "",
        f"A one-endpoint local stack; each `up` trial changes the entry script (an uninterrupted update took "
        f"{section['up_window_s']} s, a destroy {section['destroy_window_s']} s) and kills the run's whole process "
        f"group at a random point. Converged: the next run succeeds, nothing is pending, every container, image "
        f"and network of the stack is in the state, a further `up` finds no changes and the endpoint answers "
        f"(for `destroy`: nothing is left). Median next `up`: {recovery} s.",
        "",
        "| trial | killed after | left pending | next run took | converged |",
        "| --- | ---: | --- | ---: | --- |",
        *rows,
        "",
    ]


def daemon_markdown_lines(daemon: dict[str, Any]) -> list[str]:
    answered = f"{daemon['answered_s']} s" if daemon["answered_s"] is not None else f"not within {DAEMON_WAIT_S:.0f} s"
    drift = "reported nothing" if daemon["drift_clean"] else "reported drift: " + " ".join(daemon["drift"])
    return [
        f"The Docker daemon restarted under the deployed stack (SIGTERM, then started again): the daemon "
        f"answered after {daemon['daemon_s']} s, the endpoint after {answered} (its containers' `unless-stopped` "
        f"restart policy); `drift` then {drift}.",
        "",
    ]


def target_checks(section: dict[str, Any]) -> list[tuple[str, str, bool | None]]:
    checks: list[tuple[str, str, bool | None]] = []
    for kind in ("up", "destroy"):
        trials = section[kind]
        converged = sum(t["converged"] for t in trials)
        checks.append(
            (f"`{kind}` killed: the next run converges", f"{converged}/{len(trials)}", converged == len(trials))
        )
    return checks


def daemon_target_checks(daemon: dict[str, Any]) -> list[tuple[str, str, bool | None]]:
    answered = daemon["answered_s"]
    in_time = answered is not None and answered <= DAEMON_TARGET_S
    clean = daemon["drift_clean"]
    return [
        (f"Docker restarted: endpoint answers within {DAEMON_TARGET_S:.0f} s", f"{answered} s", in_time),
        ("Docker restarted: drift reports nothing", "nothing" if clean else "drift", clean),
    ]
