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
                                     entry.py (key: that hash) around the records of
                                     layerfile.py
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import struct
import threading
from pathlib import Path
from typing import NamedTuple

from imgforge.cache import entry, layerfile
from imgforge.cache.entryfile import make_private_dir, mine, open_regular, write_atomically
from imgforge.cache.layout import layers_dir
from imgforge.cache.store import BlockCache

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

    def __init__(self, files: dict[str, bytes]) -> None:
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
            if found is None:
                return None
            stamped, keys, tail = layerfile.unpack(found)
            if stamped != stamp:
                return None
            self.used += 1
        return Known(keys, tail)

    def learn(self, layer: str, name: str, stamp: Stamp, known: Known) -> None:
        """Remember what this pack read of file ``name`` of ``layer``."""
        try:
            found = layerfile.record(stamp, known.keys, known.tail)
        except struct.error:  # a stamp beyond 64 bits (an mtime past 2262): not kept
            return
        with self.lock:
            found_layer = self.layers.setdefault(layer, _Layer({}))
            found_layer.files[name] = found
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
            make_private_dir(self.directory.parent)
            make_private_dir(self.directory)
            if not self.store.private(self.directory):
                return
            for path, layer in learned.items():
                with contextlib.suppress(OSError):
                    payload = layerfile.encode(path, layer.files)
                    blob = entry.encode(_key(path), payload, compressed=False)
                    write_atomically(self._file(path), blob)

    def _file(self, layer: str) -> Path:
        return self.directory / _key(layer).hex()

    def _load(self, layer: str) -> dict[str, bytes]:
        """The saved index of ``layer``: empty when there is none, or it is damaged, too
        large, not a regular file, or not private."""
        path = self._file(layer)
        opened = open_regular(path)
        if opened is None:
            return {}
        fd, found = opened
        try:
            private = mine(found) and self.store.private(path.parent)
            if found.st_size > INDEX_MAX or not private:
                return {}
            decoded = entry.decode(_key(layer), os.read(fd, found.st_size + 1))
            if decoded is not None:
                # Its last use, for eviction; a read-only cache can't keep it, and serves
                # the index all the same.
                with contextlib.suppress(OSError):
                    os.utime(fd)
        except OSError:
            return {}
        finally:
            os.close(fd)
        return {} if decoded is None else layerfile.decode(layer, decoded[0])


def _key(layer: str) -> bytes:
    return hashlib.sha256(os.fsencode(layer)).digest()
