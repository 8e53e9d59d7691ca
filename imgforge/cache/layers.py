"""The layer index: for the files of an image layer on this machine, the cache keys of
their full blocks and the digests of their tails, so that a later pack of an image with
that layer copies those blocks and the fragments of those tails from the cache without
reading the files again.

A layer's files don't change while it exists, and a file's ctime changes with any write
to it, so (inode, size, mtime, ctime) as ``lstat`` gives them identify its content as
well as its bytes would: a file whose stamp differs is read again. An index is used only
when it is private (its file and every directory from the cache root down to it belong
to this user alone), as a private block entry is trusted without decompressing it; and
a key it gives is used only when the block cache holds that key privately: anything
else reads the file.

Layout, beside ``blocks/`` (see the package docstring)::

    ROOT/layers/IDENT/XXXX...        one file per layer directory: XXXX... the SHA-256 of
                                     the layer directory's path; the entry format of
                                     entry.py (key: that hash) around JSON
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
import threading
from pathlib import Path
from typing import Any, NamedTuple

from imgforge.cache import entry
from imgforge.cache.layout import layers_dir
from imgforge.cache.store import PRIVATE_DIR, BlockCache, write_atomically

# No index is larger: beyond it the layer is read as if it had none.
INDEX_MAX = 256 << 20
Stamp = tuple[int, int, int, int]


class Known(NamedTuple):
    """What a pack learned of one file's data: the keys of its full blocks, and the
    digest of its tail (:func:`imgforge.squashfs.fragments.tail_digest`; None when the
    file has no partial last block)."""

    keys: list[bytes]
    tail: bytes | None


class _Layer:
    """One layer's index: what was loaded, and what this pack learned."""

    def __init__(self, files: dict[str, tuple[Stamp, Known]]) -> None:
        self.files = files
        self.learned = 0


class LayerIndex:
    """The layer indexes of one block cache's profile; ``known`` and ``learn`` from the
    writer's threads, ``save`` at the end of a pack that wrote its image."""

    def __init__(self, store: BlockCache) -> None:
        self.store = store
        self.directory = layers_dir(store.root, store.profile.ident())
        self.layers: dict[str, _Layer] = {}
        self.lock = threading.Lock()
        self.used = 0  # files whose blocks the index gave

    def known(self, layer: str, name: str, stamp: Stamp) -> Known | None:
        """What an earlier pack learned of file ``name`` of ``layer`` (a directory), when
        the layer's index knows the file with this ``stamp``."""
        with self.lock:
            found_layer = self.layers.get(layer)
            if found_layer is None:
                found_layer = self.layers[layer] = _Layer(self._load(layer))
            found = found_layer.files.get(name)
            if found is None or found[0] != stamp:
                return None
            self.used += 1
            return found[1]

    def learn(self, layer: str, name: str, stamp: Stamp, known: Known) -> None:
        """Remember what this pack read of file ``name`` of ``layer``."""
        with self.lock:
            found_layer = self.layers.setdefault(layer, _Layer({}))
            found_layer.files[name] = (stamp, known)
            found_layer.learned += 1

    def save(self) -> None:
        """Write the index of each layer this pack learned about (atomically; a failure
        leaves the index as it was, and the next pack reads those files again), where
        it would be read: in a private directory (never through a symbolic link planted
        in a cache others may write, nor where they may)."""
        learned = {path: layer for path, layer in self.layers.items() if layer.learned}
        if self.store.disabled or self.store.unwritable or not learned:
            return
        with contextlib.suppress(OSError):
            self.directory.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR)
            if not self.store.private(self.directory):
                return
            for path, layer in learned.items():
                with contextlib.suppress(OSError):
                    write_atomically(self._file(path), _encode(path, layer.files))

    def _file(self, layer: str) -> Path:
        return self.directory / _key(layer).hex()

    def _load(self, layer: str) -> dict[str, tuple[Stamp, Known]]:
        """The saved index of ``layer``: empty when there is none, or it is damaged, too
        large, not a regular file, or not private."""
        path = self._file(layer)
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        try:
            fd = os.open(path, flags)
        except OSError:
            return {}
        try:
            found = os.fstat(fd)
            private = found.st_uid == os.geteuid() and self.store.private(path.parent)
            if not stat.S_ISREG(found.st_mode) or found.st_size > INDEX_MAX or not private:
                return {}
            with open(fd, "rb", buffering=0, closefd=False) as handle:
                decoded = entry.decode(_key(layer), handle.read(INDEX_MAX + 1))
            if decoded is not None:
                # Its last use, for eviction; a read-only cache can't keep it, and serves
                # the index all the same.
                with contextlib.suppress(OSError):
                    os.utime(fd)
        except OSError:
            return {}
        finally:
            os.close(fd)
        return {} if decoded is None else _decode(layer, decoded[0])


def _key(layer: str) -> bytes:
    return hashlib.sha256(os.fsencode(layer)).digest()


def _encode(layer: str, files: dict[str, tuple[Stamp, Known]]) -> bytes:
    table = {
        name: [*stamp, b"".join(known.keys).hex(), (known.tail or b"").hex()]
        for name, (stamp, known) in files.items()
    }
    text = json.dumps({"layer": layer, "files": table}, separators=(",", ":"))
    return entry.encode(_key(layer), text.encode("utf-8", "surrogateescape"), compressed=False)


def _decode(layer: str, data: bytes) -> dict[str, tuple[Stamp, Known]]:
    """The files of an index's JSON; anything not of the expected shape is left out (a
    wrong key there can only make the block cache miss: blocks are found by their key,
    fragments by their tails' digests)."""
    try:
        loaded: Any = json.loads(data.decode("utf-8", "surrogateescape"))
    except (ValueError, RecursionError):  # not JSON, or nested deeper than the parser goes
        return {}
    if not isinstance(loaded, dict) or loaded.get("layer") != layer:
        return {}
    table = loaded.get("files")
    files: dict[str, tuple[Stamp, Known]] = {}
    for name, row in table.items() if isinstance(table, dict) else ():
        found = _row(row)
        if found is not None:
            files[name] = found
    return files


def _row(row: Any) -> tuple[Stamp, Known] | None:
    """One file's stamp and what was learned of it: ``[ino, size, mtime, ctime, KEYS,
    TAIL]``, KEYS the block keys and TAIL the tail's digest (or nothing) in hex."""
    if not (isinstance(row, list) and len(row) == 6 and all(isinstance(t, str) for t in row[4:])):
        return None
    numbers = row[:4]
    if not all(isinstance(n, int) and not isinstance(n, bool) for n in numbers):
        return None
    try:
        keys, tail = bytes.fromhex(row[4]), bytes.fromhex(row[5])
    except ValueError:
        return None
    if len(keys) % entry.KEY_BYTES or len(tail) not in (0, entry.KEY_BYTES):
        return None
    split = [keys[i : i + entry.KEY_BYTES] for i in range(0, len(keys), entry.KEY_BYTES)]
    stamp = (numbers[0], numbers[1], numbers[2], numbers[3])
    return stamp, Known(split, tail or None)
