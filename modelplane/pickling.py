"""A guard around Pulumi's serialisation of dynamic providers.

`pulumi.dynamic.dynamic.serialize_provider` makes pickling sort dictionaries (deterministic output) by
wrapping `pickle._Pickler._batch_setitems`, and never unwraps it: every dynamic resource a process
registers adds one more wrapper, so a program (or a test process) that registers about a thousand
of them meets `RecursionError` in any later pickling of a dict (pulumi/pulumi#17803). The guard puts
the pickler's methods back after each call, one call at a time.
"""

from __future__ import annotations

import pickle
import threading
from typing import Any

_LOCK = threading.Lock()
GUARD_MARK = "_modelplane_restores_pickler"


def guard_provider_serialization() -> None:
    """Wrap serialize_provider once per process."""
    from pulumi.dynamic import dynamic

    original = dynamic.serialize_provider
    if getattr(original, GUARD_MARK, False):
        return

    def serialize_provider(provider: Any) -> str:
        pickler: Any = getattr(pickle, "_Pickler")  # noqa: B009  (private: the class Pulumi patches)
        with _LOCK:
            batch, save_dict = pickler._batch_setitems, pickler.save_dict
            try:
                return str(original(provider))
            finally:
                pickler._batch_setitems, pickler.save_dict = batch, save_dict

    setattr(serialize_provider, GUARD_MARK, True)
    dynamic.serialize_provider = serialize_provider
