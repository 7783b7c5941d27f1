"""Stop an update whose new pods crash-loop: the roll-out they belong to cannot complete.

pulumi-kubernetes waits for a Deployment until its timeout (the liveness window and a minute to
start: components/aks_endpoint.py), however early its new pods crash for good, as an `init()` that
raises does on every restart. While an update runs, the stack's clusters (reached by kubeconfig) are
polled for pods created since it started that the kubelet holds back after their container crashed
twice (CrashLoopBackOff); the first found asks the engine to cancel, as Ctrl-C does (the provider
stops waiting, nothing new starts), and the update fails with the pod's state and log
(modelplane.kube_diagnosis), within a minute instead of the whole window; the old replicas serve on.

A cancelled pulumi-kubernetes cannot read back the Deployment it has already changed, so the state
keeps the previous template while the cluster runs the new one: an `up` back to the previous
declaration would then see no change and leave the crashing pods. After a stopped update the stack's
Deployments are refreshed, so the state holds what the cluster runs.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

import requests
from pulumi import automation as auto

from modelplane.constants import KUBE_DEPLOYMENT_TYPE
from modelplane.engine import interrupt_update
from modelplane.kube_diagnosis import crash_looping_pods

# One crash may be a node's bad luck; the same container crashing twice is its code's.
CRASHES = 2
POLL_SECONDS = 2.0


class CrashWatch:
    """While its block runs, stops the update of `stack_name` at the first crash-looping new pod."""

    def __init__(self, kubeconfigs: Iterable[Path], stack_name: str) -> None:
        self.kubeconfigs = sorted(set(kubeconfigs))
        self.stack_name = stack_name
        self.crashed: list[str] = []
        """The crash-looping pods that stopped the update (`namespace/name`), when one did."""
        self._since = datetime.now(UTC).replace(microsecond=0)  # creation times have whole seconds
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="crash-watch", daemon=True)

    def __enter__(self) -> CrashWatch:
        if self.kubeconfigs:
            self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._done.set()
        if self._thread.is_alive():
            self._thread.join()

    def _watch(self) -> None:
        while not self._done.wait(POLL_SECONDS):
            crashed = self._crash_looping()
            if crashed and interrupt_update(self.stack_name):
                self.crashed = crashed
                return

    def _crash_looping(self) -> list[str]:
        found: list[str] = []
        for kubeconfig in self.kubeconfigs:
            # An unreachable cluster fails the update by itself, and says so.
            with contextlib.suppress(OSError, ValueError, requests.RequestException):
                found += crash_looping_pods(kubeconfig, self._since, CRASHES)
        return found

    def stopped_the_update(self) -> list[str]:
        """Why the update was stopped, one line per pod (none when it was not)."""
        return [
            f"update stopped: pod {pod} crash-loops (CrashLoopBackOff after {CRASHES} crashes or more);"
            " its roll-out cannot complete"
            for pod in self.crashed
        ]


def record_live_deployments(stack: auto.Stack) -> None:
    """The stack's Deployments as the cluster has them, into the state (a refresh of those alone)."""
    resources = (stack.export_stack().deployment or {}).get("resources", [])
    urns = [resource["urn"] for resource in resources if resource.get("type") == KUBE_DEPLOYMENT_TYPE]
    if urns:
        stack.refresh(target=urns)
