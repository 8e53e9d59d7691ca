"""The file tree a tar stream describes, as squashfs will hold it: one :class:`Node` per
inode (hard links share one), directories with their entries by name."""

from __future__ import annotations

import stat
import tarfile
from array import array

from imgforge.errors import BuildError
from imgforge.squashfs.format import XATTR_PREFIXES, encode_device

XATTR_HEADERS = ("SCHILY.xattr.", "LIBARCHIVE.xattr.")
XATTR_VALUE_MAX = 65536  # Linux's XATTR_SIZE_MAX
LINK_TARGET_MAX = 4095  # a symlink's target longer than a page less one: the kernel refuses
DEVICE_MAJOR_MAX, DEVICE_MINOR_MAX = 0xFFF, 0xFFFFF  # what squashfs' 32-bit encoding holds


class Node:
    """One inode: its attributes and, for a file, where its data went."""

    __slots__ = (
        "mode", "uid", "gid", "mtime", "xattrs", "nlink", "children", "target", "device",
        "size", "start", "blocks", "fragment", "offset", "sparse", "number", "ref",
    )  # fmt: skip

    def __init__(self, mode: int, uid: int = 0, gid: int = 0, mtime: int = 0) -> None:
        self.mode, self.uid, self.gid, self.mtime = mode, uid, gid, mtime
        self.xattrs: tuple[tuple[str, bytes], ...] = ()
        self.nlink = 1
        self.children: dict[bytes, Node] | None = {} if stat.S_ISDIR(mode) else None
        self.target = b""
        self.device = 0
        self.size = self.start = self.sparse = 0
        self.blocks = array("I")
        self.fragment, self.offset = 0xFFFFFFFF, 0
        self.number = 0
        self.ref = 0


def path_parts(name: str) -> list[bytes]:
    """A member name as path components; refuses ``..`` (a tar must not climb out)."""
    raw = name.encode("utf-8", "surrogateescape")
    if b"\0" in raw:
        raise BuildError(f"tar entry {name!r} has a NUL byte in its name")
    parts = [p for p in raw.split(b"/") if p not in (b"", b".")]
    if b".." in parts:
        raise BuildError(f"tar entry {name!r} climbs out of the image with '..'")
    return parts


def xattrs_of(member: tarfile.TarInfo) -> tuple[tuple[str, bytes], ...]:
    """The extended attributes a PAX header carries, by name."""
    found: dict[str, bytes] = {}
    for key, value in member.pax_headers.items():
        for prefix in XATTR_HEADERS:
            if key.startswith(prefix):
                name = key[len(prefix) :]
                if not any(name.startswith(p) and name != p for p in XATTR_PREFIXES):
                    raise BuildError(
                        f"{member.name}: extended attribute {name!r} has no name in a namespace "
                        "squashfs can store (user., trusted. and security.)"
                    )
                found[name] = value.encode("utf-8", "surrogateescape")
                if len(found[name]) > XATTR_VALUE_MAX:
                    raise BuildError(
                        f"{member.name}: extended attribute {name!r} has {len(found[name])} "
                        f"bytes, more than Linux reads ({XATTR_VALUE_MAX})"
                    )
    return tuple(sorted(found.items()))


class Tree:
    """Directories and their entries, built member by member."""

    def __init__(self, mtime: int) -> None:
        self.default_mtime = mtime
        self.root = Node(stat.S_IFDIR | 0o755, mtime=mtime)

    def parent(self, parts: list[bytes], name: str) -> Node:
        """The directory that holds ``parts``, made (0755, root, default time) if missing."""
        node = self.root
        for part in parts[:-1]:
            assert node.children is not None
            child = node.children.get(part)
            if child is None:
                child = node.children[part] = Node(stat.S_IFDIR | 0o755, mtime=self.default_mtime)
            elif child.children is None:
                raise BuildError(f"tar entry {name!r} is under {part!r}, which is not a directory")
            node = child
        return node

    def lookup(self, name: str) -> Node | None:
        node: Node | None = self.root
        for part in path_parts(name):
            if node is None or node.children is None:
                return None
            node = node.children.get(part)
        return node

    def place(self, member: tarfile.TarInfo, node: Node) -> None:
        """Put ``node`` at the member's path, replacing what was there (a directory that
        replaces a directory keeps its entries)."""
        parts = path_parts(member.name)
        if not parts:
            if node.children is None:
                raise BuildError(f"tar entry {member.name!r} is the root but not a directory")
            node.children = self.root.children
            self.root = node
            return
        parent = self.parent(parts, member.name)
        assert parent.children is not None
        old = parent.children.get(parts[-1])
        if old is not None:
            old.nlink -= 1
            if old.children is not None and node.children is not None:
                node.children = old.children
            elif old.children is not None:
                _unlink_all(old)
        parent.children[parts[-1]] = node

    def link(self, member: tarfile.TarInfo) -> None:
        """A hard link: the member's path names the inode of its link name."""
        target = self.lookup(member.linkname)
        if target is None or target.children is not None:
            raise BuildError(
                f"tar entry {member.name!r} is a hard link to {member.linkname!r}, "
                "which is not a file earlier in the stream"
            )
        self.place(member, target)
        target.nlink += 1


def _unlink_all(directory: Node) -> None:
    """A directory replaced by a file: what was under it loses those names (a hard link
    elsewhere to a file in it keeps the file, with one name fewer)."""
    stack = [directory]
    while stack:
        for child in (stack.pop().children or {}).values():
            child.nlink -= 1
            if child.children is not None:
                stack.append(child)


def node_of(member: tarfile.TarInfo) -> Node:
    """A new inode with the member's attributes (no file data yet)."""
    kinds = {
        tarfile.DIRTYPE: stat.S_IFDIR, tarfile.SYMTYPE: stat.S_IFLNK,
        tarfile.CHRTYPE: stat.S_IFCHR, tarfile.BLKTYPE: stat.S_IFBLK,
        tarfile.FIFOTYPE: stat.S_IFIFO,
    }  # fmt: skip
    kind = kinds.get(member.type, stat.S_IFREG)
    mtime = min(max(int(member.mtime), 0), 0xFFFFFFFF)
    # A symbolic link's own mode means nothing on Linux: stored 0777, as mksquashfs (from
    # lstat) and tar2sqfs store it.
    mode = 0o777 if kind == stat.S_IFLNK else member.mode & 0o7777
    node = Node(kind | mode, member.uid, member.gid, mtime)
    node.xattrs = xattrs_of(member)
    if kind == stat.S_IFLNK:
        node.target = member.linkname.encode("utf-8", "surrogateescape")
        if not 0 < len(node.target) <= LINK_TARGET_MAX or b"\0" in node.target:
            raise BuildError(
                f"tar entry {member.name!r}: a symbolic link target must have 1 to "
                f"{LINK_TARGET_MAX} bytes and no NUL byte"
            )
    elif kind in (stat.S_IFCHR, stat.S_IFBLK):
        if member.devmajor > DEVICE_MAJOR_MAX or member.devminor > DEVICE_MINOR_MAX:
            raise BuildError(
                f"tar entry {member.name!r}: device {member.devmajor}:{member.devminor} is "
                f"beyond what squashfs stores ({DEVICE_MAJOR_MAX}:{DEVICE_MINOR_MAX})"
            )
        node.device = encode_device(member.devmajor, member.devminor)
    return node
