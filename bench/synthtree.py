"""A deterministic site-packages-like tree, written straight into a tar (no tree on disk).

The same seed gives the same tar, byte for byte, on any machine: entries are sorted, owners
and mtimes fixed, and every file's content comes from a PRNG seeded with the tree's seed
and the file's path. The mix imitates a Python install: tens of thousands of files of
0.5-64 KiB (text-like ``.py``/``.json``/``.txt`` that compress ~3-4x, binary-like ``.so``
pieces that compress ~2x, identical ``__init__.py`` files), a few dozen ``.so`` files of
1-20 MB, versioned-library symlinks and hard links.
"""

from __future__ import annotations

import io
import math
import random
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

MTIME = 1_700_000_000
ROOT = "opt/synth/site-packages"
CHUNK = 64 * 1024
TEXT_POOL = 4 * 1024 * 1024
INIT_VARIANTS = 4


@dataclass(frozen=True)
class Shape:
    """How big the tree is: counts and size ranges (bytes)."""

    small_files: int = 40_000
    small_range: tuple[int, int] = (512, 64 * 1024)
    big_files: int = 36
    big_range: tuple[int, int] = (1 << 20, 20 << 20)
    packages: int = 400
    hardlink_share: float = 0.02


@dataclass(frozen=True)
class Entry:
    """One tar member before its content exists: kind is file, dir, symlink or link."""

    path: str
    kind: str
    size: int = 0
    target: str = ""
    binary: bool = False


def log_uniform(rng: random.Random, low: int, high: int) -> int:
    """A size between ``low`` and ``high`` whose logarithm is uniform (many small ones)."""
    return int(math.exp(rng.uniform(math.log(low), math.log(high))))


def package_entries(rng: random.Random, index: int, count: int, shape: Shape) -> list[Entry]:
    """One package directory: an ``__init__.py`` per subpackage and ``count`` modules."""
    top = f"{ROOT}/pkg{index:04d}"
    subdirs = [top] + [f"{top}/sub{j}" for j in range(rng.randint(1, 4))]
    entries = [Entry(d, "dir") for d in subdirs]
    entries += [
        Entry(f"{d}/__init__.py", "file", size=-rng.randrange(INIT_VARIANTS)) for d in subdirs
    ]
    for number in range(count):
        binary = rng.random() < 0.3
        suffix = rng.choice([".so", ".dat"] if binary else [".py", ".py", ".pyi", ".json", ".txt"])
        size = log_uniform(rng, *shape.small_range)
        path = f"{rng.choice(subdirs)}/m{number:04d}{suffix}"
        entries.append(Entry(path, "file", size=size, binary=binary))
    return entries


def library_entries(rng: random.Random, shape: Shape) -> list[Entry]:
    """The big ``.so`` files, each ``libN.so.1`` with a ``libN.so`` symlink beside it."""
    entries = []
    for index in range(shape.big_files):
        libs = f"{ROOT}/pkg{index % shape.packages:04d}/.libs"
        entries.append(Entry(libs, "dir"))
        size = log_uniform(rng, *shape.big_range)
        entries.append(Entry(f"{libs}/lib{index:02d}.so.1", "file", size=size, binary=True))
        entries.append(Entry(f"{libs}/lib{index:02d}.so", "symlink", target=f"lib{index:02d}.so.1"))
    return entries


def with_hardlinks(rng: random.Random, entries: list[Entry], share: float) -> list[Entry]:
    """Turn ``share`` of the regular files into hard links to an earlier regular file
    (a tar link must follow its target)."""
    result: list[Entry] = []
    files: list[str] = []
    for entry in entries:
        if entry.kind == "file" and files and rng.random() < share:
            result.append(Entry(entry.path, "link", target=rng.choice(files)))
            continue
        if entry.kind == "file":
            files.append(entry.path)
        result.append(entry)
    return result


def plan(seed: int, shape: Shape) -> list[Entry]:
    """Every member of the tree, sorted by path (parents before children)."""
    rng = random.Random(seed)
    per_package = shape.small_files // shape.packages
    entries = [Entry(p, "dir") for p in ("opt", "opt/synth", ROOT)]
    for index in range(shape.packages):
        entries += package_entries(rng, index, per_package, shape)
    entries += library_entries(rng, shape)
    unique = {e.path: e for e in entries}  # a .libs dir may be listed twice
    ordered = sorted(unique.values(), key=lambda e: e.path)
    return with_hardlinks(rng, ordered, shape.hardlink_share)


def text_pool(seed: int) -> bytes:
    """A few MiB of code-like text (words, indentation, lines) to cut text files from."""
    rng = random.Random(seed)
    letters = "abcdefghijklmnopqrstuvwxyz_"
    vocab = ["".join(rng.choices(letters, k=rng.randint(2, 10))) for _ in range(3000)]
    vocab += ["def", "return", "self", "import", "class", "if", "else", "None", "(", ")", ":"]
    out = io.StringIO()
    while out.tell() < TEXT_POOL:
        indent = "    " * rng.randint(0, 3)
        out.write(indent + " ".join(rng.choices(vocab, k=rng.randint(2, 12))) + "\n")
    return out.getvalue().encode()[:TEXT_POOL] * 2


def content(entry: Entry, seed: int, pool: bytes) -> bytes:
    """A file's bytes: text cut from the pool, or binary chunks (random, sparse, text)."""
    if entry.size <= 0:  # one of a few __init__.py variants, shared by many packages
        return pool[: 64 * -entry.size]
    rng = random.Random(f"{seed}:{entry.path}")
    if not entry.binary:
        start = rng.randrange(TEXT_POOL)
        return pool[start : start + entry.size]
    parts = []
    for offset in range(0, entry.size, CHUNK):
        length = min(CHUNK, entry.size - offset)
        draw = rng.random()
        if draw < 0.4:
            parts.append(rng.randbytes(length))
        elif draw < 0.6:
            start = rng.randrange(TEXT_POOL)
            parts.append(pool[start : start + length])
        else:
            sparse = bytearray(length)
            for position in range(0, length, 64):
                sparse[position : position + 8] = rng.randbytes(8)
            parts.append(bytes(sparse[:length]))
    return b"".join(parts)


def members(seed: int, shape: Shape) -> Iterator[tuple[tarfile.TarInfo, bytes | None]]:
    """The tar headers (fixed owners and mtimes) and contents, in order."""
    pool = text_pool(seed)
    for entry in plan(seed, shape):
        info = tarfile.TarInfo(entry.path)
        info.mtime, info.uid, info.gid, info.uname, info.gname = MTIME, 0, 0, "root", "root"
        data: bytes | None = None
        if entry.kind == "dir":
            info.type, info.mode = tarfile.DIRTYPE, 0o755
        elif entry.kind == "symlink":
            info.type, info.mode, info.linkname = tarfile.SYMTYPE, 0o777, entry.target
        elif entry.kind == "link":
            info.type, info.mode, info.linkname = tarfile.LNKTYPE, 0o644, entry.target
        else:
            data = content(entry, seed, pool)
            info.size, info.mode = len(data), 0o755 if entry.path.endswith(".so.1") else 0o644
        yield info, data


def write_tar(path: Path, *, seed: int, shape: Shape | None = None) -> int:
    """Write the tree's tar to ``path``; return the bytes of file content in it."""
    total = 0
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members(seed, shape or Shape()):
            tar.addfile(info, None if data is None else io.BytesIO(data))
            total += len(data or b"")
    return total
