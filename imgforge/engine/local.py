"""Whether an engine's image layers can be read in place: the engine runs on this machine
(its unix socket), as root without user-namespace remapping (the files' owners are the
image's own), with the overlay2 storage driver, and imgforge may read its directories."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from imgforge.engine.overlay import layer_dirs, overlay_members
from imgforge.squashfs.members import Member, on_disk

LOCAL_URL = "http+docker://localhost"  # the docker SDK's base URL for a unix socket
REMAPPED = ("name=userns", "name=rootless")


def local_overlay(api: Any) -> bool:
    """Whether the engine's image layers are directories imgforge can read here."""
    if getattr(api, "base_url", None) != LOCAL_URL:
        return False
    try:
        info = api.info()
    except Exception:  # an engine that can't say: read the export instead
        return False
    options = info.get("SecurityOptions") or []
    return info.get("Driver") == "overlay2" and not any(o.startswith(REMAPPED) for o in options)


def readable_layers(inspected: Mapping[str, Any] | None) -> list[str] | None:
    """The layer directories, top first, of the image ``inspected`` (of an engine that
    :func:`local_overlay` accepts); None when they can't be read here."""
    return None if inspected is None else layer_dirs(dict(inspected))


def members(layers: list[str], *, now: int, workdir: str) -> Iterator[Member]:
    """The image's entries read from ``layers`` (see :func:`overlay_members`)."""
    for info, file in overlay_members(layers, now=now, workdir=workdir):
        yield info, None if file is None else on_disk(file)
