"""The keys provider's rotation rules: one key at a time, on request or by age, never both."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from modelplane.constants import DYNAMIC_TYPES, ROTATE_KEY_VARIABLE
from modelplane.providers.keys import KeysProvider, key_to_rotate, rotation_request
from modelplane.spec import load_stack
from tests.mocks import run_under_mocks

STACKS = Path(__file__).resolve().parent.parent / "stacks"

NOW = datetime.now(UTC)  # the provider's diff reads the clock too


def _created(days_ago: float) -> str:
    return (NOW - timedelta(days=days_ago)).isoformat(timespec="seconds")


def _state(primary_days: float = 1, secondary_days: float = 1, **extra: Any) -> dict[str, Any]:
    return {
        "primary_key": "old-primary",
        "secondary_key": "old-secondary",
        "primary_created": _created(primary_days),
        "secondary_created": _created(secondary_days),
        "generation": 0,
        **extra,
    }


def test_a_new_request_rotates_the_named_key_once() -> None:
    request = {"key": "secondary", "id": "r1"}
    assert key_to_rotate(_state(), {"rotate": request}, NOW) == "secondary"
    assert key_to_rotate(_state(last_request="r1"), {"rotate": request}, NOW) is None


def test_age_rotates_only_the_older_key_once_it_is_due() -> None:
    news = {"rotation_days": 30}
    assert key_to_rotate(_state(primary_days=29, secondary_days=10), news, NOW) is None
    assert key_to_rotate(_state(primary_days=31, secondary_days=40), news, NOW) == "secondary"
    assert key_to_rotate(_state(primary_days=31, secondary_days=10), news, NOW) == "primary"
    assert key_to_rotate(_state(primary_days=400), {}, NOW) is None  # no age rule, no rotation


def test_update_regenerates_one_key_and_keeps_the_other() -> None:
    olds = _state(primary_days=31, secondary_days=2)
    outs = KeysProvider().update("id", olds, {"rotation_days": 30}).outs
    assert outs is not None
    assert outs["secondary_key"] == "old-secondary" and outs["secondary_created"] == olds["secondary_created"]
    assert outs["primary_key"] not in ("old-primary", "") and len(outs["primary_key"]) >= 43
    assert outs["generation"] == 1
    # The next update finds nothing due: the fresh primary is young, the secondary too.
    assert not KeysProvider().diff("id", outs, {"rotation_days": 30}).changes


def test_keys_from_before_creation_times_are_stamped_not_rotated() -> None:
    olds = {"primary_key": "old-primary", "secondary_key": "old-secondary", "rotation": 0}
    assert KeysProvider().diff("id", olds, {"rotation": 0}).changes is False
    assert KeysProvider().diff("id", olds, {"rotation": 0, "rotation_days": 30}).changes is True
    outs = KeysProvider().update("id", olds, {"rotation": 0, "rotation_days": 30}).outs
    assert outs is not None
    assert (outs["primary_key"], outs["secondary_key"]) == ("old-primary", "old-secondary")
    assert outs["primary_created"] and outs["secondary_created"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("web:primary:abc", {"key": "primary", "id": "abc"}),
        ("web:secondary:abc", {"key": "secondary", "id": "abc"}),
        ("other:primary:abc", None),
        ("web:tertiary:abc", None),
        ("web:primary", None),
        ("", None),
    ],
)
def test_rotation_request_names_one_endpoint_and_key(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: dict[str, str] | None
) -> None:
    monkeypatch.setenv(ROTATE_KEY_VARIABLE, value)
    assert rotation_request("web") == expected


def test_key_rotation_days_reaches_the_keys_of_the_endpoint(tmp_path: Path) -> None:
    text = STACKS.joinpath("local.yaml").read_text().replace("../examples", str(STACKS.parent / "examples"))
    text = text.replace("    port: 8891\n", "    port: 8891\n    key_rotation_days: 30\n")
    stack = tmp_path / "local.yaml"
    stack.write_text(text)
    run = run_under_mocks(load_stack(stack), tmp_path / "state")
    keys = {r.name: r.inputs for r in run.mocks.of_type(DYNAMIC_TYPES["keys"])}
    assert keys["endpoint-digits-keys"]["rotation_days"] == 30
    assert keys["endpoint-regression-keys"].get("rotation_days") is None


def test_key_rotation_days_is_refused_with_keys_the_user_supplies(tmp_path: Path) -> None:
    from modelplane.source import SpecError

    stack = tmp_path / "aci.yaml"
    stack.write_text(
        "target: azure\nazure: {location: eastus, resource_group: rg}\n"
        "models: {m: {path: m.pkl}}\nimages: {i: {entry_script: score.py, models: [m]}}\n"
        "endpoints:\n  web:\n    compute_type: aci\n    image: i\n    auth_enabled: true\n"
        "    primary_key: one\n    secondary_key: two\n    key_rotation_days: 30\n"
    )
    (tmp_path / "m.pkl").write_bytes(b"model")
    (tmp_path / "score.py").write_text("def init():\n    pass\n\n\ndef run(data):\n    return data\n")
    with pytest.raises(SpecError) as raised:
        load_stack(stack)
    assert "key_rotation_days rotates generated keys" in str(raised.value.problems[0])
    assert (raised.value.problems[0].line, raised.value.problems[0].path) == (6, "endpoints.web")
