"""Traffic between the deployments of one endpoint (AML v2's `traffic` and `mirror_traffic`): the
rules, written once, that the stack's schema enforces and the policy pack checks again on the plan.

`traffic` maps deployments to whole percents of live requests: they sum to 100, or to 0 (an endpoint
that serves no one, as AML allows). `mirror_traffic` copies a share of live requests to one deployment
whose answers are dropped: at most 50%, and never to a deployment that takes live traffic.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

MIRROR_MAX = 50


def traffic_problems(traffic: Mapping[str, int], deployments: Iterable[str]) -> list[str]:
    """What is wrong with a live traffic split over `deployments`."""
    declared = set(deployments)
    problems = [_unknown("traffic", name, declared) for name in traffic if name not in declared]
    problems += [
        f"traffic to '{name}' is {share}%: a share is a whole percent from 0 to 100"
        for name, share in traffic.items()
        if not 0 <= share <= 100
    ]
    total = sum(traffic.values())
    if total not in (0, 100):
        shares = ", ".join(f"{name} {share}" for name, share in traffic.items())
        problems.append(f"traffic sums to {total} ({shares}): it must sum to 100, or to 0 to serve no one")
    return problems


def mirror_problems(mirror: Mapping[str, int], traffic: Mapping[str, int], deployments: Iterable[str]) -> list[str]:
    """What is wrong with a mirror of live traffic."""
    declared = set(deployments)
    problems = [_unknown("mirror_traffic", name, declared) for name in mirror if name not in declared]
    if len(mirror) > 1:
        problems.append(f"mirror_traffic names {len(mirror)} deployments: one deployment takes the mirror")
    for name, share in mirror.items():
        if not 0 <= share <= MIRROR_MAX:
            problems.append(f"mirror_traffic to '{name}' is {share}%: at most {MIRROR_MAX}%")
        if traffic.get(name, 0) > 0 and share > 0:
            problems.append(
                f"mirror_traffic to '{name}', which takes {traffic[name]}% of live traffic: "
                "mirror only to a deployment without live traffic"
            )
    return problems


def unrouted_problem(deployments: Iterable[str], traffic: Mapping[str, int]) -> str | None:
    """Several deployments and no split: where live requests go must be said."""
    names = list(deployments)
    if len(names) > 1 and not traffic:
        return f"with more than one deployment, say where traffic goes (e.g. traffic: {{{names[0]}: 100}})"
    return None


def live_shares(deployments: Iterable[str], traffic: Mapping[str, int]) -> dict[str, int]:
    """Percent of live requests per deployment: the split, or all of it to a single deployment."""
    names = list(deployments)
    if traffic:
        return {name: traffic.get(name, 0) for name in names}
    return {name: 100 for name in names}


def _unknown(field: str, name: str, declared: set[str]) -> str:
    return f"{field} names '{name}', which is not a deployment; deployments: {', '.join(sorted(declared)) or 'none'}"


def shift_line(endpoint: str, before: Mapping[str, int], after: Mapping[str, int]) -> str | None:
    """`endpoint web: traffic blue 90→0, green 10→100`, or None when nothing moved."""
    names = sorted(set(before) | set(after))
    moved = [f"{name} {before.get(name, 0)}→{after.get(name, 0)}" for name in names]
    if all(before.get(name, 0) == after.get(name, 0) for name in names):
        return None
    return f"endpoint {endpoint}: traffic {', '.join(moved)}"


def share_entries(traffic: Mapping[str, int], mirror: Mapping[str, int]) -> dict[str, str]:
    """Both maps as flat string entries (`traffic.blue: "90"`), as a Kubernetes ConfigMap holds them."""
    entries = {f"traffic.{name}": str(share) for name, share in traffic.items()}
    entries.update({f"mirror_traffic.{name}": str(share) for name, share in mirror.items()})
    return entries


def shares_from_entries(entries: Mapping[str, object], key: str) -> dict[str, int]:
    """One map (`traffic` or `mirror_traffic`) back from `share_entries`' entries."""
    prefix = f"{key}."
    return {name.removeprefix(prefix): int(str(share)) for name, share in entries.items() if name.startswith(prefix)}
