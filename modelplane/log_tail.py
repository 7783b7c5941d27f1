"""The lines of a scoring server's log that say why it failed to start (a container's, a pod's, a job's)."""

from __future__ import annotations

# gunicorn's own shutdown, which follows the user's exception when a worker cannot boot.
HALT_MARKERS = ("HaltServer", "Worker failed to boot")
# The AML server's wrapper around an exception from the user's init(): from the chaining line to its
# `…UserScriptException: Caught an unhandled exception from the user script`; it adds nothing of the
# user's, and its ten lines would push the user's own exception out of the tail.
CHAINED = "The above exception was the direct cause of the following exception:"
WRAPPER = "UserScriptException: "


def without_aml_wrapper(lines: list[str]) -> list[str]:
    """`lines` without the AML server's wrapper traceback (the last chaining line before its exception)."""
    end = next((i for i, line in enumerate(lines) if WRAPPER in line and not line.startswith(" ")), None)
    if end is None:
        return lines
    start = max((i for i in range(end) if lines[i].strip() == CHAINED), default=None)
    return lines if start is None else [*lines[:start], *lines[end + 1 :]]


# After a failed init() the AML server lists the model folder (up to 200 lines, one INFO line per
# entry), which would push the user's exception out of the tail: the listing is summed up in one line.
LISTING = "azmlinfsrv - Model Directory Contents:"
SERVER_INFO = ("I [", "azmlinfsrv - ")


def without_model_listing(lines: list[str]) -> list[str]:
    """`lines` with the AML server's listing of the model folder reduced to its header and a count."""
    start = next((i for i, line in enumerate(lines) if LISTING in line), None)
    if start is None:
        return lines
    end = start + 1
    while end < len(lines) and all(part in lines[end] for part in SERVER_INFO):
        end += 1
    return [*lines[:start], f"{lines[start]} ({end - start - 1} lines left out)", *lines[end:]]


def halted(log: str) -> bool:
    """Whether the scoring server has shut down because a worker could not boot."""
    return any(marker in log for marker in HALT_MARKERS)


def telling_tail(log: str, count: int) -> str:
    """The last `count` lines before the scoring server's own shutdown: gunicorn's halt traceback says
    only that a worker failed to boot, and would fill the tail; the lines before it say why."""
    lines = without_model_listing(without_aml_wrapper(log.rstrip().splitlines()))
    halt = next((i for i, line in enumerate(lines) if any(marker in line for marker in HALT_MARKERS)), None)
    if halt is not None:
        start = max((i for i in range(halt) if lines[i].startswith("Traceback")), default=halt)
        lines = [*lines[:start], lines[halt].strip()]
    return "\n".join(lines[-count:])
