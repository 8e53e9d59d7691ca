"""A complete, valid Manifest value for tests that need one on disk."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from imgforge.build.record import (
    BaseRecord,
    Fingerprint,
    Manifest,
    SifRecord,
    Timings,
    Tools,
)

IMAGE_ID = "sha256:" + "1" * 64
BASE_ID = "sha256:" + "b" * 64


def sif_record(**changes: Any) -> SifRecord:
    record = SifRecord(
        path="proj.sif",
        format="sif",
        sha256="5" * 64,
        size=0,
        mtime_ns=0,
        backend="native",
        tool_version="tar2sqfs 1.3",
        compression="gzip",
        docker_image_id=IMAGE_ID,
        seconds=1.5,
    )
    return replace(record, **changes)


def manifest(**changes: Any) -> Manifest:
    """A manifest of recipe ``proj`` (image proj:latest), with ``changes`` over it."""
    value = Manifest(
        imgforge_version="0.0.0",
        recipe="proj",
        recipe_file="/recipes/proj.toml",
        image="proj:latest",
        docker_image_id=IMAGE_ID,
        strategy="dockerfile",
        base=BaseRecord("ubuntu:22.04", "ubuntu:22.04", BASE_ID),
        fingerprint=Fingerprint("r" * 64, "d" * 64, BASE_ID, "dockerfile"),
        env=("PATH=/usr/bin:/bin",),
        sif=sif_record(),
        tools=Tools("0.0.0", "27.0.1", "3.11.2"),
        timings=Timings(3.25, 2.5),
        built_at="2024-01-01T00:00:00+00:00",
    )
    return replace(value, **changes)
