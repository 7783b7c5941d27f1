"""Many dynamic resources in one process: Pulumi's provider serialisation must not stack pickler
wrappers until pickling a dict overflows the stack (modelplane/pickling.py)."""

from __future__ import annotations

import pickle
from typing import Any

from pulumi.dynamic import dynamic

import modelplane.providers  # noqa: F401  (installs the guard)
from modelplane.providers.docker import ContainerProvider


def test_serialising_thousands_of_providers_leaves_the_pickler_as_it_was() -> None:
    pickler: Any = getattr(pickle, "_Pickler")  # noqa: B009
    before = pickler._batch_setitems
    first = dynamic.serialize_provider(ContainerProvider())
    for _ in range(3000):
        assert dynamic.serialize_provider(ContainerProvider()) == first  # still deterministic
    assert pickler._batch_setitems is before
    nested: dict[str, object] = {"a": {"b": {"c": list(range(10))}}}
    assert pickle.loads(getattr(pickle, "_dumps")(nested)) == nested  # noqa: B009
