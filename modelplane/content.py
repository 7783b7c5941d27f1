"""Content addressing: versions and tags that change exactly when the bytes change."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

# Files that never belong to a model or an image context.
IGNORED_NAMES = frozenset({"__pycache__", ".git", ".ipynb_checkpoints", ".DS_Store", ".pytest_cache"})


def files_under(path: Path) -> list[Path]:
    """The files of `path` (itself when it is a file), sorted, skipping caches and VCS folders."""
    if path.is_file():
        return [path]
    found: list[Path] = []
    for base, dirs, files in os.walk(path):
        dirs[:] = sorted(d for d in dirs if d not in IGNORED_NAMES)
        found.extend(Path(base) / f for f in sorted(files) if f not in IGNORED_NAMES and not f.endswith(".pyc"))
    return found


def content_digest(path: Path) -> str:
    """sha256 over relative names and bytes of every file under `path`."""
    digest = hashlib.sha256()
    root = path if path.is_dir() else path.parent
    for file in files_under(path):
        digest.update(file.relative_to(root).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(file.read_bytes()).digest())
    return digest.hexdigest()


def text_digest(text: str) -> str:
    """sha256 of a text (a model's URI, where its files are not here to read)."""
    return hashlib.sha256(text.encode()).hexdigest()


def version_of(digest: str) -> str:
    """A model version from a content digest: its first 12 hex digits read as an integer.

    AML's model versions are integers, and the AML inference server and SDK parse them as such
    (azureml-models/<name>/<version>), so the content-derived version is written in decimal."""
    return str(int(digest[:12], 16))


def model_version(path: Path) -> str:
    """A model's version, derived from the bytes of its files."""
    return version_of(content_digest(path))
