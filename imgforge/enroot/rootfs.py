"""The root filesystem ``enroot import dockerd://`` makes of ``docker export``, as a pass
over the export's tar entries: what it leaves out, what it changes, what it adds.

enroot 4.1.2 ``docker::daemon`` extracts the export with ``tar --anchored --exclude='dev/*'
--exclude='.dockerenv' -px`` (GNU tar without ``--xattrs``: no extended attributes), runs
``common::fixperms`` (``chmod -R u+rX``, then ``u+w`` on directories down to depth 15),
writes its four files (:mod:`imgforge.enroot.files`) with ``>``, so that a file already
there keeps its mode, makes the working directory (``mkdir -p``), and packs the tree with
``mksquashfs -all-root``: every entry owned by root.
"""

from __future__ import annotations

import io
import stat
import tarfile
from typing import IO

from imgforge.enroot.files import files
from imgforge.errors import ImageDataError
from imgforge.recipes.image import ImageConfig
from imgforge.squashfs.members import Archive, normalise

DROPPED_UNDER = "dev/"
DROPPED = ".dockerenv"
# The login scripts enroot's default login shell runs (see imgforge.enroot.lint).
PROFILE = "etc/profile"
PROFILE_DIRECTORY = "etc/profile.d/"
PROFILE_MAX = 1 << 20
XATTR_HEADERS = ("SCHILY.xattr.", "LIBARCHIVE.xattr.")
# common::fixperms: find -maxdepth 15 -type d ! -perm -u=w -exec chmod u+w.
WRITABLE_DEPTH = 15
NEW_FILE_MODE = 0o644  # `>` under umask 022
NEW_DIRECTORY_MODE = 0o755  # `mkdir -p` under umask 022


def dropped(name: str) -> bool:
    """What the import's tar leaves out: everything under /dev, and /.dockerenv."""
    return name.startswith(DROPPED_UNDER) or name == DROPPED


def is_profile(name: str) -> bool:
    return name == PROFILE or name.startswith(PROFILE_DIRECTORY) and name.endswith(".sh")


def fixed_mode(member: tarfile.TarInfo, name: str) -> int:
    """``chmod u+rX``, and ``u+w`` for a directory no deeper than 15."""
    mode = member.mode | stat.S_IRUSR
    if member.isdir() or mode & 0o111:
        mode |= stat.S_IXUSR
    if member.isdir() and name.count("/") < WRITABLE_DEPTH:
        mode |= stat.S_IWUSR
    return mode


class EnrootRoot:
    """Hands ``sink`` the entries of an export as enroot's import leaves them, then
    (:meth:`finish`) the files and directories it adds. ``mtime``: the time of what is
    added; ``clamp`` (SOURCE_DATE_EPOCH): no entry is newer."""

    def __init__(
        self, sink: Archive, config: ImageConfig, *, mtime: int, clamp: int | None = None
    ) -> None:
        self.sink, self.config, self.mtime, self.clamp = sink, config, mtime, clamp
        self.written = files(config)
        self.kinds: dict[str, bytes] = {}
        self.modes: dict[str, int] = {}
        self.links: list[tarfile.TarInfo] = []  # hard links to a file the import rewrites
        # The image's login scripts by path; None for a link (imgforge.enroot.lint).
        self.profiles: dict[str, bytes | None] = {}
        self.count = 0

    def add(self, member: tarfile.TarInfo, data: IO[bytes] | None) -> None:
        if self.clamp is not None and member.mtime > self.clamp:
            member.mtime = self.clamp
        self.sink.addfile(member, data)
        self.count += 1

    def addfile(self, member: tarfile.TarInfo, fileobj: IO[bytes] | None = None) -> None:
        """One entry of the export."""
        name = normalise(member.name)
        if not name or dropped(name):
            return
        if member.islnk() and dropped(normalise(member.linkname)):
            return  # tar can't make a link to what it left out
        member.uid = member.gid = 0
        member.uname = member.gname = "root"
        if any(key.startswith(XATTR_HEADERS) for key in member.pax_headers):
            headers = member.pax_headers.items()
            member.pax_headers = {k: v for k, v in headers if not k.startswith(XATTR_HEADERS)}
        if not member.issym() and not member.islnk():
            member.mode = fixed_mode(member, name)
        self.kinds[name] = member.type
        if name in self.written:
            self.rewritten(member, name)
            return
        if member.islnk() and normalise(member.linkname) in self.written:
            self.links.append(member)
            return
        if is_profile(name):
            fileobj = self.keep_profile(name, member, fileobj)
        self.add(member, fileobj)

    def keep_profile(
        self, name: str, member: tarfile.TarInfo, fileobj: IO[bytes] | None
    ) -> IO[bytes] | None:
        """Read a login script on its way through (a link: None)."""
        if member.issym() or member.islnk():
            self.profiles[name] = None
        elif fileobj is not None and member.size <= PROFILE_MAX:
            data = fileobj.read()
            self.profiles[name] = data
            return io.BytesIO(data)
        return fileobj

    def rewritten(self, member: tarfile.TarInfo, name: str) -> None:
        """The image's own copy of a file the import writes: only its mode is kept. A link
        is refused: enroot writes through it (into its target, or both names of a hard
        link), which imgforge doesn't do."""
        if member.islnk():
            why = f"a hard link to /{normalise(member.linkname)}: enroot's import rewrites both"
        elif member.issym():
            why = f"a symlink to {member.linkname}: enroot's import writes through it"
        elif not member.isreg():
            why = "not a regular file: enroot's import would write through it"
        else:
            self.modes[name] = member.mode
            return
        raise ImageDataError("the image", f"/{name}", f"is {why}; imgforge can't make that image")

    def finish(self) -> int:
        """Add /etc (if missing), the four files, the links to them and the working
        directory; return the number of entries handed on."""
        self.directories("etc")
        for name, text in self.written.items():
            data = text.encode("utf-8")
            info = self.info(name, tarfile.REGTYPE, self.modes.get(name, NEW_FILE_MODE))
            info.size = len(data)
            self.add(info, io.BytesIO(data))
        for link in self.links:
            self.add(link, None)
        self.directories((self.config.workdir or "/").strip("/"))
        return self.count

    def directories(self, path: str) -> None:
        """``mkdir -p /PATH``: each missing directory, up to the first that is not one
        (``..`` and ``.`` taken as mkdir takes them, one component after the other)."""
        parts: list[str] = []
        for part in path.split("/"):
            if part in ("", "."):
                continue
            if part == "..":
                if parts:
                    parts.pop()
                continue
            parts.append(part)
            name = "/".join(parts)
            kind = self.kinds.get(name)
            if kind is None:
                self.add(self.info(name, tarfile.DIRTYPE, NEW_DIRECTORY_MODE), None)
                self.kinds[name] = tarfile.DIRTYPE
            elif kind != tarfile.DIRTYPE:
                if name == "etc":
                    raise ImageDataError(
                        "the image", "/etc",
                        "is not a directory, and enroot's import writes its files there",
                    )  # fmt: skip
                return

    def info(self, name: str, kind: bytes, mode: int) -> tarfile.TarInfo:
        info = tarfile.TarInfo(name)
        info.type, info.mode, info.mtime = kind, mode, self.mtime
        info.uname = info.gname = "root"
        return info
