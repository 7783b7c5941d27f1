"""Base images made on first use: a failure names the image and shows the build's last lines."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelplane import base_images
from modelplane.base_images import BaseImageError, PythonBase, base_named, build_base_image


def test_base_images_are_found_by_their_tag() -> None:
    assert base_named("modelplane/base:bullseye-py3") == PythonBase("3.9.2", "bullseye")
    assert base_named("python:3.9-slim") is None


def test_a_failed_build_names_the_image_and_shows_its_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    script = tmp_path / "build.sh"
    script.write_text('#!/bin/sh\necho "E: Failed getting release file for $MODELPLANE_BASE_SUITE"\nexit 1\n')
    script.chmod(0o755)
    monkeypatch.setattr(base_images, "BUILD_SCRIPT", script)
    with pytest.raises(BaseImageError) as error:
        build_base_image(PythonBase("3.9.2", "bullseye"), cache=tmp_path / "cache")
    message = str(error.value)
    assert "building modelplane/base:bullseye-py3 (Debian bullseye) failed" in message
    assert "E: Failed getting release file for bullseye" in message
