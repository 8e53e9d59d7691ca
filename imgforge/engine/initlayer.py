"""Docker's init layer: what the engine puts above an image's layers in every container it
creates, as ``docker export`` shows it.

moby 20.10, ``daemon/initlayer/setup_unix.go``, run on the image's merged filesystem when
the container is created: for each path below, a directory already there is left as it is;
anything else there (or in the way, as ``/etc`` or ``/dev``) is unlinked, and the path made:
directories and empty files mode 0755 owned by root, the ``/etc/mtab`` link, with the
parents ``/dev`` and ``/etc`` made alike when missing.
"""

from __future__ import annotations

import tarfile
from collections.abc import Mapping
from types import MappingProxyType

# A directory's entries, an empty file (None) or a symbolic link's target.
InitNode = Mapping[str, "InitNode"] | str | None

_DIR: Mapping[str, InitNode] = MappingProxyType({})
INIT_LAYER: Mapping[str, InitNode] = MappingProxyType(
    {
        ".dockerenv": None,
        "dev": MappingProxyType({"console": None, "pts": _DIR, "shm": _DIR}),
        "etc": MappingProxyType(
            {"hostname": None, "hosts": None, "mtab": "/proc/mounts", "resolv.conf": None}
        ),
        "proc": _DIR,
        "sys": _DIR,
    }
)


def init_member(name: str, node: InitNode, now: int) -> tarfile.TarInfo:
    """The export's header for the init layer's entry ``name``, made at ``now``."""
    info = tarfile.TarInfo(name)
    info.mtime = now
    if isinstance(node, Mapping):
        info.type, info.mode = tarfile.DIRTYPE, 0o40755
    elif node is None:
        info.type, info.mode = tarfile.REGTYPE, 0o100755
    else:
        info.type, info.mode, info.linkname = tarfile.SYMTYPE, 0o120777, node
    return info
