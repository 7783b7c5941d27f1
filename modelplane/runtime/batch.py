"""A batch scoring job in the scoring image, as Azure ML's ParallelRunStep runs one: the entry
script's `init()` once per worker process, then `run(mini_batch)` for each mini-batch, with a list of
file paths (file input) or a pandas DataFrame of rows (tabular input).

Mini-batches are spread over one worker per CPU; one that raises (or outlasts `--timeout`) is retried
`--max-retries` times and then counts all its inputs as failed; `run` returning fewer results than
inputs counts the difference as failed, as AML does. Past `--error-threshold` failures (-1: never) the
job stops and names the failing inputs. `append_row` writes every returned row to one file, in input
order: a list's items one per line, a DataFrame's rows with their values separated by spaces.
Progress goes to stdout; `batch-summary.json` in the output folder says how it ended.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import multiprocessing
import os
import signal
import sys
import time
import traceback
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .serve import container_cpus, worker_count

TABULAR_SUFFIXES = (".csv", ".tsv", ".parquet")
SUMMARY_FILE = "batch-summary.json"
PROGRESS_SECONDS = 1.0


@dataclass(frozen=True)
class MiniBatch:
    index: int
    files: tuple[str, ...] = ()
    rows: tuple[int, int] | None = None
    """[start, stop) of the input's rows (tabular input)."""

    @property
    def size(self) -> int:
        return self.rows[1] - self.rows[0] if self.rows is not None else len(self.files)

    def label(self) -> str:
        if self.rows is not None:
            return f"rows {self.rows[0]}-{self.rows[1] - 1}"
        return ", ".join(Path(f).name for f in self.files)


@dataclass
class Outcome:
    index: int
    rows: list[str] = field(default_factory=list)
    failed: int = 0
    attempts: int = 1
    error: str = ""


@dataclass
class Summary:
    status: str = "running"
    mini_batches: int = 0
    inputs: int = 0
    succeeded: int = 0
    failed: int = 0
    retried_mini_batches: int = 0
    seconds: float = 0.0
    workers: int = 0
    failed_inputs: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    reason: str = ""
    """Why the job failed."""
    output_file: str | None = None


def input_type(path: Path, declared: str | None) -> str:
    if declared:
        return declared
    return "tabular" if path.is_file() and path.suffix.lower() in TABULAR_SUFFIXES else "files"


def read_table(path: Path) -> Any:
    try:
        import pandas
    except ImportError:
        sys.exit("batch: tabular input needs pandas in the image's environment (add it to the conda file)")
    if path.suffix.lower() == ".parquet":
        return pandas.read_parquet(path)
    return pandas.read_csv(path, sep="\t" if path.suffix.lower() == ".tsv" else ",")


def file_batches(folder: Path, size: int) -> list[MiniBatch]:
    files = sorted(str(p) for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else [str(folder)]
    return [
        MiniBatch(i, files=tuple(files[start : start + size])) for i, start in enumerate(range(0, len(files), size))
    ]


def row_batches(total: int, rows_per_batch: int) -> list[MiniBatch]:
    step = max(rows_per_batch, 1)
    return [MiniBatch(i, rows=(start, min(start + step, total))) for i, start in enumerate(range(0, total, step))]


def rows_per_batch(path: Path, total: int, size: int, size_bytes: int | None) -> int:
    """A count, or AML's size-based mini-batch ('1MB') turned into rows of this input."""
    if size_bytes is None:
        return size
    return max(1, int(size_bytes / max(path.stat().st_size / max(total, 1), 1)))


# --- in each worker --------------------------------------------------------------------------------

INIT_FAILED = 3
# Workers that could not start, counted across the forked processes.
_init_failures: Any = multiprocessing.get_context("fork").Value("i", 0)
_entry: Any = None
_table: Any = None
_timeout = 60


def load_entry_script() -> Any:
    root = Path(os.environ.get("AML_APP_ROOT", "."))
    script = root / os.environ["AZUREML_ENTRY_SCRIPT"]
    sys.path.insert(0, str(script.parent))
    spec = importlib.util.spec_from_file_location("entry_script", script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _start_worker(timeout: int) -> None:
    global _entry, _timeout
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops the pool
    _timeout = timeout
    try:
        _entry = load_entry_script()
        if hasattr(_entry, "init"):
            _entry.init()
    except Exception as error:
        # The pool only learns that a worker ended: the first to fail says why, where the progress goes,
        # before it lets go of the lock, so that no other worker ends (and the pool with it) before it has.
        with _init_failures.get_lock():
            _init_failures.value += 1
            if _init_failures.value == 1:
                lines = ["init() failed:", *script_traceback(error).splitlines()]
                print("\n".join(f"batch: {line}" for line in lines), flush=True)
        os._exit(INIT_FAILED)


def _on_alarm(_signum: int, _frame: Any) -> None:
    raise TimeoutError(f"run(mini_batch) took longer than {_timeout} s")


def result_rows(result: Any) -> list[str]:
    """What append_row writes of one run() result."""
    if hasattr(result, "to_csv") and hasattr(result, "columns"):
        text: str = result.to_csv(sep=" ", header=False, index=False)
        return text.splitlines()
    if isinstance(result, list | tuple):
        return [str(item) for item in result]
    if hasattr(result, "tolist"):  # a pandas Series or a numpy array: one item per input
        return [str(item) for item in result.tolist()]
    raise TypeError(f"run() returned {type(result).__name__}: return a list or a pandas DataFrame")


def script_traceback(error: BaseException) -> str:
    """Where the entry script was when it failed (its own frames, else the last one) and the error."""
    root = os.environ.get("AML_APP_ROOT", "")
    frames = traceback.extract_tb(error.__traceback__)
    own = [frame for frame in frames if root and frame.filename.startswith(root)] or frames[-1:]
    return "".join(traceback.format_list(own) + traceback.format_exception_only(error)).rstrip()


def run_mini_batch(batch: MiniBatch, max_retries: int) -> Outcome:
    signal.signal(signal.SIGALRM, _on_alarm)
    error = ""
    for attempt in range(1, max_retries + 2):
        data = _table.iloc[batch.rows[0] : batch.rows[1]] if batch.rows is not None else list(batch.files)
        try:
            signal.alarm(_timeout)
            rows = result_rows(_entry.run(data))
            return Outcome(batch.index, rows[: batch.size], max(batch.size - len(rows), 0), attempt)
        except Exception as raised:
            error = script_traceback(raised)
        finally:
            signal.alarm(0)
    return Outcome(batch.index, [], batch.size, max_retries + 1, error)


# --- the job -----------------------------------------------------------------------------------------


def plan(args: argparse.Namespace) -> tuple[str, list[MiniBatch]]:
    """The mini-batches; tabular input is read here, once: the forked workers share it."""
    global _table
    source = Path(args.input)
    kind = input_type(source, args.input_type)
    if kind == "files":
        return kind, file_batches(source, args.mini_batch_size)
    _table = read_table(source)
    total = len(_table)
    return kind, row_batches(total, rows_per_batch(source, total, args.mini_batch_size, args.mini_batch_bytes))


def over_threshold(failed: int, threshold: int) -> bool:
    return threshold >= 0 and failed > threshold


def progress_line(done: int, total: int, summary: Summary, started: float) -> str:
    elapsed = max(time.monotonic() - started, 1e-6)
    rate = summary.succeeded / elapsed
    return (
        f"batch: mini-batches {done}/{total}, {summary.succeeded:,} succeeded, {summary.failed:,} failed, {rate:,.0f}/s"
    )


def run_job(args: argparse.Namespace) -> Summary:
    kind, batches = plan(args)
    workers = args.workers or worker_count(container_cpus())
    summary = Summary(mini_batches=len(batches), inputs=sum(b.size for b in batches), workers=workers)
    shape = f"{summary.inputs:,} inputs ({kind}) in {len(batches):,} mini-batches on {workers} workers"
    print(f"batch: {shape}", flush=True)
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    rows_file = output / args.output_file_name if args.output_action == "append_row" else None
    started = time.monotonic()
    rows = rows_file.open("w", encoding="utf-8") if rows_file is not None else contextlib.nullcontext()
    # Forked workers share the tabular input read above; a worker that dies (killed, out of memory)
    # breaks the pool, which fails the job instead of waiting for it forever.
    pool = ProcessPoolExecutor(
        workers, mp_context=multiprocessing.get_context("fork"), initializer=_start_worker, initargs=(args.timeout,)
    )
    with pool, rows as rows_out:
        futures = [pool.submit(run_mini_batch, batch, args.max_retries) for batch in batches]
        _collect(batches, futures, args, summary, rows_out, started)
        pool.shutdown(wait=True, cancel_futures=True)
    summary.seconds = round(time.monotonic() - started, 3)
    summary.output_file = str(rows_file) if rows_file is not None else None
    if summary.status == "running":
        summary.status = "succeeded"
    return summary


def _collect(
    batches: list[MiniBatch],
    futures: list[Future[Outcome]],
    args: argparse.Namespace,
    summary: Summary,
    rows_out: Any,
    started: float,
) -> None:
    """Outcomes in input order, until the end or until failures pass the threshold."""
    last_print = started
    for done, (batch, future) in enumerate(zip(batches, futures, strict=True), start=1):
        try:
            outcome = future.result()
        except BrokenProcessPool:
            summary.status = "failed"
            summary.reason = (
                "init() failed in the workers (its error is above)"
                if _init_failures.value
                else f"a worker process died while scoring mini-batch {batch.index} ({batch.label()}): killed, or"
                " out of memory?"
            )
            return
        _record(outcome, batch, summary, rows_out)
        if over_threshold(summary.failed, args.error_threshold):
            summary.status = "failed"
            summary.reason = f"{summary.failed} failed inputs exceed error_threshold {args.error_threshold}"
            return
        if time.monotonic() - last_print >= PROGRESS_SECONDS or done == len(batches):
            print(progress_line(done, len(batches), summary, started), flush=True)
            last_print = time.monotonic()


def _record(outcome: Outcome, batch: MiniBatch, summary: Summary, rows_out: Any) -> None:
    summary.succeeded += batch.size - outcome.failed
    summary.failed += outcome.failed
    if outcome.attempts > 1:
        summary.retried_mini_batches += 1
    if outcome.failed:
        summary.failed_inputs.append(f"mini-batch {batch.index} ({batch.label()})")
        if outcome.error:
            summary.errors.append(f"mini-batch {batch.index}:\n{outcome.error}")
    if rows_out is not None and outcome.rows:
        rows_out.write("\n".join(outcome.rows) + "\n")


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="modelplane_runtime.batch")
    parser.add_argument("--input", required=True)
    parser.add_argument("--input-type", choices=("files", "tabular"))
    parser.add_argument("--output", required=True)
    parser.add_argument("--output-action", choices=("append_row", "summary_only"), default="append_row")
    parser.add_argument("--output-file-name", default="predictions.csv")
    parser.add_argument("--mini-batch-size", type=int, default=10)
    parser.add_argument("--mini-batch-bytes", type=int)
    parser.add_argument("--error-threshold", type=int, default=-1)
    parser.add_argument("--max-retries", type=int, default=3)
    parser.add_argument("--timeout", type=int, default=60)
    parser.add_argument("--workers", type=int)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    summary = run_job(args)
    (Path(args.output) / SUMMARY_FILE).write_text(json.dumps(asdict(summary), indent=2), encoding="utf-8")
    print(f"batch: {summary.status}: {summary.succeeded:,} succeeded, {summary.failed:,} failed", flush=True)
    return 0 if summary.status == "succeeded" else 1


if __name__ == "__main__":
    sys.exit(main())
