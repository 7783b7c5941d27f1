"""Modelplane's base images: a minimal Debian with python3, one per Debian release whose Python a
conda `python` pin may ask for. No registry answers here, so a base image is debootstrapped from
Debian's packages (toolchain/build-base-image.sh): bookworm's by scripts/bootstrap, the others the
first time an image needs them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

BUILD_SCRIPT = Path(__file__).resolve().parent.parent / "toolchain" / "build-base-image.sh"
LOG_LINES = 30


@dataclass(frozen=True)
class PythonBase:
    """A base image and the Python its Debian release carries."""

    python: str
    suite: str

    @property
    def image(self) -> str:
        return f"modelplane/base:{self.suite}-py3"


# The default first: a pin that it meets keeps it.
PYTHON_BASES = (
    PythonBase("3.11.2", "bookworm"),
    PythonBase("3.9.2", "bullseye"),
    PythonBase("3.13.5", "trixie"),
)
DEFAULT_BASE = PYTHON_BASES[0]


class BaseImageError(RuntimeError):
    """A base image could not be made; the message names it and shows the build's last lines."""


def base_named(image: str) -> PythonBase | None:
    return next((base for base in PYTHON_BASES if base.image == image), None)


def available() -> str:
    """The Pythons a pin can have, for messages: "3.11.2 (bookworm), 3.9.2 (bullseye), …"."""
    return ", ".join(f"{base.python} ({base.suite})" for base in PYTHON_BASES)


def build_base_image(base: PythonBase, cache: Path | None = None) -> None:
    """Debootstrap `base` and import it into the Docker engine (a minute or two)."""
    if shutil.which("debootstrap") is None:
        raise BaseImageError(f"{base.image} (Python {base.python}) needs debootstrap: apt-get install debootstrap")
    work = (cache or Path.home() / ".cache" / "modelplane") / f"base-image-{base.suite}"
    work.mkdir(parents=True, exist_ok=True)
    log = work.parent / f"base-image-{base.suite}.log"
    with log.open("w") as sink:
        result = subprocess.run(
            [str(BUILD_SCRIPT), base.image, str(work)],
            env={**os.environ, "MODELPLANE_BASE_SUITE": base.suite},
            stdout=sink,
            stderr=subprocess.STDOUT,
            check=False,
        )
    if result.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-LOG_LINES:])
        raise BaseImageError(f"building {base.image} (Debian {base.suite}) failed; {log} ends with:\n{tail}")
