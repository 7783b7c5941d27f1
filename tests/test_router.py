"""The router's nginx configuration: what each traffic shape renders to, and that real nginx (the
router image) accepts every shape."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelplane.router import CONFIG_PATH, ROUTER_IMAGE, Route, config_digest, render_config
from modelplane.spec.schema import EnvironmentSpec, ImageSpec

SHAPES = {
    "single": [Route("default", "web-default-1", 5001, 100)],
    "split": [Route("blue", "web-blue-1", 5001, 90), Route("green", "web-green-1", 5001, 10)],
    "shifted": [Route("blue", "web-blue-1", 5001, 0), Route("green", "web-green-1", 5001, 100)],
    "mirror": [Route("blue", "web-blue-1", 5001, 100), Route("green", "web-green-1", 5001, 0, mirror=20)],
    "nobody": [Route("blue", "web-blue-1", 5001, 0)],
}


def test_a_split_sends_each_share_and_the_last_deployment_takes_the_rest() -> None:
    config = render_config("web", SHAPES["split"])
    assert '    split_clients "live${request_id}" $deployment {\n        90% blue;\n        * green;\n    }' in config
    assert "        blue web-blue-1:5001;\n        green web-green-1:5001;" in config
    assert "add_header azureml-model-deployment $deployment always;" in config
    assert "mirror " not in config


def test_one_deployment_with_traffic_takes_every_request() -> None:
    config = render_config("web", SHAPES["shifted"])
    assert 'map "" $deployment {\n        default green;\n    }' in config
    assert "split_clients" not in config


def test_a_mirror_copies_its_share_and_drops_the_answers() -> None:
    config = render_config("web", SHAPES["mirror"])
    assert "mirror /_modelplane/mirror;" in config and "mirror_request_body on;" in config
    assert '$mirror_backend {\n        20% web-green-1:5001;\n        * "";\n    }' in config
    assert "internal;" in config


def test_no_traffic_is_a_503_that_says_so() -> None:
    config = render_config("web", SHAPES["nobody"])
    assert 'return 503 \'{"error": "no deployment of endpoint web takes traffic"}\';' in config
    assert "proxy_pass" not in config


def test_the_router_refuses_bodies_over_the_deployments_limit_itself() -> None:
    """A body the scoring server would refuse is refused here, with a JSON answer: streamed on, the
    server answers 413 and closes mid-body, and the client gets a 502."""
    config = render_config("web", [Route("blue", "c", 5001, 100)], max_body_bytes=20971520)
    assert "client_max_body_size 20971520;" in config
    assert '"the request body is over the limit of 20971520 bytes"' in config
    assert "client_max_body_size 10485760;" in render_config("web", [Route("blue", "c", 5001, 100)])


def test_an_images_body_limit_is_the_one_it_sets(tmp_path: Path) -> None:
    steps = tmp_path / "steps.dockerfile"
    steps.write_text("RUN true\nENV MODELPLANE_MAX_BODY_BYTES=52428800\n")
    assert ImageSpec(entry_script=Path("score.py"), extra_docker_file_steps=steps).max_body_bytes == 52428800
    inline = EnvironmentSpec(environment_variables={"MODELPLANE_MAX_BODY_BYTES": "1048576"})
    assert ImageSpec(entry_script=Path("score.py"), environment=inline).max_body_bytes == 1048576
    assert ImageSpec(entry_script=Path("score.py")).max_body_bytes == 10 * 1024 * 1024


def test_the_router_serves_the_digest_of_its_own_configuration() -> None:
    split, shifted = render_config("web", SHAPES["split"]), render_config("web", SHAPES["shifted"])
    digest = config_digest(split)
    assert digest != config_digest(shifted)
    probe = "location = /_modelplane/router {\n            default_type text/plain;\n"
    assert f'{probe}            return 200 "{digest}";' in split
    assert len(digest) == 16 and digest == config_digest(render_config("web", SHAPES["split"]))


@pytest.mark.docker
@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_nginx_accepts_every_shape(shape: str) -> None:
    import docker

    from modelplane.providers.router import config_archive, ensure_router_image

    client = docker.from_env()
    ensure_router_image(client)
    config = render_config("web", SHAPES[shape])
    container = client.containers.create(ROUTER_IMAGE, command=["nginx", "-c", CONFIG_PATH, "-t"])
    try:
        container.put_archive("/", config_archive(config))
        container.start()
        result = container.wait(timeout=60)
        output = container.logs().decode()
    finally:
        container.remove(force=True)
    # Docker's DNS resolves the deployments' names only on the endpoint's network: nginx -t checks syntax
    # and directives, and variables keep the names unresolved until a request needs them.
    assert result["StatusCode"] == 0, output
    assert "syntax is ok" in output
