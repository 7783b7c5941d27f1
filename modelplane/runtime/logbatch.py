"""Batched log writes for the scoring server.

The AML server logs every request (`POST /score 200 1.234ms 20`) and every `print()` of the entry
script through `logging.StreamHandler`s, which write and flush stdout once per line. In a container
each write is carried by the runtime (containerd-shim, then dockerd) before it reaches the log; on
two cores that cost the server about 15% of its throughput (docs/performance-findings.md).

Here those handlers keep the same lines, in the same order and format, and write them in batches:
- after a response has been sent, once the oldest waiting line is MODELPLANE_LOG_FLUSH_MS old
  (default 250), so that no request waits for the write;
- from a background thread while the server is idle, so a lone request's line shows within about
  twice that delay;
- at once for WARNING and above (with every line before them), and when CAPACITY lines wait;
- at exit (`logging.shutdown` flushes every handler), and before a fork (gunicorn's --preload).
MODELPLANE_LOG_FLUSH_MS=0 leaves the handlers as they are: one write per line, as the AML server does.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Iterable
from typing import Any

from werkzeug.wsgi import ClosingIterator

from .gate import Environ, StartResponse, WsgiApp

DEFAULT_FLUSH_MS = 250
CAPACITY = 256


def flush_ms_setting(value: str | None) -> int:
    """MODELPLANE_LOG_FLUSH_MS: unset means the default; anything but a whole number is refused."""
    if value is None or not value.strip():
        return DEFAULT_FLUSH_MS
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"MODELPLANE_LOG_FLUSH_MS must be a whole number of milliseconds, not {value!r}") from None


class BatchingStreamHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A StreamHandler that holds formatted lines until `flush()` or `flush_if_due()`."""

    def __init__(self, stream: Any, max_delay_s: float, capacity: int = CAPACITY) -> None:
        super().__init__(stream)
        self.max_delay_s = max_delay_s
        self.capacity = capacity
        self.pending: list[str] = []
        self.oldest = 0.0

    def emit(self, record: logging.LogRecord) -> None:
        # logging.Handler.handle() holds self.lock (an RLock) around emit.
        try:
            line = self.format(record) + self.terminator
        except Exception:
            self.handleError(record)
            return
        if not self.pending:
            self.oldest = time.monotonic()
        self.pending.append(line)
        if record.levelno >= logging.WARNING or len(self.pending) >= self.capacity:
            self.flush()

    def flush(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            if not self.pending:
                return
            text = "".join(self.pending)
            self.pending.clear()
            try:
                self.stream.write(text)
                self.stream.flush()
            except (OSError, ValueError):
                pass  # stdout is gone (the container is stopping): nowhere left to report it

    def flush_if_due(self, now: float | None = None) -> None:
        if self.pending and (now if now is not None else time.monotonic()) - self.oldest >= self.max_delay_s:
            self.flush()


def batch_stream_handlers(
    max_delay_s: float, loggers: Iterable[logging.Logger] | None = None
) -> list[BatchingStreamHandler]:
    """Replace every plain StreamHandler of `loggers` (default: the root and every named logger) by a
    batching one that keeps its stream, level, formatter and filters (a handler shared by several
    loggers stays shared)."""
    if loggers is None:
        loggers = [logging.getLogger()] + [
            logger for logger in logging.root.manager.loggerDict.values() if isinstance(logger, logging.Logger)
        ]
    replaced: dict[int, BatchingStreamHandler] = {}
    for logger in loggers:
        for index, handler in enumerate(logger.handlers):
            if type(handler) is not logging.StreamHandler:
                continue  # the user's own handler classes are theirs to tune
            batching = replaced.get(id(handler))
            if batching is None:
                batching = BatchingStreamHandler(handler.stream, max_delay_s)
                batching.setLevel(handler.level)
                batching.setFormatter(handler.formatter)
                batching.filters = list(handler.filters)
                batching.name = handler.name
                replaced[id(handler)] = batching
            logger.handlers[index] = batching
    return list(replaced.values())


def flush_all(handlers: list[BatchingStreamHandler]) -> None:
    for handler in handlers:
        handler.flush()


def flush_when_idle(
    handlers: list[BatchingStreamHandler], max_delay_s: float, stop: threading.Event | None = None
) -> threading.Thread:
    """Flush what has waited `max_delay_s` while no response comes to do it (until `stop` is set)."""
    stop = stop or threading.Event()

    def loop() -> None:
        while not stop.wait(max_delay_s):
            for handler in handlers:
                handler.flush_if_due()

    thread = threading.Thread(target=loop, name="modelplane-log-flush", daemon=True)
    thread.start()
    return thread


def with_batched_logging(
    app: WsgiApp,
    flush_ms: int | None = None,
    loggers: Iterable[logging.Logger] | None = None,
    idle_flush: bool = True,
) -> WsgiApp:
    """The app, writing its loggers' lines in batches after responses (see the module docstring)."""
    if flush_ms is None:
        try:
            flush_ms = flush_ms_setting(os.environ.get("MODELPLANE_LOG_FLUSH_MS"))
        except ValueError as error:
            print(f"modelplane: {error}", file=sys.stderr, flush=True)
            sys.exit(3)  # gunicorn's boot error: the master stops instead of restarting workers
    if flush_ms <= 0:
        return app
    max_delay_s = flush_ms / 1000
    handlers = batch_stream_handlers(max_delay_s, loggers)
    if not handlers:
        return app
    if idle_flush:
        flush_when_idle(handlers, max_delay_s)
        # With gunicorn's --preload the app is built before the workers fork: nothing held back may
        # be copied into (and written by) every worker, and each worker needs its own idle thread.
        os.register_at_fork(
            before=lambda: flush_all(handlers), after_in_child=lambda: flush_when_idle(handlers, max_delay_s)
        )

    def flush_due() -> None:
        now = time.monotonic()
        for handler in handlers:
            handler.flush_if_due(now)

    def batched(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        # The server calls close() once the response is written: the flush costs no one latency.
        return ClosingIterator(app(environ, start_response), [flush_due])

    return batched
