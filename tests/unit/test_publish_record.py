"""--push and --save of an up-to-date image: what the manifest already records is not
done again."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from manifests import manifest

from imgforge.build.publish import needs_push, needs_save
from imgforge.build.records import PushRecord, SavedRecord
from imgforge.options import Options

PUSHED = PushRecord("localhost:5000", "localhost:5000/proj:latest", "sha256:d", "x@sha256:d")


def job(directory: Path) -> Any:
    return SimpleNamespace(name="proj", artifacts=SimpleNamespace(directory=directory))


def test_needs_push_unless_pushed_to_that_registry() -> None:
    options = Options(push="localhost:5000")
    assert needs_push(None, options)
    assert needs_push(manifest(), options)
    assert not needs_push(manifest(push=PUSHED), options)
    assert needs_push(manifest(push=PUSHED), Options(push="elsewhere:5000"))
    assert not needs_push(manifest(), Options())


def test_needs_save_unless_the_recorded_archive_is_there(tmp_path: Path) -> None:
    options = Options(save=True)
    archive = tmp_path / "proj.docker.tar"
    assert needs_save(job(tmp_path), manifest(), options)  # no archive
    archive.write_bytes(b"tar")
    stat = os.stat(archive)
    saved = SavedRecord(archive.name, stat.st_size, stat.st_mtime_ns)
    assert not needs_save(job(tmp_path), manifest(saved=saved), options)
    assert needs_save(job(tmp_path), manifest(), options)  # not recorded
    archive.write_bytes(b"other tar")
    assert needs_save(job(tmp_path), manifest(saved=saved), options)
    assert not needs_save(job(tmp_path), manifest(), Options())
