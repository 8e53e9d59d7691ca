"""The tar header ``docker export`` writes for one file, as Python's tarfile reads it back.

moby 20.10, ``pkg/archive``: ``FileInfoHeader`` (Go's ``tar.FileInfoHeader`` of the lstat,
the time truncated to the second, the mode with its file-type bits, device numbers) and
``ReadSecurityXattrToTarHeader`` (the one extended attribute exported). The owners' names
are left empty: the engine looks them up in its own host's user database (and names only
some ids), and an image keeps numeric ids alone.
"""

from __future__ import annotations

import os
import stat
import tarfile

CAPABILITY = "security.capability"
PAX_CAPABILITY = "SCHILY.xattr." + CAPABILITY
# A file capability is exported as revision 2: the root id of a revision 3 one means
# nothing outside the user namespace it was set in.
_CAPS_V2_SIZE, _CAPS_VERSION_BYTE, _CAPS_V2, _CAPS_V3 = 20, 3, 2, 3
# Go's tar writer keeps a time in the header's 11 octal digits when it fits, and in a PAX
# record (which Python's tarfile reads as a float) when it does not.
_OCTAL_TIME_END = 8**11
_TYPES = {
    stat.S_IFREG: tarfile.REGTYPE,
    stat.S_IFDIR: tarfile.DIRTYPE,
    stat.S_IFLNK: tarfile.SYMTYPE,
    stat.S_IFCHR: tarfile.CHRTYPE,
    stat.S_IFBLK: tarfile.BLKTYPE,
    stat.S_IFIFO: tarfile.FIFOTYPE,
}


def file_header(
    name: str, found: os.stat_result, path: str, capability: bytes | None
) -> tarfile.TarInfo:
    """The header of the file at ``path`` (not a socket), ``found`` its lstat, exported
    as ``name`` with its file capability (``security.capability``) if it has one."""
    kind = stat.S_IFMT(found.st_mode)
    info = tarfile.TarInfo(name)
    info.type, info.mode = _TYPES[kind], found.st_mode
    info.uid, info.gid = found.st_uid, found.st_gid
    seconds = found.st_mtime_ns // 1_000_000_000
    info.mtime = seconds if 0 <= seconds < _OCTAL_TIME_END else float(seconds)
    if kind == stat.S_IFREG:
        info.size = found.st_size
    elif kind == stat.S_IFLNK:
        info.linkname = os.readlink(path)
    elif kind in (stat.S_IFCHR, stat.S_IFBLK):
        info.devmajor, info.devminor = os.major(found.st_rdev), os.minor(found.st_rdev)
    if capability is not None:
        info.pax_headers = {PAX_CAPABILITY: exported_capability(capability)}
    return info


def exported_capability(value: bytes) -> str:
    """A file capability as moby writes it (revision 3 as revision 2) and Python's
    tarfile reads the PAX record back."""
    if len(value) > _CAPS_VERSION_BYTE and value[_CAPS_VERSION_BYTE] == _CAPS_V3:
        value = bytes([*value[:_CAPS_VERSION_BYTE], _CAPS_V2, *value[4:_CAPS_V2_SIZE]])
    return value.decode("utf-8", "surrogateescape")
