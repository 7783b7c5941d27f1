"""Rules across items, checked on the raw data so that they are reported together with the models'
own errors: names, cross-references, ports, the Azure section, and the files that paths name.

Paths are found through the schema's `FilePath`/`FolderPath` annotations (`schema.path_fields`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from modelplane.content import files_under
from modelplane.source import PathKey, Problem
from modelplane.spec.positions import Origins, display, model_of
from modelplane.spec.schema import (
    DEPLOYMENT_NAME,
    DEPLOYMENT_NAME_RULE,
    DNS_NAME,
    DNS_RULE,
    MODEL_NAME,
    MODEL_NAME_RULE,
    ONLINE_COMPUTE_TYPES,
    LocalEndpointSpec,
    PathField,
    StackSpec,
    is_remote,
    path_fields,
)

SECTIONS = ("models", "images", "clusters", "endpoints", "edge", "fpga", "batch")
SERVICE_SECTIONS = ("endpoints", "edge", "fpga")


def items(data: dict[str, Any], section: str) -> dict[str, dict[str, Any]]:
    """The well-formed items of a section (malformed ones are reported by the models)."""
    found = data.get(section)
    if not isinstance(found, dict):
        return {}
    return {name: item for name, item in found.items() if isinstance(item, dict)}


# --- paths ----------------------------------------------------------------------------------------


def path_values(
    model: type[BaseModel], item: dict[str, Any], where: PathKey
) -> Iterator[tuple[PathKey, dict[str, Any], str, PathField]]:
    """(path in the data, the dict holding it, field name, marker) for every path field of `item`,
    nested models included."""
    for name, marker in path_fields(model).items():
        if name in item:
            yield (*where, name), item, name, marker
    for name, info in model.model_fields.items():
        value = item.get(name)
        if isinstance(value, dict):
            inner = model_of(info.annotation, value)
            if isinstance(inner, type) and issubclass(inner, BaseModel):
                yield from path_values(inner, value, (*where, name))


def stack_path_values(data: dict[str, Any]) -> Iterator[tuple[PathKey, dict[str, Any], str, PathField]]:
    for section in SECTIONS:
        annotation = StackSpec.model_fields[section].annotation
        for name, item in items(data, section).items():
            model = model_of(annotation, item)
            if isinstance(model, type) and issubclass(model, BaseModel):
                yield from path_values(model, item, (section, name))


def base_of(holder: dict[str, Any], marker: PathField, folder: Path) -> Path:
    """The folder a relative path is resolved in: its `relative_to` sibling when given, else `folder`."""
    sibling = holder.get(marker.relative_to) if marker.relative_to else None
    return folder / sibling if isinstance(sibling, str) else folder


def base_named(holder: dict[str, Any], marker: PathField) -> str:
    """The base of a path in words, for 'not found' messages."""
    sibling = holder.get(marker.relative_to) if marker.relative_to else None
    if isinstance(sibling, str):
        return f"{marker.relative_to} '{sibling}'"
    return "the stack file's folder"


def resolve_paths(holder: dict[str, Any], model: type[BaseModel], folder: Path) -> None:
    """Make the path fields of one item absolute, relative to `folder` (AML's rules for `relative_to`)."""
    _resolve(list(path_values(model, holder, ())), folder)


def _resolve(found: list[tuple[PathKey, dict[str, Any], str, PathField]], folder: Path) -> None:
    for _where, owner, name, marker in found:
        value = owner.get(name)
        if isinstance(value, str) and not (marker.remote and is_remote(value)):
            owner[name] = str((base_of(owner, marker, folder) / value).resolve())


def check_files(data: dict[str, Any], origins: Origins, folder: Path) -> list[Problem]:
    problems = []
    for where, owner, name, marker in stack_path_values(data):
        value = owner.get(name)
        if not isinstance(value, str) or (marker.remote and is_remote(value)):
            continue
        resolved = base_of(owner, marker, folder) / value
        if not (resolved.is_dir() if marker.folder else resolved.exists()):
            kind = "folder" if marker.folder else "file"
            base = display(base_of(owner, marker, folder))
            message = f"{kind} not found: {value} (resolved against {base_named(owner, marker)}: {base})"
            problems.append(origins.problem(where, message))
        elif where[0] == "models" and not files_under(resolved):
            problems.append(origins.problem(where, f"holds no files: {value}"))
    return problems


def resolve_stack_paths(data: dict[str, Any], folder: Path) -> None:
    """Every path of the stack made absolute (the stack file's folder is the base)."""
    _resolve(list(stack_path_values(data)), folder)


# --- names and references -------------------------------------------------------------------------


def check_names(data: dict[str, Any], origins: Origins) -> list[Problem]:
    """Model names follow AML's model rule, other items are AML service names; endpoints, edge modules
    and FPGA services share one namespace."""
    problems = []
    for section in SECTIONS:
        pattern, rule = (MODEL_NAME, MODEL_NAME_RULE) if section == "models" else (DNS_NAME, DNS_RULE)
        for name in _names(data, section):
            if not pattern.match(str(name)):
                problems.append(origins.problem((section, name), f"invalid name '{name}': {rule}"))
    used: dict[str, str] = {}
    for section in SERVICE_SECTIONS:
        for name in _names(data, section):
            if name in used:
                problems.append(
                    origins.problem((section, name), f"service name '{name}' is already used in {used[name]}")
                )
            used[name] = section
    return problems


def _names(data: dict[str, Any], section: str) -> list[Any]:
    found = data.get(section)
    return list(found) if isinstance(found, dict) else []


def check_references(data: dict[str, Any], origins: Origins) -> list[Problem]:
    """Every name an item gives (a model, an image, a cluster) is declared."""
    wanted: list[tuple[PathKey, Any, str]] = []
    for name, image in items(data, "images").items():
        models = image.get("models")
        for index, model_name in enumerate(models if isinstance(models, list) else []):
            wanted.append((("images", name, "models", index), model_name, "models"))
    for name, endpoint in items(data, "endpoints").items():
        if "image" in endpoint or "deployments" not in endpoint:
            wanted.append((("endpoints", name, "image"), endpoint.get("image"), "images"))
        for deployment_name, deployment in items(endpoint, "deployments").items():
            wanted.append(
                (("endpoints", name, "deployments", deployment_name, "image"), deployment.get("image"), "images")
            )
        if endpoint.get("compute_type", "local") == "aks":
            wanted.append((("endpoints", name, "cluster"), endpoint.get("cluster"), "clusters"))
    for name, edge in items(data, "edge").items():
        wanted.append((("edge", name, "image"), edge.get("image"), "images"))
    for name, job in items(data, "batch").items():
        wanted.append((("batch", name, "image"), job.get("image"), "images"))
    for name, fpga in items(data, "fpga").items():
        if fpga.get("cluster") is not None:
            wanted.append((("fpga", name, "cluster"), fpga.get("cluster"), "clusters"))
    return [problem for path, value, section in wanted if (problem := _unknown(data, origins, path, value, section))]


def _unknown(data: dict[str, Any], origins: Origins, path: PathKey, value: Any, section: str) -> Problem | None:
    declared = items(data, section)
    if not isinstance(value, str) or value in declared:
        return None
    kind = section.removesuffix("s")
    return origins.problem(path, f"unknown {kind} '{value}'; declared {section}: {', '.join(declared) or 'none'}")


def check_ports(data: dict[str, Any], origins: Origins) -> list[Problem]:
    """Local endpoints share 127.0.0.1: one port each."""
    problems = []
    used: dict[Any, str] = {}
    for name, endpoint in items(data, "endpoints").items():
        if endpoint.get("compute_type", "local") != "local":
            continue
        port = endpoint.get("port", LocalEndpointSpec.model_fields["port"].default)
        if port in used:
            problems.append(
                origins.problem(("endpoints", name, "port"), f"port {port} is already used by endpoint '{used[port]}'")
            )
        used[port] = name
    return problems


TRAFFIC_KEYS = ("deployments", "traffic", "mirror_traffic")
ONE_DEPLOYMENT = {
    "aci": "ACI has no traffic split: an ACI endpoint runs one deployment (`image`); "
    "deployments with traffic between them run on local and AKS endpoints",
}


def check_deployments(data: dict[str, Any], origins: Origins) -> list[Problem]:
    """Several deployments with traffic between them are a local or AKS endpoint's; ACI says so. The keys
    reported are taken out, so that the schema does not report them a second time as unknown."""
    problems = []
    for name, endpoint in items(data, "endpoints").items():
        reason = ONE_DEPLOYMENT.get(str(endpoint.get("compute_type", "local")))
        if reason is None:
            continue
        for key in [key for key in TRAFFIC_KEYS if key in endpoint]:
            problems.append(origins.problem(("endpoints", name, key), reason))
            del endpoint[key]
    return problems


def check_online(data: dict[str, Any], origins: Origins) -> list[Problem]:
    """AML v2 names endpoints by its own rule, and serves Kubernetes online endpoints from a compute
    with its extension attached to the workspace: not from a v1 AKS compute under `clusters:`."""
    problems = []
    for name, endpoint in items(data, "endpoints").items():
        if endpoint.get("compute_type") not in ONLINE_COMPUTE_TYPES:
            continue
        if not DEPLOYMENT_NAME.match(str(name)):
            problems.append(
                origins.problem(("endpoints", name), f"invalid v2 endpoint name '{name}': {DEPLOYMENT_NAME_RULE}")
            )
        compute = endpoint.get("compute")
        if isinstance(compute, str) and compute in items(data, "clusters"):
            message = (
                f"'{compute}' is a v1 AKS compute under `clusters:`; a kubernetes_online endpoint runs on a Kubernetes"
                " compute attached with Azure ML's extension (`az ml compute attach --type Kubernetes`): give its name"
            )
            problems.append(origins.problem(("endpoints", name, "compute"), message))
    return problems


def azure_built_images(data: dict[str, Any]) -> set[str]:
    """Images that only AML v2 deployments use (online endpoints, and batch jobs on Azure): Azure ML
    builds their environment, not Modelplane."""
    v2: set[str] = set()
    other: set[str] = set()
    batch_on_azure = data.get("target") == "azure"
    for section in ("endpoints", "edge", "fpga", "batch"):
        for item in items(data, section).values():
            on_v2 = item.get("compute_type") in ONLINE_COMPUTE_TYPES or (section == "batch" and batch_on_azure)
            used = v2 if on_v2 else other
            used.update(str(d.get("image")) for d in items(item, "deployments").values())
            used.add(str(item.get("image")))
    return v2 - other


def check_remote_models(data: dict[str, Any], origins: Origins) -> list[Problem]:
    """A model kept on Azure serves only where Azure ML mounts it: AML v2 deployments on Azure. Every
    image built here (local, ACI, AKS, IoT Edge, local batch) needs the model's files on this machine."""
    problems = []
    built_by_azure = azure_built_images(data) if data.get("target") == "azure" else set()
    for name, model in items(data, "models").items():
        if not is_remote(model.get("path")):
            continue
        if data.get("target") != "azure":
            message = "is on Azure: a stack that runs here needs the model's files here (a path on this machine)"
            problems.append(origins.problem(("models", name, "path"), message))
            continue
        for image_name, image in items(data, "images").items():
            if name in (image.get("models") or []) and image_name not in built_by_azure:
                message = (
                    f"is on Azure, but image '{image_name}' is built on this machine and needs the model's files here;"
                    " a model on Azure serves AML v2 online endpoints and batch jobs"
                )
                problems.append(origins.problem(("models", name, "path"), message))
    return problems


def kubeconfig_cluster(data: dict[str, Any], name: Any) -> bool:
    """Whether cluster `name` is attached through a kubeconfig (any Kubernetes, no Azure needed)."""
    cluster = items(data, "clusters").get(name) if isinstance(name, str) else None
    attach = cluster.get("attach") if cluster else None
    return isinstance(attach, dict) and bool(attach.get("kubeconfig"))


def _azure_items(data: dict[str, Any]) -> list[PathKey]:
    """What runs on Azure: ACI, AKS on a cluster that is not a kubeconfig, edge, FPGA, AKS clusters."""
    found: list[PathKey] = []
    for name, endpoint in items(data, "endpoints").items():
        compute = endpoint.get("compute_type", "local")
        if compute in ("aci", *ONLINE_COMPUTE_TYPES) or (
            compute == "aks" and not kubeconfig_cluster(data, endpoint.get("cluster"))
        ):
            found.append(("endpoints", name, "compute_type"))
    found += [("edge", name) for name in items(data, "edge")]
    found += [("fpga", name) for name in items(data, "fpga")]
    found += [("clusters", name) for name in items(data, "clusters") if not kubeconfig_cluster(data, name)]
    return found


def check_azure(data: dict[str, Any], origins: Origins) -> list[Problem]:
    """Azure items need `target: azure` and an `azure:` section; an FPGA pool needs an AKS cluster."""
    problems = []
    if data.get("target") == "azure" and data.get("azure") is None:
        problems.append(origins.problem(("target",), "target 'azure' needs an `azure:` section"))
    if data.get("target") != "azure" or data.get("azure") is None:
        message = "runs on Azure: needs `target: azure` and an `azure:` section (location, resource_group)"
        problems += [origins.problem(path, message) for path in _azure_items(data)]
    for name, fpga in items(data, "fpga").items():
        if kubeconfig_cluster(data, fpga.get("cluster")):
            message = "an FPGA pool needs an AKS cluster, not one attached by kubeconfig"
            problems.append(origins.problem(("fpga", name, "cluster"), message))
    return problems


def check_stack(data: dict[str, Any], origins: Origins, folder: Path) -> list[Problem]:
    """Every rule across items."""
    return [
        *check_names(data, origins),
        *check_files(data, origins, folder),
        *check_references(data, origins),
        *check_ports(data, origins),
        *check_deployments(data, origins),
        *check_online(data, origins),
        *check_remote_models(data, origins),
        *check_azure(data, origins),
    ]
