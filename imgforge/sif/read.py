"""Read a SIF (or legacy .simg) back: descriptors, files inside its squashfs, its tree."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from imgforge.atomic import copy_range
from imgforge.errors import BuildError, EngineError
from imgforge.sif import format as sif

SQUASHFS_MAGIC = b"hsqs"
# One line of an env script as imgforge writes it. WORD is single-quoted segments and
# "'". (Not \', which sh reads as ' but Apptainer's embedded shell as \': a file with it,
# as imgforge wrote them before 0.3, doesn't read back the same everywhere.)
_WORD = r"((?:'[^']*'|\"'\")+)"
EXPORT_RE = re.compile(r"[ \t]*export ([A-Za-z_][A-Za-z0-9_]*)=" + _WORD + r"[ \t]*(?:\n|\Z)")
# A name the runtime sets itself, given as a default: `[ -n "${NAME:-}" ] || export NAME=WORD`.
DEFAULT_RE = re.compile(
    r'[ \t]*\[ -n "\$\{([A-Za-z_][A-Za-z0-9_]*):-\}" \] \|\| export \1='
    + _WORD
    + r"[ \t]*(?:\n|\Z)"
)
SKIP_RE = re.compile(r"[ \t]*(?:#[^\n]*)?(?:\n|\Z)")
SEGMENT_RE = re.compile(r"'([^']*)'|\"(')\"")


def _word(text: str) -> str:
    return "".join(a or b for a, b in SEGMENT_RE.findall(text))


def parse_env_script(text: str) -> list[tuple[str, str, bool]]:
    """Parse an env script made only of comments, single-quoted exports and defaults:
    (name, value, whether the value is only a default) in script order.

    The script is never run: a tampered file can't execute anything here, and any line
    of another shape is an error naming it.
    """
    entries: list[tuple[str, str, bool]] = []
    position = 0
    while position < len(text):
        if match := EXPORT_RE.match(text, position):
            entries.append((match.group(1), _word(match.group(2)), False))
        elif match := DEFAULT_RE.match(text, position):
            entries.append((match.group(1), _word(match.group(2)), True))
        elif not (match := SKIP_RE.match(text, position)) or match.end() == position:
            line = text.count("\n", 0, position) + 1
            snippet = text[position:].split("\n", 1)[0][:60]
            raise ValueError(f"line {line}: not a single-quoted export: {snippet!r}")
        position = match.end()
    return entries


def parse_exports(text: str) -> list[tuple[str, str]]:
    """The (name, value) pairs of :func:`parse_env_script`, defaults included."""
    return [(name, value) for name, value, _ in parse_env_script(text)]


_OCI_RE = re.compile(r"^(OCI_ENTRYPOINT|OCI_CMD)=(?:" + _WORD + r")?[ \t]*$", re.MULTILINE)
_ARG_RE = re.compile(r'"((?:[^"\\]|\\.)*)"(?: |\Z)', re.DOTALL)
_ESCAPED_RE = re.compile(r"\\(.)", re.DOTALL)


def _args(quoted: str) -> list[str] | None:
    """The words of Apptainer's double-quoted word list (shell.ArgsQuoted), or None."""
    words, position = [], 0
    while position < len(quoted):
        match = _ARG_RE.match(quoted, position)
        if match is None:
            return None
        words.append(_ESCAPED_RE.sub(r"\1", match.group(1)))
        position = match.end()
    return words


def parse_runscript(text: str) -> tuple[list[str], list[str]] | None:
    """ENTRYPOINT and CMD of a Docker-style runscript (``OCI_ENTRYPOINT='...'``,
    ``OCI_CMD='...'``, as Apptainer writes for an image from Docker), or None."""
    found: dict[str, list[str]] = {}
    for match in _OCI_RE.finditer(text):
        words = _args(_word(match.group(2) or ""))
        if words is None or match.group(1) in found:
            return None
        found[match.group(1)] = words
    if found.keys() != {"OCI_ENTRYPOINT", "OCI_CMD"}:
        return None
    return found["OCI_ENTRYPOINT"], found["OCI_CMD"]


@dataclass(frozen=True)
class SifImage:
    """A Singularity image file opened for checking."""

    path: Path
    container: sif.SIF | None
    offset: int
    size: int

    @classmethod
    def open(cls, path: Path) -> SifImage:
        with path.open("rb") as handle:
            start = handle.read(2048)
            if sif.MAGIC in start:
                container = sif.read(handle)
                partition = container.primary_partition()
                offset, size = partition.offset, partition.size
            elif start.startswith(sif.LAUNCH_SCRIPT) and SQUASHFS_MAGIC in start:
                container, offset = None, start.index(SQUASHFS_MAGIC)
                size = path.stat().st_size - offset
            else:
                raise sif.SIFFormatError("neither a SIF nor a legacy squashfs image")
            handle.seek(offset)
            if handle.read(4) != SQUASHFS_MAGIC:
                raise sif.SIFFormatError(f"no squashfs superblock at partition offset {offset}")
        return cls(path, container, offset, size)

    def object_text(self, kind: str, name: str | None = None) -> str | None:
        if self.container is None:
            return None
        for descriptor in self.container.find(kind):
            if name is None or descriptor.name == name:
                with self.path.open("rb") as handle:
                    return sif.read_object(handle, descriptor).decode("utf-8", "replace")
        return None

    def read_file(self, inner: str) -> bytes | None:
        """A file's bytes from the squashfs (``unsquashfs -cat``), or None if absent."""
        tool = shutil.which("unsquashfs")
        if tool is None:
            raise EngineError("reading a SIF needs unsquashfs: apt-get install squashfs-tools")
        result = subprocess.run(
            [tool, "-o", str(self.offset), "-cat", str(self.path), inner],
            capture_output=True,
        )
        return result.stdout if result.returncode == 0 else None

    def names(self) -> set[str]:
        """Every path in the squashfs, relative to its root (``unsquashfs -l``)."""
        tool = shutil.which("unsquashfs")
        if tool is None:
            raise EngineError("reading a SIF needs unsquashfs: apt-get install squashfs-tools")
        listing = subprocess.run(
            [tool, "-o", str(self.offset), "-l", "-d", "", str(self.path)],
            capture_output=True,
            text=True,
            errors="surrogateescape",
        ).stdout
        return {line.strip("/").removeprefix("./") for line in listing.splitlines()} - {""}

    @contextmanager
    def tar_stream(self) -> Iterator[IO[bytes]]:
        """The squashfs as a tar stream (sqfs2tar on a copy of the partition)."""
        tool = shutil.which("sqfs2tar")
        if tool is None:
            raise EngineError("--deep needs sqfs2tar: apt-get install squashfs-tools-ng")
        with tempfile.NamedTemporaryFile(dir=self.path.parent, suffix=".sqfs.tmp") as part:
            with self.path.open("rb") as source:
                copy_range(source, part, self.offset, self.size)
            with subprocess.Popen([tool, "--no-xattr", part.name], stdout=subprocess.PIPE) as proc:
                assert proc.stdout is not None
                yield proc.stdout
                proc.stdout.read()
            if proc.returncode != 0:
                raise BuildError(f"{self.path}: sqfs2tar failed (exit {proc.returncode})")
