"""A stack after a run that was killed (SIGKILL, a cancelled CI job, a power cut), made whole before the
next `up`, `destroy` or `drift --remediate`.

A killed run leaves two things behind. Its lock, which refuses every later run: when every holder ran
on this machine and none runs any more, the lock is removed (`pulumi cancel`) and the command goes on.
And the operations it had started ("pending operations"), whose resources may exist without the state
knowing them: a container it created under a fresh name would be left running beside its successor.
`pulumi refresh --clear-pending-creates` reads every resource back and drops the pending operations,
as Pulumi's documentation advises; then such containers, and images built under tags the state does
not know, are removed. What other creates left is found again by name on the next run (a named
container replaced by its successor, a network adopted, a stored model copied again, a named Kubernetes
object applied over); Kubernetes objects the state still does not know once that run has succeeded are
removed from their cluster (modelplane.kube_leftovers).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import requests

from modelplane import kube_leftovers
from modelplane.kube_leftovers import KubeObject
from modelplane.state_guard import engine_error_lines, lock_holders

if TYPE_CHECKING:
    from pulumi import automation as auto

Result = TypeVar("Result")
CONTAINER_TYPE = "pulumi-python:dynamic/docker:Container"
IMAGE_TYPE = "pulumi-python:dynamic/docker:Image"
GONE = "(no such process runs here any more)"


def stale_lock(engine_lines: list[str]) -> list[str]:
    """The holders of a lock that only dead processes of this machine hold ([] for any other error)."""
    if not any("currently locked" in line for line in engine_lines):
        return []
    holders = lock_holders(engine_lines)
    return holders if holders and all(holder.endswith(GONE) for holder in holders) else []


def without_stale_lock(stack: auto.Stack, operation: Callable[[], Result], say: Callable[[str], None]) -> Result:
    """Run `operation`; when a killed run's lock refuses it, remove that lock and run it once more."""
    from pulumi import automation as auto

    try:
        return operation()
    except auto.CommandError as error:
        holders = stale_lock(engine_error_lines(error))
        if not holders:
            raise
    stack.cancel()
    say(f"removed the lock of a run that was killed ({'; '.join(holders)})")
    return operation()


def pending_operations(deployment: Mapping[str, Any]) -> list[dict[str, Any]]:
    """What the last run had started and not finished, from the stack's exported state."""
    return list(deployment.get("pending_operations") or [])


def interrupted(pending: list[dict[str, Any]]) -> str:
    """`creating endpoint-web-default, deleting model-ridge-store`."""
    return ", ".join(f"{op.get('type')} {str(op['resource']['urn']).rsplit('::', 1)[-1]}" for op in pending)


def created(deployment: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The resources (type, inputs, provider) the last run had started creating."""
    return [op["resource"] for op in pending_operations(deployment) if op.get("type") == "creating"]


def pending_creates(deployment: Mapping[str, Any], resource_type: str) -> list[dict[str, Any]]:
    """The inputs of the resources of `resource_type` the last run had started creating."""
    return [r.get("inputs") or {} for r in created(deployment) if r.get("type") == resource_type]


def pending_kube_objects(deployment: Mapping[str, Any]) -> list[KubeObject]:
    """The Kubernetes objects the last run had started creating."""
    return [found for r in created(deployment) if (found := kube_leftovers.kube_object(r)) is not None]


def known_ids(deployment: Mapping[str, Any]) -> set[str]:
    return {str(r["id"]) for r in deployment.get("resources") or [] if r.get("id")}


@dataclass(frozen=True)
class Leftovers:
    """What a killed run's pending creates may have left: judged against the state after the refresh,
    and only what existed before the recovery began (a run started since is none of its business)."""

    pending: Mapping[str, Any]
    """The exported state, with the dead run's pending operations."""
    known: set[str]
    """The resource ids in the state after the refresh."""
    before: datetime

    def older(self, created: str) -> bool:
        """Whether Docker's `Created` (RFC 3339, nanoseconds) is before the recovery began."""
        seconds = re.sub(r"(\.\d{6})\d+", r"\1", created.replace("Z", "+00:00"))
        return datetime.fromisoformat(seconds) < self.before


def remove_orphan_containers(left: Leftovers) -> list[str]:
    """Remove the containers pending creates left under fresh names (`<prefix>-<6 hex>`, docker.py)
    that the state does not know; their names."""
    prefixes = [str(i["name"]) for i in pending_creates(left.pending, CONTAINER_TYPE) if i.get("unique_name")]
    if not prefixes:
        return []
    from modelplane.providers.docker import engine_client

    patterns = [re.compile(rf"{re.escape(prefix)}-[0-9a-f]{{6}}") for prefix in prefixes]
    removed = []
    for container in engine_client().containers.list(all=True, filters={"label": "modelplane.managed=true"}):
        fresh = any(p.fullmatch(container.name) for p in patterns)
        if fresh and container.id not in left.known and left.older(container.attrs["Created"]):
            container.remove(force=True)
            removed.append(str(container.name))
    return removed


def remove_orphan_images(left: Leftovers) -> list[str]:
    """Remove the images pending creates built under tags the state does not know (the next run
    builds again what it still declares, from the layers it shares); their tags."""
    tags = {str(i["tag"]) for i in pending_creates(left.pending, IMAGE_TYPE)} - left.known
    if not tags:
        return []
    from docker import errors

    from modelplane.providers.docker import engine_client

    client, removed = engine_client(), []
    for tag in sorted(tags):
        with contextlib.suppress(errors.ImageNotFound, errors.APIError):  # absent, or in use: left as is
            image = client.images.get(tag)
            if image.labels.get("modelplane.managed") == "true" and left.older(image.attrs["Created"]):
                client.images.remove(tag)
                removed.append(tag)
    return removed


def recover_interrupted(stack: auto.Stack, say: Callable[[str], None]) -> list[KubeObject]:
    """Resolve a killed run's pending operations before the next run (nothing when there are none);
    the Kubernetes objects it had started creating, for after that run.
    The refresh comes first: it takes the stack's lock, so a run that is still going (whose pending
    operations these are) refuses it before anything of its own is touched."""
    from pulumi import automation as auto

    try:
        pending = stack.export_stack().deployment or {}
    except auto.StackNotFoundError:
        return []  # a stack not created yet: the operation creates it
    if not pending_operations(pending):
        return []
    began = datetime.now(UTC)
    stack.refresh(clear_pending_creates=True)
    say(f"the last run on stack {stack.name} was killed while {interrupted(pending_operations(pending))}")
    say("state refreshed from what runs; its pending operations cleared")
    left = Leftovers(pending, known_ids(stack.export_stack().deployment or {}), began)
    removed = remove_orphan_containers(left) + remove_orphan_images(left)
    if removed:
        say(f"removed what it had created that the state does not know: {', '.join(removed)}")
    return pending_kube_objects(pending)


def remove_kube_leftovers(
    stack: auto.Stack, objects: list[KubeObject], kubeconfigs: Mapping[str, Path], say: Callable[[str], None]
) -> None:
    """After the run that followed a killed one: remove the Kubernetes objects the killed run created that
    the state still does not know, from the cluster each one's provider reached (by its kubeconfig). The
    run has succeeded by then: a failure here is told, not raised."""
    by_provider: dict[str, list[KubeObject]] = {}
    for found in kube_leftovers.unknown_to(stack.export_stack().deployment or {}, objects):
        by_provider.setdefault(kube_leftovers.provider_name(found.provider), []).append(found)
    for provider, left in by_provider.items():
        names = ", ".join(map(str, left))
        kubeconfig = kubeconfigs.get(provider)
        if kubeconfig is None:
            say(f"the killed run left {names} on a cluster no kubeconfig of the stack reaches: remove with kubectl")
            continue
        try:
            removed = kube_leftovers.remove(left, kubeconfig)
        except (OSError, ValueError, requests.RequestException) as error:
            say(f"could not remove {names}, which the killed run left on the cluster of {kubeconfig}: {error}")
            continue
        if removed:
            say(f"removed what the killed run had created that the state does not know: {', '.join(removed)}")


def recovering(
    stack: auto.Stack,
    operation: Callable[[], Result],
    say: Callable[[str], None],
    kubeconfigs: Mapping[str, Path] | None = None,
) -> Result:
    """`operation` on a stack made whole first: a killed run's lock removed, its pending operations resolved;
    after it, the Kubernetes objects the killed run left removed (`kubeconfigs`: by Kubernetes provider name)."""

    def whole_then_run() -> Result:
        objects = recover_interrupted(stack, say)
        result = operation()
        if objects:
            remove_kube_leftovers(stack, objects, kubeconfigs or {}, say)
        return result

    return without_stale_lock(stack, whole_then_run, say)
