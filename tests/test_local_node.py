"""The real node's settings: nothing a pod sends can leave the machine, and this sandbox's limits are met."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelplane.local_node import NODE_IP, NODE_POD_CIDR, ClusterError, cni_config, kubelet_config, run_command


def test_pods_are_not_masqueraded_out_of_the_machine() -> None:
    bridge = cni_config()["plugins"][0]  # type: ignore[index]
    assert bridge["type"] == "bridge" and bridge["ipMasq"] is False
    assert bridge["ipam"]["ranges"] == [[{"subnet": NODE_POD_CIDR}]]


def test_the_kubelet_serves_on_the_node_address_and_accepts_this_machine() -> None:
    config = kubelet_config(Path("/run/x.sock"), 10250, 10248, Path("/pki/ca.crt"))
    assert config["authentication"]["x509"] == {"clientCAFile": "/pki/ca.crt"}  # type: ignore[index]
    assert config["address"] == NODE_IP and config["healthzBindAddress"] == "127.0.0.1"
    assert config["failCgroupV1"] is False and config["cgroupDriver"] == "cgroupfs"
    assert config["containerRuntimeEndpoint"] == "unix:///run/x.sock"
    assert config["readOnlyPort"] == 0


def test_a_failed_node_command_is_named_with_its_error() -> None:
    with pytest.raises(ClusterError, match=r"`sh -c echo 'no such device' >&2; exit 2` failed \(2\): no such device"):
        run_command("sh", "-c", "echo 'no such device' >&2; exit 2", check=True)
