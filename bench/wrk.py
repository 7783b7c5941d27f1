"""wrk, the load generator of the bench's throughput measurements: POSTs of one body, kept-alive
connections, its requests/s and latency percentiles parsed from its report."""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile

SAMPLE = {"data": [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]]}


def wrk(url: str, concurrency: int, seconds: int, key: str | None) -> dict[str, float]:
    headers = 'wrk.headers["Content-Type"] = "application/json"\n'
    if key:
        headers += f'wrk.headers["Authorization"] = "Bearer {key}"\n'
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(f"wrk.method = \"POST\"\nwrk.body = '{json.dumps(SAMPLE)}'\n{headers}")
    threads = max(1, min(concurrency, 2))
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{concurrency}", f"-d{seconds}s", "--latency", "-s", script.name, url],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 60,
    ).stdout
    os.unlink(script.name)

    def latency(percent: str) -> float:
        match = re.search(rf"^\s+{percent}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if not match:
            return float("nan")
        return float(match.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[match.group(2)]

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        "p50_ms": latency("50"),
        "p99_ms": latency("99"),
        "non_2xx": float(errors.group(1)) if errors else 0.0,
    }
