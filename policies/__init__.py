"""Modelplane's CrossGuard policy pack: rules as plain functions, one module per family.

`ALL_RULES` is importable without starting the pack; only `__main__.py` builds a PolicyPack.
"""

from __future__ import annotations

from policies import accelerators, auth, batch, online, production, sizing, tags, traffic
from policies.rules import Rule

ALL_RULES: list[Rule] = [
    *sizing.RULES,
    *auth.RULES,
    *production.RULES,
    *accelerators.RULES,
    *tags.RULES,
    *traffic.RULES,
    *online.RULES,
    *batch.RULES,
]
RULES_BY_ID = {rule.id: rule for rule in ALL_RULES}
