"""ScoringImage: the image that serves an inference config, built from a rendered Dockerfile."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pulumi

from modelplane.base_images import DEFAULT_BASE
from modelplane.conda import base_for, conda_environment
from modelplane.dockerfile import ImageRecipe, ModelFiles, write_context
from modelplane.providers.docker import Image
from modelplane.spec import EnvironmentSpec, ImageSpec


@dataclass(frozen=True)
class RegistryTarget:
    """A registry the image is pushed to (the workspace's container registry, or an attached cluster's)."""

    server: pulumi.Input[str]
    """Login server, e.g. myregistry.azurecr.io."""
    username: pulumi.Input[str]
    """Registry user."""
    password: pulumi.Input[str]
    """Registry password (a secret)."""


def registry_from_file(path: Path) -> RegistryTarget:
    """A registry's address and credentials from a JSON file (the local cluster's `registry.json`)."""
    found = json.loads(path.read_text())
    return RegistryTarget(
        server=str(found["address"]), username=str(found["username"]), password=pulumi.Output.secret(found["password"])
    )


@dataclass(frozen=True)
class ScoringImageArgs:
    image_name: str
    """The key under `images:`; the image repository is named after it."""
    spec: ImageSpec
    """The inference config."""
    models: tuple[ModelFiles, ...]
    """The models baked into the image, with their content versions."""
    build_root: Path
    """Folder where build contexts are laid out (gitignored state)."""
    repository_prefix: str = "modelplane"
    """Repository namespace for local images, e.g. modelplane/<stack>."""
    registry: RegistryTarget | None = None
    """Push to this registry; None keeps the image on the local engine."""
    port: int = 5001
    """Port the scoring server listens on inside the container."""


def base_image_of(spec: ImageSpec) -> str:
    """The stack's own base image, else the base whose Python meets the conda `python` pin (the
    default when none does: `spec.notices` has warned)."""
    if spec.base is not None:
        return spec.base
    environment = spec.environment or EnvironmentSpec()
    conda = conda_environment(spec.conda_file, environment.conda_dependencies)
    return (base_for(conda.python if conda else None) or DEFAULT_BASE).image


def local_tag(repository_prefix: str, image_name: str, digest: str) -> str:
    """An image's tag on the local engine: its repository, and its build context's digest."""
    return f"{repository_prefix}-{image_name}:{digest[:16]}"


def recipe_for(args: ScoringImageArgs) -> ImageRecipe:
    spec = args.spec
    source_dir = spec.source_directory
    script = spec.entry_script
    if source_dir is not None and not script.is_absolute():
        script = source_dir / script
    environment = spec.environment or EnvironmentSpec()
    return ImageRecipe(
        entry_script=script,
        source_directory=source_dir,
        conda_file=spec.conda_file,
        pip_requirements=spec.pip_requirements,
        extra_docker_file_steps=spec.extra_docker_file_steps,
        base_image=base_image_of(spec),
        models=args.models,
        port=args.port,
        conda_dependencies=environment.conda_dependencies,
        user_managed_dependencies=environment.user_managed_dependencies,
        environment_variables=tuple(sorted(environment.environment_variables.items())),
        base_dockerfile=environment.base_dockerfile,
    )


class ScoringImage(pulumi.ComponentResource):
    """Lays out the build context, tags the image with the context's digest (so unchanged inputs
    never show a diff) and builds it — pushing it when a registry is given."""

    image_ref: pulumi.Output[str]
    image_id: pulumi.Output[str]

    def __init__(self, name: str, args: ScoringImageArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("modelplane:index:ScoringImage", name, None, opts)
        recipe = recipe_for(args)
        context = args.build_root / name
        digest = write_context(recipe, context)
        tag = digest[:16]
        self.dockerfile = (context / "Dockerfile").read_text()
        # modelplane.digest lets refresh tell our build from an image retagged by hand.
        labels = {"modelplane.image": args.image_name, "modelplane.digest": digest}
        props: dict[str, object] = {"context": str(context), "dockerfile": "Dockerfile", "labels": labels}
        if args.spec.enable_gpu:
            # Known during preview; the policy pack's CUDA rule reads it. Not a reason to rebuild.
            props["gpu"] = {"image": args.image_name, "cuda_version": args.spec.cuda_version or ""}
        if args.registry is None:
            props["tag"] = local_tag(args.repository_prefix, args.image_name, digest)
        else:
            props["tag"] = pulumi.Output.concat(args.registry.server, f"/{args.image_name}:{tag}")
            props["registry"] = {
                "server": args.registry.server,
                "username": args.registry.username,
                "password": args.registry.password,
            }
        image = Image(f"{name}-image", props, opts=pulumi.ResourceOptions(parent=self))
        # The resource's output, not the string: whatever runs the image waits for the build.
        self.image_ref = image.tag
        self.image_id = image.image_id
        self.register_outputs({"image_ref": self.image_ref, "image_id": self.image_id})
