"""`modelplane batch run`: a declared batch job over local input, in its scoring image on the local
Docker engine (the job itself is modelplane/runtime/batch.py, run inside the image).

The image is the one `up` builds for the job's `image` (the same content-addressed tag); it is built
here when missing. The input is mounted read-only, the output folder read-write, and the container
has no network. Progress lines come as the job prints them; the summary comes from the job's
`batch-summary.json`.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components.scoring_image import ScoringImageArgs, local_tag, recipe_for
from modelplane.content import content_digest, version_of
from modelplane.dockerfile import ModelFiles, write_context
from modelplane.engine import state_root
from modelplane.log_tail import telling_tail
from modelplane.providers.docker import ImageProvider, engine_client
from modelplane.spec import StackSpec
from modelplane.spec.schema import BatchSpec

INPUT_MOUNT = "/mnt/batch/input"
OUTPUT_MOUNT = "/mnt/batch/output"
SUMMARY_FILE = "batch-summary.json"
LOG_LINES = 30
ERRORS_SHOWN = 3


class BatchError(RuntimeError):
    """The job could not run, or failed: the message names the job, why, and the failing inputs."""


@dataclass(frozen=True)
class BatchResult:
    summary: dict[str, Any]
    output: Path


def job_of(spec: StackSpec, name: str) -> BatchSpec:
    if name not in spec.batch:
        declared = ", ".join(spec.batch) or "none"
        raise BatchError(f"no batch job '{name}' in {spec.source.name}; declared: {declared}")
    return spec.batch[name]


def batch_image(spec: StackSpec, job: BatchSpec) -> tuple[str, Path, str]:
    """The job's image tag (as `up` builds it), its build context (laid out now) and the context's digest."""
    image = spec.images[job.image]
    models = tuple(
        ModelFiles(
            name=m, version=version_of(content_digest(spec.models[m].local_path)), path=spec.models[m].local_path
        )
        for m in image.models
    )
    build_root = state_root() / "build" / spec.name
    args = ScoringImageArgs(image_name=job.image, spec=image, models=models, build_root=build_root)
    context = build_root / f"batch-{job.image}"
    digest = write_context(recipe_for(args), context)
    return local_tag(f"modelplane/{spec.name}", job.image, digest), context, digest


def ensure_image(image_name: str, built: tuple[str, Path, str], progress: Callable[[str], None]) -> str:
    """The job's image, built (with the labels `up` gives it) when the engine lacks it; its tag."""
    from docker import errors

    tag, context, digest = built
    try:
        engine_client().images.get(tag)
        return tag
    except errors.ImageNotFound:
        pass
    progress(f"batch: building {tag}")
    labels = {"modelplane.image": image_name, "modelplane.digest": digest}
    ImageProvider()._build({"context": str(context), "dockerfile": "Dockerfile", "tag": tag, "labels": labels})
    return tag


def resolve(spec: StackSpec, given: str | None, declared: str | None, default: Path | None) -> Path:
    """A path from the command line (relative to here), the stack (relative to its file), or the default."""
    if given is not None:
        return Path(given).resolve()
    if declared is not None:
        return (spec.source.parent / declared).resolve()
    if default is None:
        raise BatchError("give --input: the job declares no `input`")
    return default


def job_arguments(job: BatchSpec, input_path: Path) -> list[str]:
    """The job's settings as the in-image runner takes them."""
    inside = INPUT_MOUNT if input_path.is_dir() else f"{INPUT_MOUNT}/{input_path.name}"
    arguments = ["--input", inside, "--output", OUTPUT_MOUNT, "--output-action", job.output_action]
    arguments += ["--output-file-name", job.output_file_name, "--error-threshold", str(job.error_threshold)]
    arguments += ["--max-retries", str(job.max_retries), "--timeout", str(job.timeout)]
    if job.input_type is not None:
        arguments += ["--input-type", job.input_type]
    if job.mini_batch_bytes is not None:
        arguments += ["--mini-batch-bytes", str(job.mini_batch_bytes)]
    else:
        arguments += ["--mini-batch-size", str(job.mini_batch_size)]
    if job.max_concurrency_per_instance is not None:
        arguments += ["--workers", str(job.max_concurrency_per_instance)]
    return arguments


def run_batch(
    spec: StackSpec, name: str, given_input: str | None, given_output: str | None, progress: Callable[[str], None]
) -> BatchResult:
    job = job_of(spec, name)
    input_path = resolve(spec, given_input, job.input, None)
    if not input_path.exists():
        raise BatchError(f"batch {name}: input {input_path} does not exist")
    output = resolve(spec, given_output, job.output, state_root() / "batch" / spec.name / name)
    if output.suffix and not output.is_dir():
        # A file: the append_row output itself, in its folder.
        job = job.model_copy(update={"output_file_name": output.name})
        output = output.parent
    output.mkdir(parents=True, exist_ok=True)
    (output / SUMMARY_FILE).unlink(missing_ok=True)
    tag = ensure_image(job.image, batch_image(spec, job), progress)
    code, log = _run_container(spec, name, job, tag, input_path, output, progress)
    return BatchResult(_summary(name, output, code, log), output)


def _run_container(
    spec: StackSpec,
    name: str,
    job: BatchSpec,
    tag: str,
    input_path: Path,
    output: Path,
    progress: Callable[[str], None],
) -> tuple[int, str]:
    mounted = input_path if input_path.is_dir() else input_path.parent
    limits: dict[str, Any] = {}
    if job.cpu_cores is not None:
        limits["nano_cpus"] = int(job.cpu_cores * 1e9)
    if job.memory_gb is not None:
        limits["mem_limit"] = f"{int(job.memory_gb * 1024)}m"
    container = engine_client().containers.run(
        tag,
        ["python", "-m", "modelplane_runtime.batch", *job_arguments(job, input_path)],
        name=f"modelplane-{spec.name}-batch-{name}-{secrets.token_hex(3)}",
        detach=True,
        network_mode="none",
        user=f"{os.getuid()}:{os.getgid()}",
        environment={"HOME": "/tmp"},
        volumes={str(mounted): {"bind": INPUT_MOUNT, "mode": "ro"}, str(output): {"bind": OUTPUT_MOUNT, "mode": "rw"}},
        labels={"modelplane.stack": spec.name, "modelplane.batch": name},
        **limits,
    )
    try:
        lines: list[str] = []
        for chunk in container.logs(stream=True, follow=True):
            for line in chunk.decode(errors="replace").splitlines():
                lines.append(line)
                if line.startswith("batch: "):
                    progress(line)
        code = int(container.wait().get("StatusCode", 1))
        return code, "\n".join(lines)
    finally:
        container.remove(force=True)


def _summary(name: str, output: Path, code: int, log: str) -> dict[str, Any]:
    summary_file = output / SUMMARY_FILE
    if not summary_file.is_file():
        reason = "was killed (out of memory?)" if code == 137 else f"exited with code {code}"
        raise BatchError(
            f"batch {name}: the job's container {reason} before it finished:\n{telling_tail(log, LOG_LINES)}"
        )
    summary: dict[str, Any] = json.loads(summary_file.read_text(encoding="utf-8"))
    if summary.get("status") != "succeeded":
        failing = "; ".join(summary.get("failed_inputs") or [])
        errors = "\n".join(summary.get("errors", [])[:ERRORS_SHOWN])
        named = f"; failing: {failing}" if failing else ""
        raise BatchError(f"batch {name} failed: {summary.get('reason')}{named}\n{errors}".rstrip())
    return summary


def summary_line(name: str, result: BatchResult) -> str:
    summary = result.summary
    seconds = float(summary.get("seconds") or 0)
    rate = summary["succeeded"] / seconds if seconds else 0.0
    written = summary.get("output_file")
    where = result.output / Path(written).name if written else result.output
    return (
        f"batch {name}: {summary['succeeded']:,} succeeded, {summary['failed']:,} failed in"
        f" {summary['mini_batches']:,} mini-batches ({summary['retried_mini_batches']} retried),"
        f" {seconds:.1f} s, {rate:,.0f}/s on {summary['workers']} workers → {where}"
    )
