"""Compare a SIF's squashfs with ``docker export`` of its image, path by path."""

from __future__ import annotations

import hashlib
import tarfile
from collections.abc import Iterable
from typing import IO

from imgforge.sif.layout import (
    DEFINITION,
    DIRECTORIES,
    HISTORY,
    MOUNT_POINTS,
    SYMLINKS,
    history_path,
    init_layer_leftover,
    replaced,
)
from imgforge.sif.read import SifImage
from imgforge.squashfs.members import normalise

APPS_BASE = ".singularity.d/env/94-appsbase.sh"

Tree = dict[str, tuple[str, ...]]


def tree(stream: IO[bytes], *, skip: Iterable[str] = ()) -> Tree:
    """path -> (type, mode, uid, gid, size, link target, sha256) for a tar stream, without
    what imgforge writes itself and what Docker's init layer adds to ``docker export``."""
    skipped = set(skip)
    entries: Tree = {}
    links: dict[str, str] = {}
    with tarfile.open(fileobj=stream, mode="r|") as tar:
        for member in tar:
            name = normalise(member.name)
            if not name or name in skipped or replaced(name) or init_layer_leftover(member):
                continue
            if member.islnk():
                # Which name of a hard-linked inode comes first differs between writers.
                links[name] = normalise(member.linkname)
                continue
            digest = ""
            if member.isreg():
                handle = tar.extractfile(member)
                assert handle is not None
                digest = hashlib.file_digest(handle, "sha256").hexdigest()  # type: ignore[arg-type]
            kind = member.type.decode()
            entries[name] = (
                kind, oct(member.mode & 0o7777), str(member.uid), str(member.gid),
                str(member.size if member.isreg() else 0), member.linkname, digest,
            )  # fmt: skip
    for name, target in links.items():
        entries[name] = entries.get(target, ("hardlink to missing", "", "", "", "", target, ""))
    return entries


FIELDS = ("type", "mode", "uid", "gid", "size", "link", "sha256")


def compare_trees(expected: Tree, actual: Tree) -> list[str]:
    problems = []
    for name in sorted(expected.keys() | actual.keys()):
        want, have = expected.get(name), actual.get(name)
        if want is None:
            problems.append(f"path /{name}: only in the SIF")
        elif have is None:
            problems.append(f"path /{name}: only in the image")
        elif want != have:
            pairs = zip(FIELDS, want, have, strict=True)
            fields = [f"{field} {a} != {b}" for field, a, b in pairs if a != b]
            problems.append(f"path /{name}: {', '.join(fields)}")
    return problems


def deep_compare(image: SifImage, exported: IO[bytes]) -> list[str]:
    """Every path of ``docker export`` against the SIF's squashfs, where the image's own
    definition is expected under bootstrap_history (imgforge's layout, the mount points,
    metadata directories and legacy links it adds, and the init layer's files excepted)."""
    expected = tree(exported)
    added = [name for name in (*MOUNT_POINTS, *DIRECTORIES, *SYMLINKS) if name not in expected]
    if DEFINITION in expected:
        if HISTORY not in expected:
            added.append(HISTORY)
        expected[history_path(expected)] = expected.pop(DEFINITION)
    with image.tar_stream() as stream:
        actual = tree(stream, skip=[*added, DEFINITION])
    # The one file Apptainer's build adds besides those imgforge writes: an empty
    # env/94-appsbase.sh (apps.go; its content only when the image has SCIF apps).
    extra = actual.get(APPS_BASE)
    if APPS_BASE not in expected and extra is not None and extra[4] == "0":
        del actual[APPS_BASE]
    return compare_trees(expected, actual)
