"""`modelplane plan`: offline plans, comparisons, formats, secrets, size limits; and on the engine."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import docker
import jsonschema
import pytest

from modelplane.engine import PROJECT_ROOT, venv_bin
from modelplane.plan import offline_plan, render_markdown
from modelplane.plan.mocks import IOT_HUB_KEY, KUBECONFIG, REGISTRY_PASSWORD
from modelplane.plan.model import Change, Plan, ResourcePlan
from modelplane.report import MARKDOWN_LIMIT
from modelplane.spec import load_stack
from tests.conftest import free_port

STACKS = PROJECT_ROOT / "stacks"
EXAMPLES = PROJECT_ROOT / "examples"
SCHEMA = json.loads((PROJECT_ROOT / "docs" / "plan.schema.json").read_text())


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(venv_bin() / "modelplane"), *args], capture_output=True, text=True, timeout=600, env=env or None
    )


def copy_of(stack: str, folder: Path, edit: tuple[str, str] | None = None) -> Path:
    """stacks/<stack>.yaml copied to `folder` (same stem, so resource names match), optionally edited."""
    text = (STACKS / f"{stack}.yaml").read_text().replace("../examples", str(EXAMPLES))
    if edit is not None:
        assert edit[0] in text
        text = text.replace(edit[0], edit[1])
    path = folder / f"{stack}.yaml"
    path.write_text(text)
    return path


def test_unedited_prod_has_no_violations() -> None:
    result = cli("plan", "--stack", "prod", "--offline")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No policy violations." in result.stdout


def test_undersized_fast_prod_cluster_is_refused_naming_the_cluster(tmp_path: Path) -> None:
    stack = copy_of("prod", tmp_path, ("    agent_count: 3\n", "    agent_count: 2\n"))
    result = cli(
        "plan", "--file", str(stack), "--offline", "--policy-config", str(PROJECT_ROOT / "policies/config/prod.json")
    )
    assert result.returncode == 1
    assert (
        "[mandatory] aks-fast-prod-capacity (cluster-prod-aks-compute): Give FAST_PROD cluster prod-aks at least "
        "12 vCPUs: 2 x Standard_D3_v2 (4 vCPUs) = 8." in result.stdout
    )


def saved_plan(stack: str, tmp_path: Path) -> Path:
    """The offline JSON plan of stacks/<stack>.yaml, saved under `tmp_path` (a copy of the stack beside it)."""
    base = tmp_path / "base"
    base.mkdir()
    saved = tmp_path / "base-plan.json"
    made = cli("plan", "--file", str(copy_of(stack, base)), "--offline", "--format", "json", "--out", str(saved))
    assert made.returncode == 0, made.stderr
    return saved


def edited_copy(stack: str, tmp_path: Path, edit: tuple[str, str]) -> Path:
    """stacks/<stack>.yaml edited, in a folder of its own beside the saved plan's copy."""
    head = tmp_path / "head"
    head.mkdir()
    return copy_of(stack, head, edit)


def test_against_a_saved_plan_shows_exactly_the_agent_pool_change(tmp_path: Path) -> None:
    saved = saved_plan("prod", tmp_path)
    edited = edited_copy("prod", tmp_path, ("    agent_count: 3\n", "    agent_count: 2\n"))
    result = cli("plan", "--file", str(edited), "--against", str(saved), "--format", "json")
    assert result.returncode == 1  # the sizing violation
    plan = json.loads(result.stdout)
    changed = {
        (r["name"], c["path"], c["old"], c["new"]) for r in plan["resources"] if r["op"] != "same" for c in r["changes"]
    }
    assert changed == {
        ("cluster-prod-aks-aks", "agentPoolProfiles[0].count", 3, 2),
        ("cluster-prod-aks-compute", "properties.properties.agentCount", 3, 2),
    }
    assert plan["counts"]["create"] == plan["counts"]["delete"] == 0


def test_against_a_git_ref() -> None:
    """The committed prod stack against itself at HEAD: nothing changes."""
    result = cli("plan", "--stack", "prod", "--against", "HEAD", "--format", "json")
    if result.returncode != 0 and "git cannot read HEAD" in result.stderr:
        pytest.fail(f"the project must be a git checkout for --against: {result.stderr}")
    plan = json.loads(result.stdout)
    assert plan["against"] == "prod@HEAD"
    assert {r["op"] for r in plan["resources"]} == {"same"}, [r for r in plan["resources"] if r["op"] != "same"]


@pytest.mark.parametrize("output_format", ["text", "markdown", "json"])
def test_secrets_never_appear_in_any_format(output_format: str) -> None:
    result = cli("plan", "--stack", "prod", "--offline", "--format", output_format)
    assert result.returncode == 0, result.stderr
    printed = result.stdout + result.stderr
    tls_key_line = (EXAMPLES / "tls" / "demo-only.key").read_text().splitlines()[1]
    for secret in (REGISTRY_PASSWORD, IOT_HUB_KEY, "mock-token", KUBECONFIG.splitlines()[2], tls_key_line):
        assert secret not in printed, secret
    if output_format == "json":
        assert "[secret]" in printed


def test_json_plan_follows_the_documented_schema() -> None:
    result = cli("plan", "--stack", "dev", "--offline", "--format", "json")
    jsonschema.validate(json.loads(result.stdout), SCHEMA)


def test_markdown_fits_a_pr_comment_with_500_endpoints(tmp_path: Path) -> None:
    example = EXAMPLES / "sklearn-regression"
    endpoints = "".join(f"  ep{i}:\n    image: scorer\n    port: {10000 + i}\n" for i in range(500))
    stack = tmp_path / "big.yaml"
    stack.write_text(
        f"models:\n  ridge:\n    path: {example}/model/sklearn_regression_model.pkl\nimages:\n  scorer:\n"
        f"    inference_config: {example}/inferenceconfig.json\n    source_directory: {example}\n"
        f"    models: [ridge]\nendpoints:\n{endpoints}"
    )
    plan = offline_plan(load_stack(stack), "big", None)
    markdown = render_markdown(plan)
    assert len(markdown) <= MARKDOWN_LIMIT
    assert markdown.startswith("### Modelplane plan: `big` (offline)")
    assert f"| {plan.counts['create']} | 0 | 0 | 0 | 0 |" in markdown
    assert "more entries not shown" in markdown


@pytest.mark.engine
def test_mandatory_violation_on_the_engine_stops_plan_and_up(tmp_path: Path) -> None:
    port = free_port()
    stack = tmp_path / "open.yaml"
    stack.write_text(
        f"""\
models:
  ridge: {{path: {EXAMPLES}/sklearn-regression/model/sklearn_regression_model.pkl}}
images:
  scorer:
    inference_config: {EXAMPLES}/sklearn-regression/inferenceconfig.json
    source_directory: {EXAMPLES}/sklearn-regression
    models: [ridge]
endpoints:
  open:
    image: scorer
    port: {port}
    auth_enabled: false
"""
    )
    config = tmp_path / "strict.json"
    config.write_text('{"local-endpoint-auth": "mandatory"}')
    (tmp_path / "state").mkdir()
    (tmp_path / "passphrase").write_text("plan-test\n")
    env = {**os.environ, "MODELPLANE_STATE": str(tmp_path)}
    plan = cli("plan", "--file", str(stack), "--policy-config", str(config), "--format", "markdown", env=env)
    assert plan.returncode == 1, plan.stdout + plan.stderr
    assert (
        "| mandatory | `local-endpoint-auth` | `endpoint-open-default` | Enable auth on local endpoint open"
        in plan.stdout
    )
    up = cli("up", "--file", str(stack), "--policy-config", str(config), "--yes", env=env)
    assert up.returncode == 1
    assert "nothing was applied" in up.stderr
    names = [c.name for c in docker.from_env().containers.list(all=True)]
    assert "modelplane-open-open" not in names
    # Advisory (the default level): the same stack plans with a warning and exit 0.
    advisory = cli("plan", "--file", str(stack), env=env)
    assert advisory.returncode == 0, advisory.stderr
    assert "[advisory] local-endpoint-auth" in advisory.stdout
    # The engine's own error reaches the user, not only "it failed" (here: selecting the stack).
    (tmp_path / "passphrase").write_text("not-the-passphrase\n")
    wrong = cli("plan", "--file", str(stack), env=env)
    (PROJECT_ROOT / "Pulumi.open.yaml").unlink(missing_ok=True)  # the engine's stack settings
    assert wrong.returncode == 1
    assert "pulumi: error:" in wrong.stderr and "passphrase" in wrong.stderr, wrong.stderr


def test_a_v2_traffic_shift_is_a_line_of_its_own(tmp_path: Path) -> None:
    saved = saved_plan("dev-v2", tmp_path)
    shifted = edited_copy(
        "dev-v2", tmp_path, ("      blue: 90\n      green: 10\n", "      blue: 50\n      green: 50\n")
    )
    result = cli("plan", "--file", str(shifted), "--against", str(saved), "--format", "json")
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert [r["name"] for r in plan["resources"] if r["op"] != "same"] == ["endpoint-regression-v2-traffic"]
    assert plan["trafficShifts"][0]["before"] == {"blue": 90, "green": 10}
    assert plan["trafficShifts"][0]["after"] == {"blue": 50, "green": 50}


@pytest.mark.parametrize("written", ["data.traffic.{}", 'data["traffic.{}"]'])
def test_a_traffic_shift_of_an_aks_router_is_its_own_line(written: str) -> None:
    """An AKS endpoint's router ConfigMap carries the shares as `traffic.<deployment>` entries of its
    data: a plan under mocks flattens them with dots, the engine's diff quotes them."""
    changes = (
        Change(written.format("blue"), "90", "0"),
        Change(written.format("green"), "10", "100"),
        Change('data["mirror_traffic.green"]', "20", "0"),
        Change('data["nginx.conf"]', "old", "new"),
    )
    config = ResourcePlan(
        "endpoint-web-router-config", "kubernetes:core/v1:ConfigMap", "replace", changes, component="endpoint 'web'"
    )
    plan = Plan("prod", "online", resources=[config])
    assert [shift.line for shift in plan.traffic_shifts()] == ["endpoint web: traffic blue 90→0, green 10→100"]
