"""Modelplane's benchmarks, each side by side with its baseline in one run (`make bench`).

1. serving: the seed's Ridge model served by the bare azureml-inference-server-http (its defaults)
   and by a Modelplane image (key gate on, workers tuned), both in containers here, loaded in turn
   by wrk at concurrency 1, 16 and 64; plus the raw run() rate in-process, as the ceiling, and the
   Modelplane image with its Prometheus metrics off, for what the metrics cost.
2. plan: offline plans of generated stacks with 10, 50, 100 and 500 endpoints (time, peak memory).
3. engine: a no-op preview of the local stack against a no-op preview of an empty program.
4. rebuild: cold image build, rebuild after a model-only change, after an entry-script change.
5. bootstrap: cold and warm runs, from the bootstrap's own history (`--cold-bootstrap` makes one).
6. updates: a model update and a blue→green shift of a local endpoint under load (bench/updates.py).
7. batch: `modelplane batch run` over 10,000 rows against the entry script in-process (bench/batch.py).
8. crashes, crashes-kubernetes, daemon: killed runs and a restarted Docker daemon (bench/crashes.py).
9. hostile: valid requests/s after hostile input, against an untouched twin endpoint (bench/hostile.py).

Writes bench/results/<time>.json and latest.json (sections not rerun keep their last figures),
docs/performance.md (tables) and docs/plan-growth.png; prints each target as met or missed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import docker
import psutil
import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import batch, crashes, hostile, updates  # noqa: E402
from bench.wrk import SAMPLE, wrk  # noqa: E402
from modelplane.dockerfile import ImageRecipe, ModelFiles, write_context  # noqa: E402
from modelplane.engine import EngineSettings, pulumi_command, venv_bin  # noqa: E402

RESULTS = ROOT / "bench" / "results"
EXAMPLE = ROOT / "examples" / "sklearn-regression"
KEY = "bench-key"


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


# --- helpers --------------------------------------------------------------------------------------


def build_image(context: Path, tag: str, nocache: bool = False) -> float:
    started = time.perf_counter()
    docker.from_env(timeout=1200).images.build(path=str(context), tag=tag, rm=True, nocache=nocache)
    return time.perf_counter() - started


def recipe(example: Path) -> ImageRecipe:
    # The model file, as the stacks declare it (a folder would keep its name in the image).
    model = example / "model" / "sklearn_regression_model.pkl"
    from modelplane.content import model_version

    return ImageRecipe(
        entry_script=example / "score.py",
        source_directory=None,
        conda_file=example / "myenv.yml",
        pip_requirements=None,
        extra_docker_file_steps=None,
        base_image="modelplane/base:bookworm-py3",
        models=(ModelFiles("diabetes-ridge", model_version(model), model),),
    )


def wait_ready(url: str, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} never became ready")


def ratio(a: float, b: float) -> float:
    return round(a / b, 3) if b else float("nan")


# --- 1. serving -----------------------------------------------------------------------------------


def serving(seconds: int, repeats: int = 5) -> dict[str, Any]:
    client = docker.from_env()
    with tempfile.TemporaryDirectory() as folder:
        context = Path(folder) / "context"
        digest = write_context(recipe(EXAMPLE), context)
        tag = f"modelplane/bench-serving:{digest[:12]}"
        log(f"serving: building {tag}")
        build_image(context, tag)
    containers = {
        # The bare server with its defaults (one worker), straight from the same image.
        "bare": client.containers.run(
            tag,
            ["azmlinfsrv", "--entry_script", "/var/azureml-app/score.py", "--port", "5001"],
            detach=True,
            ports={"5001/tcp": ("127.0.0.1", None)},
            nano_cpus=2_000_000_000,
        ),
        "modelplane": client.containers.run(
            tag,
            detach=True,
            ports={"5001/tcp": ("127.0.0.1", None)},
            nano_cpus=2_000_000_000,
            environment={"MODELPLANE_PRIMARY_KEY": KEY, "MODELPLANE_SECONDARY_KEY": KEY + "2"},
        ),
        # The same, without the metrics middleware and port: what the metrics cost.
        "no-metrics": client.containers.run(
            tag,
            detach=True,
            ports={"5001/tcp": ("127.0.0.1", None)},
            nano_cpus=2_000_000_000,
            environment={
                "MODELPLANE_PRIMARY_KEY": KEY,
                "MODELPLANE_SECONDARY_KEY": KEY + "2",
                "MODELPLANE_METRICS_PORT": "0",
            },
        ),
    }
    results: dict[str, Any] = {"concurrency": {}}
    try:
        urls = {}
        for name, container in containers.items():
            container.reload()
            port = container.attrs["NetworkSettings"]["Ports"]["5001/tcp"][0]["HostPort"]
            urls[name] = f"http://127.0.0.1:{port}"
            wait_ready(f"{urls[name]}/")
        results["published_ports"] = published_port_path(urls.values())
        for concurrency in (1, 16, 64):
            # Alternate the two servers and keep the median of `repeats` runs each: this machine's
            # load generator shares its two cores with the server, and single runs vary by 2x.
            samples: dict[str, list[dict[str, float]]] = {name: [] for name in containers}
            for _ in range(repeats):
                for name in containers:
                    key = None if name == "bare" else KEY
                    wrk(f"{urls[name]}/score", concurrency, 1, key)  # warm up
                    samples[name].append(wrk(f"{urls[name]}/score", concurrency, seconds, key))
            row: dict[str, Any] = {}
            for name, runs in samples.items():
                row[name] = {metric: statistics.median(r[metric] for r in runs) for metric in runs[0]}
                row[name]["runs_rps"] = [round(r["rps"]) for r in runs]
                row[name]["runs_p99_ms"] = [round(r["p99_ms"], 1) for r in runs]
                log(
                    f"serving c={concurrency} {name}: {row[name]['rps']:.0f} req/s, p99 {row[name]['p99_ms']:.1f} ms "
                    f"(median of {repeats}: {[round(r['rps']) for r in runs]})"
                )
            row["rps_ratio"] = ratio(row["modelplane"]["rps"], row["bare"]["rps"])
            row["p99_ratio"] = ratio(row["modelplane"]["p99_ms"], row["bare"]["p99_ms"])
            row["metrics_rps_ratio"] = ratio(row["modelplane"]["rps"], row["no-metrics"]["rps"])
            results["concurrency"][str(concurrency)] = row
    finally:
        for container in containers.values():
            container.remove(force=True)
        client.images.remove(tag, force=True)
    results["run_loop_per_s"] = run_loop_rate()
    return results


def published_port_path(urls: Iterable[str]) -> str:
    """How the engine carries the published ports: its userland proxy (one docker-proxy process per
    port, relaying every connection) or the kernel's NAT (`dockerd --userland-proxy=false`, as
    scripts/bootstrap starts it). The proxy costs half a core here at 1,200 req/s."""
    ports = {url.rsplit(":", 1)[1] for url in urls}
    for process in psutil.process_iter(["name", "cmdline"]):
        cmdline = process.info["cmdline"] or []
        if process.info["name"] == "docker-proxy" and ports & set(cmdline):
            return "docker-proxy"
    return "kernel NAT"


def run_loop_rate(seconds: float = 3.0) -> float:
    """run() called in-process with the seed's decorators: the ceiling for any server."""
    code = textwrap.dedent(
        f"""
        import os, sys, time
        os.environ["AZUREML_MODEL_DIR"] = {str(EXAMPLE / "model")!r}
        sys.path.insert(0, {str(EXAMPLE)!r})
        import score
        score.init()
        calls, start = 0, time.perf_counter()
        while time.perf_counter() - start < {seconds}:
            score.run(data={SAMPLE["data"]!r}); calls += 1
        print(calls / (time.perf_counter() - start))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return round(float(out.stdout.strip().splitlines()[-1]), 1)


# --- 2. plan cost ---------------------------------------------------------------------------------


def measure(command: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """Wall seconds and peak resident MiB of a command (polled every 10 ms)."""
    started = time.perf_counter()
    process = psutil.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    peak = 0
    while process.poll() is None:
        try:
            peak = max(peak, process.memory_info().rss)
        except psutil.NoSuchProcess:
            break
        time.sleep(0.01)
    elapsed = time.perf_counter() - started
    if process.returncode != 0:
        raise RuntimeError(f"{command} failed: {process.stderr.read().decode()[-2000:]}")
    return round(elapsed, 3), round(peak / 2**20, 1)


def plan_cost() -> dict[str, Any]:
    rows = {}
    with tempfile.TemporaryDirectory() as folder:
        for count in (10, 50, 100, 500):
            endpoints = "".join(f"  ep{i}:\n    image: scorer\n    port: {10000 + i}\n" for i in range(count))
            stack = Path(folder) / f"n{count}.yaml"
            stack.write_text(
                f"models:\n  ridge:\n    path: {EXAMPLE}/model/sklearn_regression_model.pkl\nimages:\n  scorer:\n"
                f"    inference_config: {EXAMPLE}/inferenceconfig.json\n    source_directory: {EXAMPLE}\n"
                f"    models: [ridge]\nendpoints:\n{endpoints}"
            )
            command = [
                str(venv_bin() / "modelplane"),
                "plan",
                "--file",
                str(stack),
                "--offline",
                "--format",
                "json",
                "--out",
                os.devnull,
            ]
            samples = [measure(command) for _ in range(3)]
            seconds = statistics.median(s[0] for s in samples)
            memory = max(s[1] for s in samples)
            rows[str(count)] = {"seconds": seconds, "peak_mib": memory}
            log(f"plan: {count} endpoints in {seconds:.2f} s, peak {memory:.0f} MiB")
    return {"endpoints": rows, "growth_500_over_50": ratio(rows["500"]["seconds"], rows["50"]["seconds"])}


# --- 3. engine overhead ---------------------------------------------------------------------------


PREVIEW_PAIRS = 7


def timed(run: Callable[[], Any]) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def engine_overhead() -> dict[str, Any]:
    from pulumi import automation as auto

    from modelplane.automation import StackRef, on_stack, open_stack

    local = open_stack(StackRef.from_args("local", None))
    on_stack(local, lambda stack: stack.up(on_output=lambda _line: None))
    # The empty program lives in the project's (gitignored) state folder, so that the engine's work
    # around it — git metadata of the checkout, the same backend — is the same for both.
    with tempfile.TemporaryDirectory(dir=ROOT / ".modelplane", prefix="bench-empty-") as folder:
        project = Path(folder)
        (project / "Pulumi.yaml").write_text(
            f"name: empty\nruntime:\n  name: python\n  options:\n    virtualenv: {venv_bin().parent}\n"
        )
        (project / "__main__.py").write_text("import pulumi\n")
        (project / "state").mkdir()
        (project / "passphrase").write_text("bench\n")
        settings = EngineSettings(project / "state", project / "passphrase")
        empty = auto.create_stack(
            "empty",
            work_dir=str(project),
            opts=auto.LocalWorkspaceOptions(pulumi_command=pulumi_command(), env_vars=settings.env()),
        )
        empty.up(on_output=lambda _line: None)
        # Interleaved, so that a slow spell of this machine (docs/performance-findings.md) weighs on
        # both sides alike rather than on whichever ran during it.
        local_samples, empty_samples = [], []
        for _ in range(PREVIEW_PAIRS):
            local_samples.append(timed(lambda: local.preview(on_output=lambda _line: None)))
            empty_samples.append(timed(lambda: empty.preview(on_output=lambda _line: None)))
    local_seconds = round(statistics.median(local_samples), 3)
    empty_seconds = round(statistics.median(empty_samples), 3)
    log(f"engine: no-op preview local {local_seconds:.2f} s, empty program {empty_seconds:.2f} s")
    return {
        "local_preview_s": local_seconds,
        "empty_preview_s": empty_seconds,
        "ratio": ratio(local_seconds, empty_seconds),
        "local_runs_s": [round(x, 3) for x in local_samples],
        "empty_runs_s": [round(x, 3) for x in empty_samples],
    }


# --- 3b. the CLI's own cost ------------------------------------------------------------------------


CLI_ROUNDS = 5


def cli_overhead() -> dict[str, Any]:
    """The commands users run on a deployed local stack against bare `pulumi preview` with the policy
    pack, timed from outside as a user meets them, taken in turn round by round."""
    from modelplane.automation import StackRef, on_stack, open_stack
    from modelplane.engine import default_settings

    on_stack(open_stack(StackRef.from_args("local", None)), lambda stack: stack.up(on_output=lambda _line: None))
    env = {**os.environ, **default_settings().env()}
    policy = ["--policy-pack", str(ROOT / "policies"), "--policy-pack-config", str(ROOT / "policies/config/local.json")]
    commands = {
        "pulumi preview --policy-pack": [str(venv_bin() / "pulumi"), "preview", "--stack", "local", *policy],
        "modelplane preview": [str(venv_bin() / "modelplane"), "preview", "--stack", "local"],
        "modelplane plan": [str(venv_bin() / "modelplane"), "plan", "--stack", "local"],
        "modelplane up (no-op)": [str(venv_bin() / "modelplane"), "up", "--stack", "local", "--yes"],
    }
    samples: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(CLI_ROUNDS):
        for name, command in commands.items():
            started = time.perf_counter()
            subprocess.run(command, cwd=ROOT, env=env, capture_output=True, check=True)
            samples[name].append(time.perf_counter() - started)
    medians = {name: round(statistics.median(runs), 3) for name, runs in samples.items()}
    base = medians["pulumi preview --policy-pack"]
    log("cli: " + ", ".join(f"{name} {seconds:.2f} s" for name, seconds in medians.items()))
    return {
        "seconds": medians,
        "ratios": {name: ratio(seconds, base) for name, seconds in medians.items()},
        "runs_s": {name: [round(x, 3) for x in runs] for name, runs in samples.items()},
    }


# --- 4. rebuild -----------------------------------------------------------------------------------


def rebuild() -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        example = Path(folder) / "example"
        shutil.copytree(EXAMPLE, example)
        context = Path(folder) / "context"
        tags = []

        def build(label: str, nocache: bool = False) -> float:
            digest = write_context(recipe(example), context)
            tag = f"modelplane/bench-rebuild:{digest[:12]}"
            tags.append(tag)
            seconds = build_image(context, tag, nocache=nocache)
            log(f"rebuild: {label} {seconds:.1f} s")
            return round(seconds, 2)

        cold = build("cold (no cache)", nocache=True)
        model = example / "model" / "sklearn_regression_model.pkl"
        model.write_bytes(model.read_bytes() + b"\n")  # a new model version: other bytes
        model_only = build("model-only change")
        script = example / "score.py"
        script.write_text(script.read_text() + "\n# a changed entry script\n")
        entry_script = build("entry-script change")
        for tag in tags:
            docker.from_env().images.remove(tag, force=True)
    return {
        "cold_s": cold,
        "model_only_s": model_only,
        "entry_script_s": entry_script,
        "model_only_share": ratio(model_only, cold),
        "entry_script_share": ratio(entry_script, cold),
    }


# --- 5. bootstrap ---------------------------------------------------------------------------------


def _history(cache: Path, name: str = "bootstrap-history.tsv") -> list[list[str]]:
    history = cache / name
    return [line.split("\t") for line in history.read_text().splitlines()] if history.exists() else []


def _last_run_s(cache: Path, name: str) -> float:
    """The duration of the last run recorded in a bootstrap history file (seconds)."""
    return float(_history(cache, name)[-1][1])


def bootstrap(cold: bool) -> dict[str, Any]:
    """Cold (only with --cold-bootstrap): the bootstraps of a fresh clone into empty caches (their own Go
    caches, Pulumi home and base image tag); warm: the project's own bootstraps, everything cached. Both
    read from the bootstraps' histories. A run that rebuilt something with Go's build cache warm is
    neither, so without --cold-bootstrap no cold figure is taken (the report keeps the last one)."""
    cache = Path(os.environ.get("MODELPLANE_CACHE", Path.home() / ".cache" / "modelplane"))
    cold_s: float | None = None
    kube_cold: float | None = None
    if cold:
        with tempfile.TemporaryDirectory() as folder:
            log("bootstrap: cold run of a fresh clone into empty caches (minutes)")
            clone, cold_cache = Path(folder) / "repo", Path(folder) / "cache"
            subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
            env = {
                **os.environ,
                "MODELPLANE_CACHE": str(cold_cache),
                "GOMODCACHE": f"{folder}/gomod",
                "GOCACHE": f"{folder}/gocache",
                "MODELPLANE_BASE_IMAGE": "modelplane/base:bench-cold",
                "PIP_NO_CACHE_DIR": "1",
                "UV_NO_CACHE": "1",
            }
            try:
                subprocess.run([str(clone / "scripts" / "bootstrap")], env=env, check=True)
                cold_s = _last_run_s(cold_cache, "bootstrap-history.tsv")
                log("bootstrap: cold run of scripts/bootstrap-kubernetes (about 13 minutes)")
                kube_env = {**env, "PULUMI_HOME": f"{folder}/pulumi-home"}
                subprocess.run([str(clone / "scripts" / "bootstrap-kubernetes")], env=kube_env, check=True)
                kube_cold = _last_run_s(cold_cache, "bootstrap-kubernetes-history.tsv")
            finally:
                subprocess.run(["docker", "rmi", "-f", "modelplane/base:bench-cold"], capture_output=True)
                subprocess.run(["chmod", "-R", "u+w", folder], capture_output=True)
    subprocess.run([str(ROOT / "scripts" / "bootstrap")], check=True, capture_output=True)
    warm_s = _last_run_s(cache, "bootstrap-history.tsv")
    log(f"bootstrap: cold {cold_s if cold_s is not None else 'not run'} s, warm {warm_s} s")
    subprocess.run([str(ROOT / "scripts" / "bootstrap-kubernetes")], check=True, capture_output=True)
    kube = {"cold_s": kube_cold, "warm_s": _last_run_s(cache, "bootstrap-kubernetes-history.tsv")}
    log(f"bootstrap-kubernetes: cold {kube_cold if kube_cold is not None else 'not run'} s, warm {kube['warm_s']} s")
    return {"cold_s": cold_s, "warm_s": warm_s, "kubernetes": kube}


# --- report ---------------------------------------------------------------------------------------


def targets(results: dict[str, Any]) -> list[tuple[str, str, bool | None]]:
    checks: list[tuple[str, str, bool | None]] = []
    if "serving" in results:
        rows = results["serving"]["concurrency"]
        for c, row in rows.items():
            checks.append(
                (f"serving c={c}: req/s with auth >= 1.0x bare", f"{row['rps_ratio']}x", row["rps_ratio"] >= 1.0)
            )
            checks.append((f"serving c={c}: p99 <= 1.1x bare", f"{row['p99_ratio']}x", row["p99_ratio"] <= 1.1))
        checks.append(
            ("serving c=16: tuned >= 1.6x default", f"{rows['16']['rps_ratio']}x", rows["16"]["rps_ratio"] >= 1.6)
        )
        if "metrics_rps_ratio" in rows["16"]:
            kept = rows["16"]["metrics_rps_ratio"]
            checks.append(("serving c=16: metrics cost <= 5% of req/s", f"{kept}x of without", kept >= 0.95))
    if "plan" in results:
        plan = results["plan"]
        t500 = plan["endpoints"]["500"]["seconds"]
        checks.append(("offline plan of 500 endpoints <= 5 s", f"{t500} s", t500 <= 5))
        checks.append(
            ("plan growth t(500)/t(50) <= 12", f"{plan['growth_500_over_50']}", plan["growth_500_over_50"] <= 12)
        )
    if "engine" in results:
        checks.append(
            ("no-op preview <= 1.5x empty program", f"{results['engine']['ratio']}x", results["engine"]["ratio"] <= 1.5)
        )
    if "cli" in results:
        cli = results["cli"]["ratios"]
        for name, limit in (("modelplane preview", 1.3), ("modelplane plan", 1.3), ("modelplane up (no-op)", 1.5)):
            checks.append((f"{name} <= {limit}x pulumi preview --policy-pack", f"{cli[name]}x", cli[name] <= limit))
    if "rebuild" in results:
        share = results["rebuild"]["model_only_share"]
        checks.append(("model-only rebuild <= 15% of cold", f"{share * 100:.1f}%", share <= 0.15))
    if "bootstrap" in results and results["bootstrap"]["cold_s"] is not None:
        boot = results["bootstrap"]
        checks.append(("bootstrap cold <= 40 min", f"{boot['cold_s']} s", boot["cold_s"] <= 2400))
        checks.append(("bootstrap warm <= 60 s", f"{boot['warm_s']} s", (boot["warm_s"] or 0) <= 60))
    if "updates" in results:
        checks += updates.target_checks(results["updates"])
    if "batch" in results:
        checks += batch.target_checks(results["batch"])
    if "crashes" in results or "crashes-kubernetes" in results:
        checks += crashes.target_checks((results.get("crashes"), results.get("crashes-kubernetes")))
    if "daemon" in results:
        checks += crashes.daemon_target_checks(results["daemon"])
    if "hostile" in results:
        checks += hostile.target_checks(results["hostile"])
    return checks


def markdown(results: dict[str, Any]) -> str:
    lines = [f"Measured {results['when']} on {results['machine']}.", ""]
    if "serving" in results:
        lines += [
            "### Serving (seed's Ridge model; wrk, POST, 2 CPUs per container)",
            "",
            f"Published ports through: {results['serving'].get('published_ports', 'docker-proxy')}.",
            "",
            "| concurrency | bare req/s | modelplane req/s | ratio | bare p50 / p99 ms | modelplane p50 / p99 ms"
            " | without metrics req/s | metrics cost |",
            "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for c, row in results["serving"]["concurrency"].items():
            b, m = row["bare"], row["modelplane"]
            off = row.get("no-metrics")
            off_rps = f"{off['rps']:.0f}" if off else "-"
            cost = f"{(1 - row['metrics_rps_ratio']) * 100:.1f}% of req/s" if off else "not measured"
            lines.append(
                f"| {c} | {b['rps']:.0f} | {m['rps']:.0f} | {row['rps_ratio']}x | "
                f"{b['p50_ms']:.1f} / {b['p99_ms']:.1f} | {m['p50_ms']:.1f} / {m['p99_ms']:.1f} | {off_rps} | {cost} |"
            )
        lines += ["", f"run() in-process (the ceiling): {results['serving']['run_loop_per_s']:.0f} calls/s.", ""]
        # The single runs behind each median: this VM has slow spells (docs/performance-findings.md).
        lines += ["| concurrency | server | req/s of each run | p99 ms of each run |", "| ---: | --- | --- | --- |"]
        for c, row in results["serving"]["concurrency"].items():
            for name in ("bare", "modelplane", "no-metrics"):
                runs = row.get(name) or {}
                if "runs_rps" in runs:
                    rps = " / ".join(str(v) for v in runs["runs_rps"])
                    p99 = " / ".join(str(v) for v in runs["runs_p99_ms"])
                    lines.append(f"| {c} | {name} | {rps} | {p99} |")
        lines.append("")
    if "plan" in results:
        lines += ["### Offline plan cost", "", "| endpoints | seconds | peak MiB |", "| ---: | ---: | ---: |"]
        lines += [f"| {n} | {r['seconds']} | {r['peak_mib']} |" for n, r in results["plan"]["endpoints"].items()]
        lines += [
            "",
            f"Growth t(500)/t(50): {results['plan']['growth_500_over_50']}.",
            "",
            "![plan growth](plan-growth.png)",
            "",
        ]
    if "engine" in results:
        e = results["engine"]
        lines += [
            f"### Engine overhead (median of {len(e['local_runs_s'])} no-op previews each, taken in turn)",
            "",
            f"local stack {e['local_preview_s']} s, empty program {e['empty_preview_s']} s: {e['ratio']}x.",
            "",
            "| run | " + " | ".join(str(i + 1) for i in range(len(e["local_runs_s"]))) + " |",
            "|---|" + "---|" * len(e["local_runs_s"]),
            "| local stack (s) | " + " | ".join(str(x) for x in e["local_runs_s"]) + " |",
            "| empty program (s) | " + " | ".join(str(x) for x in e["empty_runs_s"]) + " |",
            "",
        ]
    if "cli" in results:
        cli = results["cli"]
        lines += [
            f"### The CLI's own cost (a deployed local stack, median of {CLI_ROUNDS} runs each, taken in turn)",
            "",
            "| command | seconds | vs `pulumi preview --policy-pack` | runs (s) |",
            "| --- | ---: | ---: | --- |",
        ]
        lines += [
            f"| `{name}` | {seconds} | {cli['ratios'][name]}x | {', '.join(str(x) for x in cli['runs_s'][name])} |"
            for name, seconds in cli["seconds"].items()
        ]
        lines.append("")
    if "rebuild" in results:
        r = results["rebuild"]
        lines += [
            "### Image rebuilds",
            "",
            "| build | seconds | share of cold |",
            "| --- | ---: | ---: |",
            f"| cold (no cache) | {r['cold_s']} | 100% |",
            f"| model-only change | {r['model_only_s']} | {r['model_only_share'] * 100:.1f}% |",
            f"| entry-script change | {r['entry_script_s']} | {r['entry_script_share'] * 100:.1f}% |",
            "",
        ]
    if "bootstrap" in results:
        b = results["bootstrap"]
        lines += [
            "### Bootstrap",
            "",
            f"cold {b['cold_s']} s, warm {b['warm_s']} s (from the bootstrap's history).",
            "",
        ]
        kube = b.get("kubernetes") or {}
        if kube.get("cold_s") is not None:
            lines += [
                f"`scripts/bootstrap-kubernetes` (control plane and pulumi-kubernetes, for the tests): "
                f"cold {kube['cold_s']} s, warm {kube['warm_s']} s.",
                "",
            ]
    if "updates" in results:
        lines += updates.markdown_lines(results["updates"])
    if "batch" in results:
        lines += batch.markdown_lines(results["batch"])
    if "crashes" in results or "crashes-kubernetes" in results:
        lines += crashes.markdown_lines((results.get("crashes"), results.get("crashes-kubernetes")))
    if "daemon" in results:
        lines += crashes.daemon_markdown_lines(results["daemon"])
    if "hostile" in results:
        lines += hostile.markdown_lines(results["hostile"])
    lines += ["### Targets", "", "| target | measured | |", "| --- | --- | --- |"]
    lines += [f"| {name} | {value} | {'met' if ok else 'MISSED'} |" for name, value, ok in targets(results)]
    return "\n".join(lines) + "\n"


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = results["plan"]["endpoints"]
    counts = [int(n) for n in rows]
    figure, seconds_axis = plt.subplots(figsize=(6, 4))
    seconds_axis.plot(counts, [rows[str(n)]["seconds"] for n in counts], "o-", label="seconds")
    seconds_axis.set_xlabel("endpoints in the stack")
    seconds_axis.set_ylabel("offline plan, seconds")
    memory_axis = seconds_axis.twinx()
    memory_axis.plot(counts, [rows[str(n)]["peak_mib"] for n in counts], "s--", color="tab:orange", label="peak MiB")
    memory_axis.set_ylabel("peak memory, MiB")
    figure.legend(loc="lower right", bbox_to_anchor=(0.88, 0.15))
    seconds_axis.set_title("modelplane plan --offline as stacks grow")
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sections_known = (
        "serving",
        "plan",
        "engine",
        "cli",
        "rebuild",
        "bootstrap",
        "updates",
        "batch",
        "crashes",
        "crashes-kubernetes",
        "daemon",
        "hostile",
    )
    parser.add_argument("--only", nargs="*", choices=sections_known)
    parser.add_argument("--seconds", type=int, default=5, help="wrk duration per run")
    parser.add_argument("--repeats", type=int, default=5, help="runs per server and concurrency (median kept)")
    parser.add_argument("--cold-bootstrap", action="store_true", help="also time a cold bootstrap (minutes)")
    args = parser.parse_args()
    chosen = args.only or list(sections_known)
    results: dict[str, Any] = {
        "when": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{os.cpu_count()} CPUs, {psutil.virtual_memory().total / 2**30:.0f} GiB",
    }
    sections: dict[str, Callable[[], Any]] = {
        "serving": lambda: serving(args.seconds, args.repeats),
        "plan": plan_cost,
        "engine": engine_overhead,
        "cli": cli_overhead,
        "rebuild": rebuild,
        "bootstrap": lambda: bootstrap(args.cold_bootstrap),
        "updates": updates.updates,
        "batch": batch.batch,
        "crashes": crashes.crashes,
        "crashes-kubernetes": crashes.crashes_on_kubernetes,
        "daemon": crashes.daemon,
        "hostile": lambda: hostile.hostile(args.seconds),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    latest = RESULTS / "latest.json"
    if latest.exists():
        # Sections not run this time keep their last figures (each says when it was measured).
        previous = json.loads(latest.read_text())
        results.update({k: v for k, v in previous.items() if k in sections})
    for name in chosen:
        log(f"{name} ...")
        previous_section = results.get(name) or {}
        results[name] = {**sections[name](), "measured": results["when"]}
        if name == "bootstrap":
            # A cold run is many minutes long and made only with --cold-bootstrap: keep the last ones.
            if results[name]["cold_s"] is None:
                results[name]["cold_s"] = previous_section.get("cold_s")
            if results[name]["kubernetes"]["cold_s"] is None:
                results[name]["kubernetes"]["cold_s"] = (previous_section.get("kubernetes") or {}).get("cold_s")
    latest.write_text(json.dumps(results, indent=2))
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    (RESULTS / f"{stamp}.json").write_text(json.dumps(results, indent=2))
    table = markdown(results)
    (RESULTS / "latest.md").write_text(table)
    if "plan" in results:
        plot(results, ROOT / "docs" / "plan-growth.png")
    if "updates" in results:
        updates.plot_shift(results, ROOT / "docs" / "traffic-shift.png")
    if "batch" in results:
        batch.plot(results, ROOT / "docs" / "batch-throughput.png")
    print(table)
    missing = [name for name in sections if name not in results]
    if missing:
        # The report is whole or untouched: a partial run on a machine without earlier results would
        # otherwise drop the sections it did not run.
        log(f"docs/performance.md left as it was (no figures here for {', '.join(missing)}); see {RESULTS}/latest.md")
        return 0
    performance = ROOT / "docs" / "performance.md"
    performance.write_text(
        "# Performance\n\nThe latest `make bench` (`bench/run.py`); ratios are measured in one run. What was tried,"
        " and what it changed, is in [performance-findings.md](performance-findings.md).\n\n" + table
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
