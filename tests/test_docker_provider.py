"""The Docker providers' decisions: what recreates a container, rebuilds an image, and what a delete removes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import docker
import pytest

from modelplane.providers.docker import ContainerProvider, ImageProvider

DEPLOYED_CONTAINER: dict[str, Any] = {
    "name": "modelplane-local-web",
    "image": "modelplane/local-scorer:abc",
    "env": {"MODELPLANE_PORT": "5001"},
    "ports": [{"internal": 5001, "external": 8890, "host_ip": "127.0.0.1"}],
    "labels": {"modelplane.stack": "local", "modelplane.endpoint": "web", "modelplane.auth": "key"},
    "restart": "unless-stopped",
    "status": "running",
}


def declared(**changes: Any) -> dict[str, Any]:
    return {**{k: v for k, v in DEPLOYED_CONTAINER.items() if k != "status"}, **changes}


def test_a_container_deployed_with_a_retired_label_is_not_recreated() -> None:
    # The auth label is now the `auth` input: a container that still carries the label is current.
    labels = {"modelplane.stack": "local", "modelplane.endpoint": "web"}
    diff = ContainerProvider().diff("id", DEPLOYED_CONTAINER, declared(labels=labels, auth="key"))
    assert not diff.changes, diff.replaces


def test_a_changed_label_still_recreates_the_container() -> None:
    labels = {"modelplane.stack": "local", "modelplane.endpoint": "api"}
    diff = ContainerProvider().diff("id", DEPLOYED_CONTAINER, declared(labels=labels))
    assert diff.changes and diff.replaces == ["labels"]


def test_an_image_built_with_retired_gpu_labels_is_not_rebuilt() -> None:
    built = {"tag": "t:1", "dockerfile": "Dockerfile", "image_id": "sha256:1", "labels": {"modelplane.gpu": "true"}}
    diff = ImageProvider().diff("t:1", built, {"tag": "t:1", "dockerfile": "Dockerfile", "labels": {}})
    assert not diff.changes, diff.replaces


@pytest.mark.docker
def test_a_resource_left_from_a_failed_update_leaves_its_successors_image(tmp_path: Path) -> None:
    """After a failed update the old image resource is deleted only after its successor rebuilt the same
    context under the same tag: the successor's image must survive that delete."""
    (tmp_path / "Dockerfile").write_text("FROM scratch\nCOPY weights.txt /weights.txt\n")
    (tmp_path / "weights.txt").write_text("1 2 3\n")
    props = {
        "context": str(tmp_path),
        "dockerfile": "Dockerfile",
        "tag": f"modelplane/test-successor:{tmp_path.name.lower()}",
    }
    provider = ImageProvider()
    old = provider.create(props)
    successor = provider.create(props)
    assert old.outs is not None and successor.outs is not None
    try:
        provider.delete(old.id, old.outs)
        assert docker.from_env().images.get(props["tag"]).id == successor.outs["image_id"]
    finally:
        provider.delete(successor.id, successor.outs)
    with pytest.raises(docker.errors.ImageNotFound):
        docker.from_env().images.get(props["tag"])


def test_a_failure_shows_why_the_worker_failed_not_gunicorns_halt() -> None:
    from modelplane.log_tail import telling_tail

    log = "\n".join(
        [
            "I azmlinfsrv - Invoking user's init function",
            "E azmlinfsrv - User's init function failed",
            "RuntimeError: the model file is corrupt",
            "I gunicorn.error - Worker exiting (pid: 9)",
            "Traceback (most recent call last):",
            '  File "/opt/venv/lib/python3.11/site-packages/gunicorn/arbiter.py", line 299, in handle_chld',
            "gunicorn.errors.HaltServer: <HaltServer 'Worker failed to boot.' 3>",
            *[f"  frame {n}" for n in range(40)],
        ]
    )
    tail = telling_tail(log, 30).splitlines()
    assert "RuntimeError: the model file is corrupt" in tail
    assert tail[-1] == "gunicorn.errors.HaltServer: <HaltServer 'Worker failed to boot.' 3>"
    assert telling_tail("a\nb\nc", 2) == "b\nc"


def test_the_users_exception_stays_in_the_tail_without_the_aml_servers_wrapper() -> None:
    from modelplane.log_tail import telling_tail

    # A pod's current run as the kubelet stopped it while its worker failed to boot (seen in CI).
    log = "\n".join(
        [
            "2026-12-02 10:12:36,700 E [8] azmlinfsrv - User's init function failed",
            "Traceback (most recent call last):",
            '  File "/var/azureml-app/score.py", line 2, in init',
            "    raise RuntimeError('the model file is corrupt (a test)')",
            "RuntimeError: the model file is corrupt (a test)",
            "",
            "The above exception was the direct cause of the following exception:",
            "",
            "Traceback (most recent call last):",
            '  File "/opt/venv/lib/python3.11/site-packages/azureml_inference_server_http/server/aml_blueprint.py",'
            " line 109, in setup",
            "    self.user_script.invoke_init()",
            '  File "/opt/venv/lib/python3.11/site-packages/azureml_inference_server_http/server/user_script.py",'
            " line 121, in invoke_init",
            "    raise UserScriptException(ex) from ex",
            "azureml_inference_server_http.server.user_script.UserScriptException: Caught an unhandled exception "
            "from the user script",
            "",
            "2026-12-02 10:12:36,723 I [8] azmlinfsrv - Model Directory Contents:",
            "2026-12-02 10:12:36,723 I [8] azmlinfsrv - 222873547372932/",
            # A model folder of many files: the server lists up to 200 of them.
            *[f"2026-12-02 10:12:36,723 I [8] azmlinfsrv -     shard-{n:03}.bin" for n in range(40)],
            "2026-12-02 10:12:36,753 I [8] gunicorn.error - Worker exiting (pid: 8)",
            "Traceback (most recent call last):",
            '  File "/opt/venv/lib/python3.11/site-packages/gunicorn/arbiter.py", line 270, in run',
            "    handler()",
            "StopIteration",
            "",
            "During handling of the above exception, another exception occurred:",
            "",
            "Traceback (most recent call last):",
            "    raise HaltServer(reason, self.WORKER_BOOT_ERROR)",
        ]
    )
    tail = telling_tail(log, 15).splitlines()
    assert "RuntimeError: the model file is corrupt (a test)" in tail, tail
    assert not any("UserScriptException: " in line for line in tail), tail
    assert "2026-12-02 10:12:36,723 I [8] azmlinfsrv - Model Directory Contents: (41 lines left out)" in tail, tail
