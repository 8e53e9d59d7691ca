"""An image's filesystem read from Docker's overlay2 layer directories, entry by entry as
``docker export`` of a container created from it gives them, each file's data where it lies.

Docker's ``docker export`` walks the merged overlay mount of the container (its empty upper
layer, the init layer, the image's layers) with Go's ``filepath.Walk`` and writes each entry
through moby's ``pkg/archive`` (20.10: ``addTarFile``, ``FileInfoHeader``). Here the same
merge is done in the layer directories themselves: a whiteout (a character device 0/0) hides
the name below it, a directory marked opaque hides every layer below it, a non-directory
hides whatever is below it, a directory over a non-directory shows only itself; a directory
in several layers has the attributes of the topmost. Docker's init layer is set up on top
as the engine sets it up on the image's merged filesystem (initlayer.py). What overlayfs
would read otherwise (redirects, metacopy files, any other ``trusted.overlay.*`` mark) is
refused with :class:`LayersUnreadable`, and the caller reads ``docker export`` instead: the
entries given here are the export's or nothing.
"""

from __future__ import annotations

import os
import re
import stat
import tarfile
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from imgforge.engine.exportheader import CAPABILITY, PAX_CAPABILITY, file_header
from imgforge.engine.initlayer import INIT_LAYER, InitNode, init_member
from imgforge.errors import LayersUnreadable
from imgforge.squashfs.members import OnDisk

OPAQUE = "trusted.overlay.opaque"
OVERLAY_MARKS = "trusted.overlay."
_LAYER_ID = re.compile(r"[0-9a-f]{64}")
# With user namespace remapping the engine keeps its storage under <root>/UID.GID/ and
# stores shifted ids, which the export maps back.
_REMAPPED_ROOT = re.compile(r"[0-9]+\.[0-9]+")

__all__ = ["PAX_CAPABILITY", "LayersUnreadable", "layer_dirs", "overlay_members"]


def layer_dirs(inspected: Mapping[str, Any]) -> list[str] | None:
    """The image's layer ``diff`` directories, topmost first, from ``docker image inspect``:
    None unless the storage driver is overlay2 and every directory is one of its layer
    directories (``.../overlay2/<64 hex>/diff``), absolute, without ``..``, and an existing
    directory this process can read. That the engine is local (``DOCKER_HOST`` a unix
    socket of this machine) is the caller's to check."""
    driver = inspected.get("GraphDriver")
    if not isinstance(driver, Mapping) or driver.get("Name") != "overlay2":
        return None
    data = driver.get("Data")
    if not isinstance(data, Mapping):
        return None
    upper, lower = data.get("UpperDir"), data.get("LowerDir", "")
    if not isinstance(upper, str) or not isinstance(lower, str):
        return None
    found = [upper, *(lower.split(":") if lower else [])]
    if len(set(found)) != len(found) or not all(_is_layer_dir(path) for path in found):
        return None
    return found


def _is_layer_dir(path: str) -> bool:
    if not path.startswith("/") or "\0" in path or "//" in path or os.path.normpath(path) != path:
        return False
    parts = path.split("/")
    if len(parts) < 4 or parts[-1] != "diff" or parts[-3] != "overlay2":
        return False
    if not _LAYER_ID.fullmatch(parts[-2]) or _REMAPPED_ROOT.fullmatch(parts[-4]):
        return False
    try:
        found = os.stat(path)
    except (OSError, ValueError):
        return False
    return stat.S_ISDIR(found.st_mode) and os.access(path, os.R_OK | os.X_OK)


def overlay_members(
    layers: Sequence[str], *, now: int, workdir: str = ""
) -> Iterator[tuple[tarfile.TarInfo, OnDisk | None]]:
    """The entries ``docker export`` gives for a container created (not started) from the
    image whose layer directories are ``layers`` (topmost first), in its order, Docker's
    init layer included (its entries stamped ``now``): each tar header with, for a regular
    file with data, where that data lies. ``workdir`` is the image's working directory,
    which ``docker create`` makes when it is missing: then this raises (as it does for
    anything it can't give exactly) :class:`LayersUnreadable`."""
    try:
        roots = _roots(layers)
        if workdir:
            _check_workdir(roots, workdir)
        yield from _walk(roots, now)
    except OSError as error:
        where = f"{error.filename}: " if error.filename else ""
        raise LayersUnreadable(
            f"{where}cannot read the image's layer directories ({error.strerror or error})"
        ) from None


def _roots(layers: Sequence[str]) -> list[tuple[str, str]]:
    """The layers as (layer, directory) merge sources; all on one file system, since
    overlayfs shows the inode numbers that tell hard links apart only then."""
    devices = {os.stat(layer).st_dev for layer in layers}
    if len(devices) > 1:
        raise LayersUnreadable("the image's layer directories are on more than one file system")
    for layer in layers:
        if _attributes(layer, directory=True)[1]:
            raise LayersUnreadable(f"{layer}: a layer's root directory is marked opaque")
    return [(layer, layer) for layer in layers]


class _Slot:
    """One name of a merged directory: what shows (a layer's entry or an init-layer node)
    and, for a directory, the directories below it that merge into it."""

    __slots__ = ("layer", "entry", "init", "below", "open")

    def __init__(self, layer: str, entry: os.DirEntry[str] | None, init: InitNode) -> None:
        self.layer, self.entry, self.init = layer, entry, init
        self.below: list[tuple[str, str]] = []
        self.open = False  # a directory still taking the same name from lower layers


_HIDDEN = _Slot("", None, None)  # a name a whiteout hides (never changed)


def _merged(
    stack: Sequence[tuple[str, str]], init: Mapping[str, InitNode] | None
) -> tuple[list[tuple[str, _Slot]], bool]:
    """The names of one merged directory in ``filepath.Walk``'s order (bytes, ascending),
    and whether the init layer's setup changed the directory (made or removed a name)."""
    slots: dict[str, _Slot] = {}
    for layer, directory in stack:
        with os.scandir(directory) as entries:
            for entry in entries:
                slot = slots.get(entry.name)
                if slot is None:
                    slots[entry.name] = _first(layer, entry)
                elif slot.open:
                    if entry.is_dir(follow_symlinks=False):
                        slot.below.append((layer, entry.path))
                    else:  # a whiteout or a non-directory ends the merge
                        slot.open = False
    changed = _set_up(slots, init) if init else False
    names = [name for name, slot in slots.items() if slot is not _HIDDEN]
    names.sort(key=None if all(name.isascii() for name in names) else os.fsencode)
    return [(name, slots[name]) for name in names], changed


def _set_up(slots: dict[str, _Slot], init: Mapping[str, InitNode]) -> bool:
    """The init layer's setup in one directory, as moby runs it on the image's merged
    filesystem: a directory of the image stays what it is (an init directory's own entries
    are set up in it); anything else there is unlinked and the init layer's entry made."""
    changed = False
    for name, node in init.items():
        slot = slots.get(name)
        if slot is not None and slot.below:
            if isinstance(node, Mapping) and node:
                slot.init = node
            continue
        slots[name] = _Slot("", None, node)
        changed = True
    return changed


def _first(layer: str, entry: os.DirEntry[str]) -> _Slot:
    if entry.is_dir(follow_symlinks=False):
        slot = _Slot(layer, entry, None)
        slot.below.append((layer, entry.path))
        slot.open = True
        return slot
    if entry.is_file(follow_symlinks=False) or entry.is_symlink():
        return _Slot(layer, entry, None)
    found = entry.stat(follow_symlinks=False)
    if stat.S_ISCHR(found.st_mode) and found.st_rdev == 0:
        return _HIDDEN
    return _Slot(layer, entry, None)


def _walk(
    roots: list[tuple[str, str]], now: int
) -> Iterator[tuple[tarfile.TarInfo, OnDisk | None]]:
    """Pre-order, as ``filepath.Walk`` goes, one merged directory listing at a time."""
    seen: dict[int, str] = {}  # moby's SeenFiles: the first name of each hard-linked inode
    pending = [("", iter(_merged(roots, INIT_LAYER)[0]))]
    while pending:
        parent, names = pending[-1]
        item = next(names, None)
        if item is None:
            pending.pop()
            continue
        name, slot = item
        path = f"{parent}/{name}" if parent else name
        if slot.entry is None:
            info, data = init_member(path, slot.init, now), None
        elif (member := _member(path, slot.layer, slot.entry, seen)) is None:
            continue
        else:
            info, data = member
        if info.type == tarfile.DIRTYPE:
            children, changed = _merged(*_inside(slot))
            if changed:  # the setup made or unlinked a name in the image's directory
                info.mtime = now
            pending.append((path, iter(children)))
        yield info, data


def _inside(slot: _Slot) -> tuple[list[tuple[str, str]], Mapping[str, InitNode] | None]:
    """What merges into a directory: the layers' directories down to the first one marked
    opaque, and the init layer's entries in it."""
    below = slot.below
    for index, (_, directory) in enumerate(below):
        if _attributes(directory, directory=True)[1]:
            below = below[: index + 1]
            break
    return below, slot.init if isinstance(slot.init, Mapping) else None


def _check_workdir(roots: list[tuple[str, str]], workdir: str) -> None:
    """Refuse a working directory that is not a directory of the image (through no
    symbolic link): ``docker create`` would make it in the container's layer."""
    stack: list[tuple[str, str]] = roots
    init: Mapping[str, InitNode] | None = INIT_LAYER
    for part in [part for part in os.path.normpath("/" + workdir).split("/") if part]:
        slot = dict(_merged(stack, init)[0]).get(part)
        if slot is None or not (slot.below or isinstance(slot.init, Mapping)):
            raise LayersUnreadable(
                f"the image's working directory {workdir} is not one of its directories "
                "(docker create makes it)"
            )
        stack, init = _inside(slot)


def _attributes(path: str, *, directory: bool) -> tuple[bytes | None, bool]:
    """The entry's file capability and whether it is an opaque directory; any other mark of
    overlayfs (a redirect, a metacopy file, an opaque value other than ``y``) is refused."""
    names = os.listxattr(path, follow_symlinks=False)
    if not names:
        return None, False
    opaque = False
    for name in names:
        if not name.startswith(OVERLAY_MARKS):
            continue
        value = os.getxattr(path, name, follow_symlinks=False)
        if not (directory and name == OPAQUE and value == b"y"):
            raise LayersUnreadable(f"{path}: overlayfs attribute {name}={value!r} is not read here")
        opaque = True
    caps = os.getxattr(path, CAPABILITY, follow_symlinks=False) if CAPABILITY in names else None
    return caps, opaque


def _member(
    name: str, layer: str, entry: os.DirEntry[str], seen: dict[int, str]
) -> tuple[tarfile.TarInfo, OnDisk | None] | None:
    """The export's header for one entry with where its data lies (None for a socket)."""
    found = entry.stat(follow_symlinks=False)
    kind = stat.S_IFMT(found.st_mode)
    if kind == stat.S_IFSOCK:  # moby's FileInfoHeader refuses it, and the export goes on
        return None
    capability = _attributes(entry.path, directory=kind == stat.S_IFDIR)[0]
    info = file_header(name, found, entry.path, capability)
    if kind != stat.S_IFDIR and found.st_nlink > 1:
        first = seen.setdefault(found.st_ino, name)
        if first != name:
            info.type, info.linkname, info.size = tarfile.LNKTYPE, first, 0
    if info.type != tarfile.REGTYPE or not info.size:
        return info, None
    stamp = (found.st_ino, found.st_size, found.st_mtime_ns, found.st_ctime_ns)
    return info, OnDisk(entry.path, layer, name, stamp)
