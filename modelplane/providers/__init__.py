"""Pulumi dynamic providers for what runs on this machine (no provider plugin binary needed).

Importing this package makes the process skip its last garbage collection at exit (fast_exit.py) and
keeps Pulumi's provider serialisation from stacking pickler wrappers (pickling.py): the program imports
it first thing, and Pulumi's dynamic-provider host when it unpickles a provider.
"""

from __future__ import annotations

import pulumi

from modelplane.constants import DYNAMIC_TYPES
from modelplane.fast_exit import freeze_heap_at_exit
from modelplane.pickling import guard_provider_serialization

freeze_heap_at_exit()
guard_provider_serialization()

__all__ = [
    "DYNAMIC_PACKAGE",
    "DYNAMIC_TYPES",
    "UNTYPED_DYNAMIC_TYPE",
    "local_resources_provider",
    "typed_resource_options",
]

DYNAMIC_PACKAGE = "pulumi-python"
"""The package of every dynamic resource."""
UNTYPED_DYNAMIC_TYPE = "pulumi-python:dynamic:Resource"
"""The one type every dynamic resource had before they were typed: the alias that carries them over."""

LOCAL_PROVIDER_NAME = "local-resources"


def local_resources_provider() -> pulumi.ProviderResource:
    """The explicit provider that runs Modelplane's dynamic resources.

    Registered first thing by the program so that the engine starts the provider host while the
    program is still loading (modelplane/startup.py). Stacks created before it existed used
    Pulumi's default provider for the package; the alias makes the engine treat that one as this
    one, so their resources are neither replaced nor shown as changed.
    """
    default = f"urn:pulumi:{pulumi.get_stack()}::{pulumi.get_project()}::pulumi:providers:{DYNAMIC_PACKAGE}::default"
    return pulumi.ProviderResource(
        DYNAMIC_PACKAGE, LOCAL_PROVIDER_NAME, None, pulumi.ResourceOptions(aliases=[default])
    )


def typed_resource_options(
    own: pulumi.ResourceOptions | None, opts: pulumi.ResourceOptions | None
) -> pulumi.ResourceOptions:
    """The resource's `own` options and the caller's `opts`, with the alias from the untyped dynamic
    type: a resource deployed before its type existed is the same resource now (no change, no replacement)."""
    alias = pulumi.ResourceOptions(aliases=[pulumi.Alias(type_=UNTYPED_DYNAMIC_TYPE)])
    return pulumi.ResourceOptions.merge(pulumi.ResourceOptions.merge(alias, own), opts)
