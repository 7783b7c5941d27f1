"""Requests stay on this machine: a private address the kernel would send off it is refused, by the CLI
and by the tests' own guard, before a packet leaves."""

from __future__ import annotations

import socket

import pytest
from pulumi import automation as auto

from modelplane import cli
from modelplane.cli import call_endpoint, main
from modelplane.destinations import RemoteDestinationError, allowed, carried_here, check_url
from modelplane.operations import EXIT_FAILED

# Private addresses that nothing here serves (a ClusterIP without kube-proxy; a documentation range).
NOT_HERE = ("10.96.0.10", "198.51.100.7")


def test_loopback_is_carried_here() -> None:
    assert carried_here("127.0.0.1") and carried_here("::1")


@pytest.mark.docker
def test_the_docker_bridge_is_carried_here() -> None:
    assert carried_here("172.17.0.2"), "the Docker bridge (docker0) is this machine's own network"


@pytest.mark.parametrize("address", NOT_HERE)
def test_private_addresses_routed_off_the_machine_are_refused(address: str) -> None:
    assert not carried_here(address)
    assert not allowed(address)
    with pytest.raises(RemoteDestinationError, match="does not carry"):
        check_url(f"http://{address}/score")


def test_invoke_refuses_a_cluster_ip_without_kube_proxy() -> None:
    with pytest.raises(RemoteDestinationError, match="kube-proxy"):
        call_endpoint({"scoring_uri": "http://10.96.0.10/api/v1/service/regression/score"}, "key", {"data": []})


def test_invoke_reports_the_refusal_without_a_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The k8s-local endpoint as deployed before kube-proxy: its scoring URI is its ClusterIP."""
    endpoint = {"scoring_uri": "http://10.96.0.10/score", "swagger_uri": "http://10.96.0.10/swagger.json"}
    outputs = {"endpoints": auto.OutputValue({"regression": endpoint}, False)}
    monkeypatch.setattr(cli, "open_stack", lambda *_args, **_kwargs: None)
    monkeypatch.setattr(cli, "on_stack", lambda *_args, **_kwargs: outputs)
    assert main(["invoke", "--stack", "local", "regression", "--data", '{"data": []}']) == EXIT_FAILED
    error = capsys.readouterr().err
    assert error.startswith("modelplane: refused: http://10.96.0.10/score: 10.96.0.10 is a private address")
    assert "Traceback" not in error


def test_the_test_guard_stops_a_connection_before_it_leaves() -> None:
    with socket.socket() as sock, pytest.raises(AssertionError, match="not on this machine"):
        sock.connect(("10.96.0.10", 80))
