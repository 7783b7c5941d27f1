"""The real node's settings: nothing a pod sends can leave the machine, and this sandbox's limits are met."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelplane.local_cluster import LocalCluster
from modelplane.local_node import (
    BRIDGE,
    NODE_IP,
    NODE_POD_CIDR,
    POD_FORWARD_RULES,
    SERVICE_CIDR,
    ClusterError,
    _take_node_lock,
    cni_config,
    kubelet_config,
    run_command,
)


def test_pods_are_not_masqueraded_out_of_the_machine() -> None:
    bridge = cni_config()["plugins"][0]  # type: ignore[index]
    assert bridge["type"] == "bridge" and bridge["ipMasq"] is False
    assert bridge["ipam"]["ranges"] == [[{"subnet": NODE_POD_CIDR}]]
    # No default route in a pod: Service addresses only, which kube-proxy turns into a pod's.
    assert bridge["ipam"]["routes"] == [{"dst": SERVICE_CIDR}]
    accept, drop = POD_FORWARD_RULES
    assert accept == ("-i", BRIDGE, "-o", BRIDGE, "-j", "ACCEPT") and drop == ("-i", BRIDGE, "-j", "DROP")


def test_the_node_lock_is_held_while_a_node_process_runs(tmp_path: Path) -> None:
    """Killing the process that started a node leaves its kubelet running: the kubelet holds the lock."""
    lock_path = tmp_path / "node.lock"
    cluster = LocalCluster(tmp_path / "cluster", nodes=0)
    (cluster.workdir / "logs").mkdir(parents=True)
    lock = _take_node_lock("the first", lock_path)
    cluster.spawn("node-process", ["30"], binary=Path("/bin/sleep"), keep_fds=(lock.fileno(),))
    lock.close()
    with pytest.raises(ClusterError, match="another local cluster with a real node is running"):
        _take_node_lock("the second", lock_path)
    cluster.processes["node-process"].kill()
    cluster.processes["node-process"].wait()
    _take_node_lock("the second", lock_path).close()


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
