"""The one safe walk of a recipe's directory: every file a build reads, or a refusal.

Every place that reads below a recipe's directory (content hashes, the build context, the
commit strategy's staging tar, the .def's ``%files`` lines, the fast path's stat
signatures) takes its paths from here, so they agree on what a source brings in:

* a source may be a symbolic link, or pass through one, if it resolves inside the
  directory; it is followed (Docker's COPY follows the source, Apptainer's ``%files``
  runs ``cp -fLr``);
* inside a copied directory nothing is followed: a symbolic link there is refused, since
  Docker's COPY keeps it as a link while Apptainer's ``cp -L`` copies what it points to
  (apptainer ``internal/pkg/build/files/copy.go``), and the two images would differ;
* FIFOs, sockets and devices are refused without being opened; regular files are opened
  non-blocking and checked again after opening;
* names that are not UTF-8 are refused; the walk is iterative (no depth limit);
* ``.dockerignore`` is applied as ``docker build`` applies it (imgforge.recipes.ignore).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from imgforge.errors import RecipeError
from imgforge.recipes.ignore import IGNORE_FILE, Ignore, PatternError, go_clean

# Recipe files, project files, requirements files and .dockerignore are read whole.
MAX_TEXT_FILE = 1 << 20
_KINDS = {
    stat.S_IFIFO: "a FIFO",
    stat.S_IFSOCK: "a socket",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFDIR: "a directory",
}


def shown(path: str) -> str:
    """A path for a one-line message: quoted, control and undecodable bytes escaped."""
    text = repr(path)
    return text if text.isascii() else ascii(path)


def _kind(mode: int) -> str:
    return _KINDS.get(stat.S_IFMT(mode), "not a regular file or directory")


@dataclass(frozen=True)
class Entry:
    """One path a source brings into a build.

    ``name`` is the path in the build context (relative to the recipe's directory, as the
    recipe spells the source); ``path`` is where it is read on disk (symlinks resolved).
    """

    name: str
    path: str
    is_dir: bool
    mode: int
    size: int
    mtime_ns: int
    inode: int

    @property
    def signature(self) -> list[int]:
        return [self.size, self.mtime_ns, self.mode, self.inode]


def _entry(name: str, path: str, st: os.stat_result) -> Entry:
    return Entry(
        name, path, stat.S_ISDIR(st.st_mode), st.st_mode, st.st_size, st.st_mtime_ns, st.st_ino
    )


def open_regular(path: str, *, owner: Path, key: str, inode: int | None = None) -> int:
    """A file descriptor of the regular file ``path``: opened without blocking (a FIFO
    would hang a plain open) and checked with fstat, so nothing swapped in is read."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as exc:
        what = "file" if path == str(owner) else shown(path)
        raise RecipeError(owner, key, f"cannot read {what}: {exc.strerror}") from None
    st = os.fstat(fd)
    changed = inode is not None and st.st_ino != inode
    if not stat.S_ISREG(st.st_mode) or changed:
        os.close(fd)
        why = "changed while it was read" if changed else f"is {_kind(st.st_mode)}"
        what = "the file" if path == str(owner) else shown(path)
        raise RecipeError(owner, key, f"{what} {why}")
    os.set_blocking(fd, True)
    return fd


def read_limited(path: Path, *, owner: Path, key: str, limit: int = MAX_TEXT_FILE) -> bytes:
    """The bytes of the regular file ``path``, refused beyond ``limit`` bytes."""
    fd = open_regular(str(path), owner=owner, key=key)
    with os.fdopen(fd, "rb") as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        what = "the file" if str(path) == str(owner) else shown(str(path))
        raise RecipeError(owner, key, f"{what} is larger than {limit} bytes")
    return data


def read_ignore_file(directory: Path) -> bytes | None:
    """The ``.dockerignore`` beside the recipes (None without one): a regular file inside
    the directory, at most MAX_TEXT_FILE bytes."""
    path = directory / IGNORE_FILE
    if not os.path.lexists(path):
        return None
    if os.path.islink(path):
        raise RecipeError(path, "", "must be a regular file, not a symbolic link")
    return read_limited(path, owner=path, key="")


def load_ignore(directory: Path) -> Ignore:
    """The ``.dockerignore`` rules of ``directory``; a rule Docker refuses is exit 2."""
    data = read_ignore_file(directory)
    try:
        return Ignore() if data is None else Ignore.parse(data)
    except PatternError as exc:
        raise RecipeError(directory / IGNORE_FILE, "", str(exc)) from None


def _utf8(name: str, *, owner: Path, key: str) -> str:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raw = os.fsencode(name)
        raise RecipeError(owner, key, f"the file name {raw!r} is not valid UTF-8") from None
    return name


def resolve_source(directory: Path, source: str, *, owner: Path, key: str) -> tuple[str, str]:
    """(the source's path in the context, its real path on disk): refused when it does
    not exist, is a dangling or looping link, or resolves outside ``directory``."""
    name = go_clean(source)
    lexical = os.path.join(directory, name)
    root = os.path.realpath(directory)
    try:
        real = os.path.realpath(lexical, strict=True)
    except OSError:
        if os.path.lexists(lexical):
            raise RecipeError(
                owner, key, f"{shown(source)} is a dangling or looping symbolic link"
            ) from None
        raise RecipeError(owner, key, f"{shown(source)} does not exist") from None
    if real != root and not real.startswith(root.rstrip("/") + "/"):
        raise RecipeError(owner, key, f"{shown(source)} leads outside the recipe's directory")
    _utf8(real, owner=owner, key=key)
    return name, real


def walk_source(
    directory: Path, source: str, *, owner: Path, key: str, ignore: Ignore | None = None
) -> list[Entry]:
    """What ``source`` brings into a build, in sorted order: the source itself, and for a
    directory everything below it that ``.dockerignore`` sends (directories it excludes
    but enters for an exception are left out, as from Docker's context)."""
    ignore = ignore if ignore is not None else load_ignore(directory)
    name, real = resolve_source(directory, source, owner=owner, key=key)
    root = os.path.realpath(directory)
    st = os.stat(real)
    kept = os.path.relpath(real, root).replace(os.sep, "/")
    if not stat.S_ISDIR(st.st_mode) and not stat.S_ISREG(st.st_mode):
        raise RecipeError(owner, key, f"{shown(source)} is {_kind(st.st_mode)}")
    for checked in {name, kept} - {"."}:
        if not ignore.sends(checked, is_dir=stat.S_ISDIR(st.st_mode)):
            raise RecipeError(owner, key, f"{shown(checked)} is excluded by {IGNORE_FILE}")
    if not stat.S_ISDIR(st.st_mode):
        return [_entry(name, real, st)]
    entries = list(_below(real, name, kept, ignore, owner=owner, key=key))
    if kept == "." or not ignore.skips(kept):
        entries.append(_entry(name, real, st))
    if not entries:
        raise RecipeError(owner, key, f"{shown(source)} is empty after {IGNORE_FILE}")
    return sorted(entries, key=lambda entry: entry.name.split("/"))


def _below(
    real: str, name: str, kept: str, ignore: Ignore, *, owner: Path, key: str
) -> Iterator[Entry]:
    """Everything below the directory ``real`` in sorted order, without recursion."""
    pending = [(real, name, kept, ignore.info(kept))]
    while pending:
        path, context, relative, info = pending.pop()
        children = []
        try:
            with os.scandir(path) as listing:
                found = sorted(listing, key=lambda e: e.name)
        except OSError as exc:
            raise RecipeError(owner, key, f"cannot list {shown(context)}: {exc.strerror}") from None
        for child in found:
            child_name = _utf8(child.name, owner=owner, key=key)
            inside = f"{context}/{child_name}" if context != "." else child_name
            below = f"{relative}/{child_name}" if relative != "." else child_name
            st = child.stat(follow_symlinks=False)
            if stat.S_ISLNK(st.st_mode):
                raise RecipeError(
                    owner, key,
                    f"{shown(inside)} is a symbolic link inside a copied directory (Docker "
                    "copies the link, Apptainer's %files what it points to): copy its "
                    "target instead",
                )
            if not stat.S_ISDIR(st.st_mode) and not stat.S_ISREG(st.st_mode):
                raise RecipeError(owner, key, f"{shown(inside)} is {_kind(st.st_mode)}")
            skip, child_info = ignore.state(below, info)
            if stat.S_ISDIR(st.st_mode):
                if not skip or ignore.enters(below):
                    children.append((child.path, inside, below, child_info))
                if not skip:
                    yield _entry(inside, child.path, st)
            elif not skip:
                yield _entry(inside, child.path, st)
        pending.extend(reversed(children))
