"""The engine's side of reading an image: a pack reading the layers stops on Ctrl-C as
the export stream does, and an image removed by force mid-build is a build failure, not
an unexpected error."""

from __future__ import annotations

import tarfile
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from docker.errors import ImageNotFound

from imgforge.engine.docker import DockerEngine
from imgforge.engine.image import _stopping
from imgforge.errors import BuildError
from imgforge.squashfs.members import Member


def test_reading_the_layers_stops_when_cancelled() -> None:
    cancel = threading.Event()

    def entries() -> Iterator[Member]:
        for number in range(10):
            if number == 3:
                cancel.set()
            yield tarfile.TarInfo(f"f{number}"), None

    read = []
    with pytest.raises(BuildError, match="interrupted"):
        for info, _ in _stopping(entries(), cancel):
            read.append(info.name)
    assert read == ["f0", "f1", "f2"]


class GoneApi:
    def tag(self, *args: Any, **kwargs: Any) -> None:
        raise ImageNotFound("No such image: sha256:0123")


def test_tagging_an_image_removed_meanwhile_is_a_build_failure() -> None:
    with pytest.raises(BuildError, match="cannot tag image sha256:0123 as app:1.0"):
        DockerEngine(GoneApi()).tag("sha256:0123", "app", "1.0")
