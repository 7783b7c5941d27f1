"""Bench section `crashes`: `up` and `destroy` of a one-endpoint local stack killed with SIGKILL (the
whole process group) at random points, then run again. Each `up` trial changes the entry script (a new
image and a new scoring container), kills the run somewhere within an uninterrupted run's duration,
and checks that the next `up` converges: it succeeds, the state has no pending operations, every
container, image and network of the stack is one the state knows, a further `up` finds nothing to
change, and the endpoint answers. Each `destroy` trial deploys the stack, kills a `destroy`, and
checks that the next one leaves nothing. tests/test_faults.py kills at the worst points, once.

The same on the AKS path (a local cluster with a real node): an endpoint whose second deployment comes
and goes with each trial (a Deployment, Service and autoscaler created or deleted, a new router
ConfigMap, the router rolled) besides the new entry script; converged also means every Kubernetes
object of the endpoint is one the state knows. tests/test_kubernetes.py kills at the worst point, once.

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
from typing import TYPE_CHECKING, Any

import docker
import requests

from bench.updates import ROOT, bench_folder, free_port, state_env
from bench.wrk import SAMPLE
from modelplane.kube_leftovers import ENDPOINT_KINDS, endpoint_objects

if TYPE_CHECKING:
    from modelplane.local_cluster import LocalCluster

UP_TRIALS = 10
DESTROY_TRIALS = 5
DAEMON_WAIT_S = 120.0
DAEMON_TARGET_S = 60.0


@dataclass
class CrashBench:
    folder: Path
    port: int
    cluster: LocalCluster | None = None
    """The local cluster of an AKS endpoint (None: a local endpoint on `port`)."""

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
        found += self.kube_leftovers(latest)
        return found + [f"pending {op.get('type')}" for op in latest.get("pending_operations") or []]

    def kube_leftovers(self, latest: dict[str, Any]) -> list[str]:
        """The endpoint's Kubernetes objects that the state does not know (by type and id)."""
        if self.cluster is None:
            return []
        known = {(str(r.get("type")), str(r.get("id"))) for r in latest.get("resources") or []}
        listed = self.cluster.get_json(ENDPOINT_KINDS, "-n", "default", "-l", "app.kubernetes.io/name=web")
        return [f"{kind} {id_}" for kind, id_ in sorted(endpoint_objects(listed) - known)]

    def key(self) -> str:
        code, output, _ = self.run("outputs", "--show-secrets")
        if code != 0:
            raise RuntimeError(f"modelplane outputs failed: {output[-2000:]}")
        return str(json.loads(output[output.index("{") :])["endpoint_keys"]["web"]["primary_key"])

    def uri(self) -> str:
        if self.cluster is None:
            return f"http://127.0.0.1:{self.port}/score"
        code, output, _ = self.run("outputs")
        return str(json.loads(output[output.index("{") :])["endpoints"]["web"]["scoring_uri"]) if code == 0 else ""

    def answers(self, key: str) -> bool:
        try:
            response = requests.post(
                self.uri(),
                json=SAMPLE,
                headers={"Authorization": f"Bearer {key}"},
                timeout=30,
            )
        except requests.RequestException:
            return False
        return response.status_code == 200


@contextmanager
def deployed_bench(folder: Path, cluster: LocalCluster | None = None) -> Iterator[CrashBench]:
    """The one-endpoint stack in `folder`, deployed, and destroyed after."""
    bench = CrashBench(folder, free_port(), cluster)
    _declare(bench, 0)
    try:
        bench.run("up", "--yes")
        yield bench
    finally:
        bench.run("destroy", "--yes")
        (ROOT / f"Pulumi.{bench.name}.yaml").unlink(missing_ok=True)


@contextmanager
def local_cluster(folder: Path) -> Iterator[LocalCluster]:
    from modelplane.local_cluster import LocalCluster

    cluster = LocalCluster(folder / "cluster", nodes=0, real_node=True, metrics_server=False)
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


def _declare(bench: CrashBench, trial: int) -> None:
    """The stack of a trial: a local endpoint; on a cluster, an endpoint whose deployment `green` is
    there on odd trials only."""
    head = (
        "models:\n  ridge: {path: example/model/sklearn_regression_model.pkl, framework: scikit-learn}\n"
        "images:\n  scorer: {inference_config: example/inferenceconfig.json, source_directory: example, "
        "models: [ridge]}\n"
    )
    if bench.cluster is None:
        bench.file.write_text(f"{head}endpoints:\n  web: {{image: scorer, port: {bench.port}}}\n")
        return
    kube = bench.cluster.kubeconfig
    green = trial % 2 == 1
    bench.file.write_text(
        f"{head}clusters:\n  bench:\n"
        f"    attach: {{kubeconfig: {kube}, registry: {kube.parent / 'registry.json'}, node_address: 127.0.0.1}}\n"
        "    service_type: NodePort\n"
        "endpoints:\n  web:\n    compute_type: aks\n    cluster: bench\n    cpu_cores: 0.25\n    memory_gb: 0.5\n"
        "    liveness_probe: {initial_delay_seconds: 10, period_seconds: 5}\n"
        f"    deployments: {{blue: {{image: scorer}}{', green: {image: scorer}' if green else ''}}}\n"
        f"    traffic: {{blue: {50 if green else 100}{', green: 50' if green else ''}}}\n"
    )


def _new_version(bench: CrashBench, trial: int) -> None:
    with (bench.folder / "example" / "score.py").open("a") as score:
        score.write(f"# version {trial}\n")
    _declare(bench, trial)


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


def trials(bench: CrashBench) -> dict[str, Any]:
    _new_version(bench, 1)
    _, _, up_window = bench.run("up", "--yes")  # how long an uninterrupted update takes
    ups = [up_trial(bench, trial, up_window) for trial in range(2, UP_TRIALS + 2)]
    _, _, destroy_window = bench.run("destroy", "--yes")
    destroys = [destroy_trial(bench, max(destroy_window, 2.0)) for _ in range(DESTROY_TRIALS)]
    windows = {"up_window_s": round(up_window, 1), "destroy_window_s": round(destroy_window, 1)}
    return {**windows, "up": ups, "destroy": destroys}


def crashes() -> dict[str, Any]:
    with bench_folder() as folder, deployed_bench(folder) as bench:
        return trials(bench)


def crashes_on_kubernetes() -> dict[str, Any]:
    """Bench section `crashes-kubernetes`: the same trials on the AKS path."""
    with bench_folder() as folder, local_cluster(folder) as cluster, deployed_bench(folder, cluster) as bench:
        return trials(bench)


def _stop_dockerd() -> None:
    (pid,) = (int(line) for line in subprocess.check_output(["pgrep", "-x", "dockerd"], text=True).split())
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + DAEMON_WAIT_S
    while Path(f"/proc/{pid}").exists():
        if time.monotonic() > deadline:
            raise RuntimeError(f"dockerd (pid {pid}) did not stop in {DAEMON_WAIT_S} s")
        time.sleep(0.2)


def daemon() -> dict[str, Any]:
    with bench_folder() as folder, deployed_bench(folder) as bench:
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


TARGETS = (
    ("local (Docker)", "a one-endpoint local stack"),
    ("AKS path (real node)", "an AKS endpoint with two deployments at most, on the local cluster's real node"),
)


Sections = tuple[dict[str, Any] | None, dict[str, Any] | None]
"""The trials of sections `crashes` and `crashes-kubernetes`, each when measured."""


def _by_target(sections: Sections) -> list[tuple[str, str, dict[str, Any]]]:
    """(target, what the stack is, its trials) of each measured section."""
    return [(target, stack, trials) for (target, stack), trials in zip(TARGETS, sections, strict=True) if trials]


def _rows(trials: dict[str, Any]) -> list[str]:
    rows = [
        f"| `up` #{n + 1} | {t['killed_at_s']} s | {', '.join(t['pending']) or 'none'} | {t['next_up_s']} s | "
        f"{'yes' if t['converged'] else 'NO: ' + '; '.join(t['leftovers'])} |"
        for n, t in enumerate(trials["up"])
    ]
    return rows + [
        f"| `destroy` #{n + 1} | {t['killed_at_s']} s | | {t['next_destroy_s']} s | "
        f"{'yes' if t['converged'] else 'NO: ' + '; '.join(t['leftovers'])} |"
        for n, t in enumerate(trials["destroy"])
    ]


def markdown_lines(sections: Sections) -> list[str]:
    lines = [
        "### Runs killed with SIGKILL, then run again",
        "",
        "Each `up` trial changes the entry script (on the AKS path it also adds or removes a second deployment "
        "behind the endpoint's router) and kills the run's whole process group at a random point within an "
        "uninterrupted run's duration. Converged: the next run succeeds, nothing is pending, every container, "
        "image and network of the stack (on the AKS path: every Deployment, Service, ConfigMap, Secret and "
        "autoscaler of the endpoint) is in the state, a further `up` finds no changes and the endpoint answers "
        "(for `destroy`: nothing is left).",
        "",
    ]
    for target, stack, trials in _by_target(sections):
        recovery = round(median(t["next_up_s"] for t in trials["up"]), 1)
        lines += [
            f"**{target}**, {stack}: an uninterrupted update took {trials['up_window_s']} s, a destroy "
            f"{trials['destroy_window_s']} s; median next `up` {recovery} s.",
            "",
            "| trial | killed after | left pending | next run took | converged |",
            "| --- | ---: | --- | ---: | --- |",
            *_rows(trials),
            "",
        ]
    return lines


def daemon_markdown_lines(daemon: dict[str, Any]) -> list[str]:
    answered = f"{daemon['answered_s']} s" if daemon["answered_s"] is not None else f"not within {DAEMON_WAIT_S:.0f} s"
    drift = "reported nothing" if daemon["drift_clean"] else "reported drift: " + " ".join(daemon["drift"])
    return [
        f"The Docker daemon restarted under the deployed stack (SIGTERM, then started again): the daemon "
        f"answered after {daemon['daemon_s']} s, the endpoint after {answered} (its containers' `unless-stopped` "
        f"restart policy); `drift` then {drift}.",
        "",
    ]


def target_checks(sections: Sections) -> list[tuple[str, str, bool | None]]:
    checks: list[tuple[str, str, bool | None]] = []
    for target, _, trials in _by_target(sections):
        for kind in ("up", "destroy"):
            converged = sum(t["converged"] for t in trials[kind])
            count = len(trials[kind])
            checks.append(
                (f"{target}, `{kind}` killed: the next run converges", f"{converged}/{count}", converged == count)
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
