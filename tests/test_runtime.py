"""The scoring runtime: the real AML inference server with the seed's score.py behind our key gate."""

from __future__ import annotations

import base64
import io
import json
import logging
import os
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import jwt
import pytest
import requests
from prometheus_client import REGISTRY
from werkzeug.wsgi import ClosingIterator

from modelplane.credentials import mint
from modelplane.engine import PROJECT_ROOT
from modelplane.runtime.gate import KeyGate
from modelplane.runtime.logbatch import (
    BatchingStreamHandler,
    batch_stream_handlers,
    flush_ms_setting,
    flush_when_idle,
    with_batched_logging,
)
from modelplane.runtime.metrics import ScoringMetrics, model_labels
from modelplane.runtime.serve import worker_count, worker_timeout
from tests.conftest import free_port

EXAMPLE = PROJECT_ROOT / "examples" / "sklearn-regression"
PRIMARY, SECONDARY = "primary-test-key", "secondary-test-key"


SERVER_LOGS: dict[str, Path] = {}


def start_server(folder: Path, **settings: str) -> tuple[subprocess.Popen[bytes], str, Path]:
    """gunicorn + azureml-inference-server-http + KeyGate, as the image runs them; waits until ready."""
    runtime_path = folder / "runtime"
    runtime_path.mkdir()
    (runtime_path / "modelplane_runtime").symlink_to(PROJECT_ROOT / "modelplane" / "runtime")
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(runtime_path),
        "AZUREML_ENTRY_SCRIPT": str(EXAMPLE / "score.py"),
        "AZUREML_MODEL_DIR": str(EXAMPLE / "model"),
        "MODELPLANE_PORT": str(port),
        "MODELPLANE_PRIMARY_KEY": PRIMARY,
        "MODELPLANE_SECONDARY_KEY": SECONDARY,
        "MODELPLANE_WORKERS": "2",
        "MODELPLANE_METRICS_PORT": str(free_port()),
        **settings,
    }
    log = folder / "server.log"
    with log.open("w") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "modelplane_runtime.serve"], env=env, stdout=sink, stderr=subprocess.STDOUT
        )
    base = f"{'https' if 'MODELPLANE_TLS_CERT' in settings else 'http'}://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            # The demo certificate names scoring.prod.example.com, not 127.0.0.1: tests check it by hand.
            if requests.get(f"{base}/ready", timeout=1, verify=False).status_code == 200:
                return process, base, log
        except requests.RequestException:
            time.sleep(0.2)
    process.kill()
    raise AssertionError(f"server did not start:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    process, base, log = start_server(
        tmp_path_factory.mktemp("server"),
        MODELPLANE_MAX_BODY_BYTES="4096",
        MODELPLANE_PATH_PREFIX="/api/v1/service/web",
    )
    SERVER_LOGS[base] = log
    try:
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)


def score(base: str, body: bytes | str, key: str | None = PRIMARY, path: str = "/score") -> requests.Response:
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    return requests.post(f"{base}{path}", data=body, headers=headers, timeout=30)


def test_each_request_is_logged_once(server: str) -> None:
    # The AML server's own line ("POST /score 200 1.234ms 20"); gunicorn's access log would be a second.
    def scored_lines() -> int:
        return sum("POST /score" in line for line in SERVER_LOGS[server].read_text().splitlines())

    before = scored_lines()
    for _ in range(3):
        assert score(server, '{"data": [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]]}').status_code == 200
    deadline = time.monotonic() + 5
    while scored_lines() < before + 3 and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.3)
    assert scored_lines() - before == 3, SERVER_LOGS[server].read_text()[-2000:]


def test_log_lines_held_back_are_written_when_the_server_stops(tmp_path: Path) -> None:
    # A minute's delay: only the exit (docker stop sends SIGTERM) can write the request's line.
    process, base, log = start_server(tmp_path, MODELPLANE_LOG_FLUSH_MS="60000")
    try:
        assert score(base, '{"data": [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]]}').status_code == 200
        time.sleep(0.5)
        assert "POST /score 200" not in log.read_text()
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert "POST /score 200" in log.read_text()


def test_scores_with_either_key(server: str) -> None:
    for key in (PRIMARY, SECONDARY):
        response = score(server, '{"data": [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]]}', key)
        assert response.status_code == 200
        assert response.json()[0] == pytest.approx(6039.66, rel=1e-3)


@pytest.mark.parametrize("header", [None, "wrong-key", f"{PRIMARY}x", PRIMARY[:-1]])
def test_without_a_valid_key_401(server: str, header: str | None) -> None:
    response = score(server, '{"data": [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]]}', header)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_basic_scheme_is_not_accepted(server: str) -> None:
    response = requests.post(f"{server}/score", data="{}", headers={"Authorization": f"Basic {PRIMARY}"}, timeout=10)
    assert response.status_code == 401


def test_health_ready_and_swagger_need_no_key(server: str) -> None:
    assert requests.get(f"{server}/", timeout=10).status_code == 200
    assert requests.get(f"{server}/ready", timeout=10).status_code == 200
    assert requests.get(f"{server}/healthz", timeout=10).status_code == 200
    swagger = requests.get(f"{server}/swagger.json", timeout=10).json()
    assert swagger["definitions"]["ServiceInput"]["example"] == {"data": [[10, 9, 8, 7, 6, 5, 4, 3, 2, 1]]}


def test_malformed_json_400(server: str) -> None:
    response = score(server, '{"data": [[1, 2')
    assert response.status_code == 400
    assert "could not be decoded as JSON" in response.text


def test_a_json_body_that_is_not_utf8_is_400_not_a_server_error(server: str) -> None:
    response = score(server, b'{"data": "\xff\xfe"}')
    assert response.status_code == 400
    assert response.json() == {"error": "request body is not UTF-8 JSON: byte 10 (0xff) cannot start a character"}
    assert score(server, '{"data": [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]]}').status_code == 200


def test_oversized_chunked_body_413(server: str) -> None:
    chunks = (b'{"data": [' + b"[1,2,3,4,5,6,7,8,9,10]," * 20 for _ in range(20))
    response = requests.post(
        f"{server}/score",
        data=chunks,
        timeout=30,
        headers={"Authorization": f"Bearer {PRIMARY}", "Content-Type": "application/json"},
    )
    assert response.status_code == 413


def test_oversized_body_413(server: str) -> None:
    response = score(server, '{"data": [' + ",".join(["[1,2,3,4,5,6,7,8,9,10]"] * 300) + "]}")
    assert response.status_code == 413


def test_ingress_path_prefix_is_stripped(server: str) -> None:
    response = score(server, '{"data": [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]]}', path="/api/v1/service/web/score")
    assert response.status_code == 200


def test_gate_compares_every_key_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    compared: list[tuple[bytes, bytes]] = []

    def recording_compare(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return a == b

    monkeypatch.setattr("modelplane.runtime.gate.hmac.compare_digest", recording_compare)
    gate = KeyGate(lambda environ, start: [b""], [PRIMARY, SECONDARY])
    assert gate.refusal(f"Bearer {PRIMARY}") is None
    # Both keys are compared even though the first matched.
    assert [b for _, b in compared] == [PRIMARY.encode(), SECONDARY.encode()]


def test_gate_without_keys_lets_requests_through() -> None:
    seen: list[str] = []

    def app(environ: dict[str, Any], start: Any) -> list[bytes]:
        seen.append(environ["PATH_INFO"])
        start("200 OK", [])
        return [b"ok"]

    gate = KeyGate(app, ["", ""])
    body = gate(
        {"PATH_INFO": "/score", "REQUEST_METHOD": "POST", "CONTENT_LENGTH": "2", "wsgi.input": io.BytesIO(b"{}")},
        lambda *a: None,
    )
    assert list(body) == [b"ok"] and seen == ["/score"]


class CountingStream(io.StringIO):
    """A stream that counts its writes: each one is a trip through the container runtime."""

    writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


def batching_logger(name: str, stream: io.StringIO, max_delay_s: float = 60) -> BatchingStreamHandler:
    logger = logging.getLogger(name)
    logger.handlers = [logging.StreamHandler(stream)]
    logger.handlers[0].setFormatter(logging.Formatter("%(levelname).1s %(message)s"))
    logger.setLevel(logging.INFO)
    logger.propagate = False
    handlers = batch_stream_handlers(max_delay_s, [logger])
    assert len(handlers) == 1 and logger.handlers == handlers and handlers[0].stream is stream
    return handlers[0]


def test_log_lines_wait_and_leave_in_one_write_in_order() -> None:
    stream = CountingStream()
    handler = batching_logger("test.batch.order", stream)
    log = logging.getLogger("test.batch.order")
    log.info("POST /score 200 1.0ms 20")
    log.info("POST /score 200 1.1ms 20")
    assert stream.getvalue() == "" and stream.writes == 0
    log.warning("slow model")  # a warning goes out at once, after what came before it
    assert stream.getvalue() == "I POST /score 200 1.0ms 20\nI POST /score 200 1.1ms 20\nW slow model\n"
    assert stream.writes == 1
    log.info("POST /score 200 0.9ms 20")
    handler.flush_if_due(handler.oldest + 59)
    assert stream.writes == 1
    handler.flush_if_due(handler.oldest + 60)
    assert stream.getvalue().endswith("I POST /score 200 0.9ms 20\n") and stream.writes == 2


def test_log_batch_is_written_when_full() -> None:
    stream = CountingStream()
    handler = batching_logger("test.batch.full", stream)
    for number in range(handler.capacity):
        logging.getLogger("test.batch.full").info("line %d", number)
    assert stream.writes == 1 and stream.getvalue().count("\n") == handler.capacity and not handler.pending


def test_batching_keeps_level_filters_and_sharing() -> None:
    stream = io.StringIO()
    shared = logging.StreamHandler(stream)
    shared.setLevel(logging.WARNING)
    shared.addFilter(lambda record: "secret" not in record.getMessage())
    own = logging.FileHandler(os.devnull)  # not a plain StreamHandler: left alone
    loggers = [logging.getLogger("test.batch.a"), logging.getLogger("test.batch.b")]
    for logger in loggers:
        logger.handlers = [shared, own]
    batch_stream_handlers(60, loggers)
    first, second = logging.getLogger("test.batch.a").handlers, logging.getLogger("test.batch.b").handlers
    assert first[0] is second[0] and isinstance(first[0], BatchingStreamHandler)
    assert first[1] is own and first[0].level == logging.WARNING
    logging.getLogger("test.batch.a").warning("a secret")
    logging.getLogger("test.batch.a").info("not at info")
    logging.getLogger("test.batch.b").error("kept")
    assert stream.getvalue() == "kept\n"
    own.close()


def test_a_response_flushes_lines_that_are_due_after_it_is_sent() -> None:
    stream = CountingStream()
    logger = logging.getLogger("test.batch.wsgi")
    logger.handlers = [logging.StreamHandler(stream)]
    logger.setLevel(logging.INFO)

    def app(environ: dict[str, Any], start: Any) -> list[bytes]:
        logger.info("scored")
        start("200 OK", [])
        return [b"ok"]

    batched = with_batched_logging(app, flush_ms=1, loggers=[logger], idle_flush=False)
    body = batched({"PATH_INFO": "/score"}, lambda *a: None)
    time.sleep(0.002)
    assert list(body) == [b"ok"] and stream.getvalue() == ""  # not while the response is being sent
    assert isinstance(body, ClosingIterator)
    body.close()  # what the server does once the response is written
    assert stream.getvalue() == "scored\n" and stream.writes == 1


def test_idle_server_flushes_its_lines_within_twice_the_delay() -> None:
    stream = CountingStream()
    handler = batching_logger("test.batch.idle", stream, max_delay_s=0.05)
    stop = threading.Event()
    thread = flush_when_idle([handler], 0.05, stop)
    try:
        logging.getLogger("test.batch.idle").info("lone request")
        assert stream.getvalue() == ""
        deadline = time.monotonic() + 0.1 + 0.5  # 2 x delay, plus room for a loaded machine
        while not stream.getvalue() and time.monotonic() < deadline:
            time.sleep(0.005)
        assert stream.getvalue() == "I lone request\n"
    finally:
        stop.set()
        thread.join(timeout=1)
    assert not thread.is_alive()


def test_forked_worker_gets_no_copy_of_held_lines_and_its_own_idle_thread(tmp_path: Path) -> None:
    # What gunicorn's --preload does: build the app, then fork the workers.
    stream = CountingStream()
    logger = logging.getLogger("test.batch.fork")
    logger.handlers = [logging.StreamHandler(stream)]
    logger.setLevel(logging.INFO)
    with_batched_logging(lambda environ, start: [], flush_ms=60000, loggers=[logger])
    logger.info("before the fork")
    report = tmp_path / "child.txt"
    pid = os.fork()
    if pid == 0:  # the worker
        handler = logger.handlers[0]
        assert isinstance(handler, BatchingStreamHandler)
        threads = [t.name for t in threading.enumerate()]
        report.write_text(f"{len(handler.pending)} {threads.count('modelplane-log-flush')}")
        os._exit(0)
    os.waitpid(pid, 0)
    assert stream.getvalue() == "before the fork\n"  # written once, by the parent, before forking
    assert report.read_text() == "0 1"


@pytest.mark.parametrize(("value", "flush_ms"), [(None, 250), ("", 250), ("0", 0), ("1000", 1000)])
def test_flush_setting(value: str | None, flush_ms: int) -> None:
    assert flush_ms_setting(value) == flush_ms


def test_flush_setting_that_is_no_number_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="MODELPLANE_LOG_FLUSH_MS must be a whole number of milliseconds, not '1s'"):
        flush_ms_setting("1s")


def test_server_with_a_bad_flush_setting_stops_with_the_setting_named(tmp_path: Path) -> None:
    (tmp_path / "modelplane_runtime").symlink_to(PROJECT_ROOT / "modelplane" / "runtime")
    env = {
        **os.environ,
        "PYTHONPATH": str(tmp_path),
        "AZUREML_ENTRY_SCRIPT": str(EXAMPLE / "score.py"),
        "AZUREML_MODEL_DIR": str(EXAMPLE / "model"),
        "MODELPLANE_PORT": str(free_port()),
        "MODELPLANE_WORKERS": "1",
        "MODELPLANE_LOG_FLUSH_MS": "1s",
    }
    result = subprocess.run(
        [sys.executable, "-m", "modelplane_runtime.serve"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 3
    output = result.stdout + result.stderr
    assert "modelplane: MODELPLANE_LOG_FLUSH_MS must be a whole number of milliseconds, not '1s'" in output
    # (The AML server prints a traceback of its own about this test's model folder layout.)
    assert "ValueError" not in output and "logbatch.py" not in output


def test_batching_off_leaves_the_app_and_handlers_alone() -> None:
    handler = logging.StreamHandler(io.StringIO())
    logging.getLogger("test.batch.off").handlers = [handler]

    def app(environ: dict[str, Any], start: Any) -> list[bytes]:
        return []

    assert with_batched_logging(app, flush_ms=0, loggers=[logging.getLogger("test.batch.off")]) is app
    assert logging.getLogger("test.batch.off").handlers == [handler]


@pytest.mark.parametrize(("cpus", "workers"), [(0.5, 1), (1, 1), (2, 2), (3.5, 4)])
def test_workers_follow_the_cpu_quota(cpus: float, workers: int) -> None:
    assert worker_count(cpus) == workers


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_tls_is_served_with_the_given_certificate(tmp_path: Path) -> None:
    """AML's sslCertificate/sslKey on ACI: the runtime serves HTTPS itself."""
    tls = PROJECT_ROOT / "examples" / "tls"
    certificate = (tls / "demo-only.crt").read_text()
    process, base, _log = start_server(
        tmp_path, MODELPLANE_TLS_CERT=certificate, MODELPLANE_TLS_KEY=(tls / "demo-only.key").read_text()
    )
    try:
        port = int(base.rsplit(":", 1)[1])
        served = ssl.get_server_certificate(("127.0.0.1", port))
        assert ssl.PEM_cert_to_DER_cert(served) == ssl.PEM_cert_to_DER_cert(certificate)
        body = json.dumps({"data": [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]]})
        answer = requests.post(
            f"{base}/score",
            data=body,
            headers={"Authorization": f"Bearer {PRIMARY}", "Content-Type": "application/json"},
            timeout=30,
            verify=False,
        )
        assert answer.status_code == 200, answer.text
        with pytest.raises(requests.ConnectionError):
            requests.get(f"http://127.0.0.1:{port}/ready", timeout=2)
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_the_scoring_timeout_reaches_the_aml_server(tmp_path: Path) -> None:
    """AML's scoringTimeoutMs: the AML server's own timeout answers, not gunicorn killing the worker."""
    slow = tmp_path / "slow.py"
    slow.write_text("import time\n\ndef init():\n    pass\n\ndef run(data):\n    time.sleep(3)\n    return data\n")
    (tmp_path / "server").mkdir()
    process, base, _log = start_server(tmp_path / "server", AZUREML_ENTRY_SCRIPT=str(slow), SCORING_TIMEOUT_MS="1000")
    try:
        answer = score(base, json.dumps({"data": 1}))
        assert answer.status_code == 500
        assert "Scoring timeout after 1000 ms" in answer.text
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert worker_timeout(1000) == 30 and worker_timeout(600000) == 605


def test_append_row_writes_one_line_per_result_item() -> None:
    import numpy as np
    import pandas as pd

    from modelplane.runtime.batch import result_rows

    assert result_rows(["3.5", 4]) == ["3.5", "4"]
    assert result_rows(pd.Series([1.5, 2.5])) == ["1.5", "2.5"]
    assert result_rows(np.array([1, 2])) == ["1", "2"]
    # A DataFrame's rows, values separated by spaces, no header or index.
    assert result_rows(pd.DataFrame({"file": ["a.json", "b.json"], "score": [0.25, 0.5]})) == [
        "a.json 0.25",
        "b.json 0.5",
    ]
    with pytest.raises(TypeError, match="run\\(\\) returned int: return a list or a pandas DataFrame"):
        result_rows(3)


def _gate_answer(gate: KeyGate, authorization: str | None) -> tuple[str, Any]:
    """The status and JSON body a gated app answers a POST /score with."""
    answer: dict[str, str] = {}

    def start(status: str, _headers: Any) -> None:
        answer["status"] = status

    environ = {"PATH_INFO": "/score", "REQUEST_METHOD": "POST", "CONTENT_LENGTH": "2", "wsgi.input": io.BytesIO(b"{}")}
    if authorization is not None:
        environ["HTTP_AUTHORIZATION"] = authorization
    body = b"".join(gate(environ, start))
    return answer["status"], json.loads(body)


def _token_gate() -> KeyGate:
    def app(_environ: dict[str, Any], start: Any) -> list[bytes]:
        start("200 OK", [])
        return [b'{"ok": true}']

    return KeyGate(app, [PRIMARY, SECONDARY], token_audience="web")


def test_token_gate_accepts_a_token_signed_with_either_key() -> None:
    gate = _token_gate()
    for key in (PRIMARY, SECONDARY):
        token = mint("web", key)["accessToken"]
        assert _gate_answer(gate, f"Bearer {token}") == ("200 OK", {"ok": True})


@pytest.mark.parametrize(
    ("authorization", "why"),
    [
        (None, "a valid token is required"),
        (f"Bearer {PRIMARY}", "a valid token is required"),  # keys sign tokens; they are no token
        ("Bearer not.a.jwt", "a valid token is required"),
    ],
)
def test_token_gate_refuses_keys_and_garbage(authorization: str | None, why: str) -> None:
    status, body = _gate_answer(_token_gate(), authorization)
    assert status == "401 Unauthorized" and body["error"].startswith(why)


def test_token_gate_says_an_expired_token_expired() -> None:
    expired = mint("web", PRIMARY, lifetime_s=60, now=time.time() - 3600)["accessToken"]
    status, body = _gate_answer(_token_gate(), f"Bearer {expired}")
    assert status == "401 Unauthorized" and "expired" in body["error"]


def test_token_gate_refuses_a_tampered_token_another_endpoint_and_another_key() -> None:
    token = mint("web", PRIMARY)["accessToken"]
    header, claims, signature = token.split(".")
    forged_claims = base64.urlsafe_b64encode(
        json.dumps({**jwt.decode(token, options={"verify_signature": False}), "exp": 4102444800}).encode()
    ).rstrip(b"=")
    tampered = f"{header}.{forged_claims.decode()}.{signature}"
    assert claims != forged_claims.decode()
    for candidate in (
        tampered,
        mint("other", PRIMARY)["accessToken"],
        mint("web", "not-the-key")["accessToken"],
        jwt.encode({"iss": "modelplane", "aud": "web"}, PRIMARY, algorithm="HS256"),  # no expiry
    ):
        status, body = _gate_answer(_token_gate(), f"Bearer {candidate}")
        assert status == "401 Unauthorized" and body["error"].startswith("a valid token is required")


def test_minted_token_has_amls_shape_and_an_hour_of_life() -> None:
    credentials = mint("web", PRIMARY, now=1_800_000_000)
    assert credentials["tokenType"] == "Bearer"
    assert credentials["expiryTimeUtc"] == 1_800_003_600
    assert credentials["refreshAfterTimeUtc"] == 1_800_001_800


def test_scoring_metrics_count_model_failures_and_leave_probes_out() -> None:
    def app(environ: dict[str, Any], start: Any) -> list[bytes]:
        start("500 INTERNAL SERVER ERROR" if environ["PATH_INFO"].endswith("/score") else "200 OK", [])
        return [b"{}"]

    labels = {"model_name": "failing", "model_version": "7"}
    metered = ScoringMetrics(app, "failing:7")
    for path in ("/score", "/api/v1/service/web/score", "/ready", "/swagger.json"):
        environ = {"PATH_INFO": path, "REQUEST_METHOD": "POST", "wsgi.input": io.BytesIO(b"{}")}
        body = metered(environ, lambda *a: None)
        b"".join(body)
        getattr(body, "close", lambda: None)()  # as a WSGI server does
    assert REGISTRY.get_sample_value("modelplane_requests_total", {**labels, "code": "500"}) == 2
    assert REGISTRY.get_sample_value("modelplane_scoring_errors_total", labels) == 2
    assert REGISTRY.get_sample_value("modelplane_request_duration_seconds_count", labels) == 2
    assert REGISTRY.get_sample_value("modelplane_requests_in_flight", labels) == 0


def test_model_labels_join_several_models() -> None:
    assert model_labels("a:1,b:3") == ("a,b", "1,3")
    assert model_labels("") == ("", "")


def test_a_dying_worker_is_told_on_stderr_and_nothing_else_of_gunicorns_error_log(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from modelplane.runtime.gunicorn_hooks import on_starting

    error_log = logging.getLogger("test.gunicorn.error")
    error_log.propagate = False
    on_starting(SimpleNamespace(log=SimpleNamespace(error_log=error_log)))
    error_log.info("Booting worker with pid: %s", 9)
    error_log.error("Worker (pid:%s) was sent %s! Perhaps out of memory?", 9, "SIGKILL")
    error_log.critical("WORKER TIMEOUT (pid:%s)", 10)
    error_log.error("Exception in worker process")
    error_log.error("Worker (pid:%s) exited with code %s.", 11, 3)  # init() raised: logged already
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2, lines
    assert lines[0].endswith("gunicorn - Worker (pid:9) was sent SIGKILL! Perhaps out of memory?")
    assert lines[1].endswith("gunicorn - WORKER TIMEOUT (pid:10)")
