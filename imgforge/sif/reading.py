"""Read a built image's entries for a pack: from its layers in place where the source can
(so that files the layer index knows are not read), else from ``docker export``."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TypeVar

from imgforge.cache.layers import LayerIndex
from imgforge.errors import LayersUnreadable
from imgforge.log import STEP, Log
from imgforge.sif.source import ImageSource
from imgforge.sif.transfer import stream_members
from imgforge.squashfs.members import Member

T = TypeVar("T")
LAYERS = "imgforge image layers"
EXPORT = "docker export"


def read_image(
    source: ImageSource, pack: Callable[[Iterable[Member], str], T], log: Log,
    index: LayerIndex | None = None,
) -> T:  # fmt: skip
    """``pack(entries, reader)``: the entries of ``source`` and the name of what read them.
    When the layers turn out to hold something they can't give exactly, ``pack`` is
    called again with the export's entries: it must start its output afresh (and what
    ``index``, the pack's layer index, gave the layers' pass is not what it gave)."""
    with source.layers() as layers:
        if layers is not None:
            try:
                return pack(layers, LAYERS)
            except LayersUnreadable as why:
                log(f"image layers: {why}; reading {EXPORT} instead", kind=STEP)
                if index is not None:
                    index.used = 0
    with source.filesystem() as stream:
        return pack(stream_members(stream), EXPORT)


def said(index: LayerIndex | None, log: Log) -> None:
    """Say what the layer index gave, and keep what it learned."""
    if index is None:
        return
    if index.used:
        log(f"layer index: {index.used} files known without reading them", kind=STEP)
    index.save()
