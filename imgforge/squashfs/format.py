"""The squashfs 4.0 on-disk structures imgforge writes (Linux fs/squashfs/squashfs_fs.h;
squashfs-tools-ng include/sqfs/*.h), all little-endian."""

from __future__ import annotations

import stat
import struct

MAGIC = 0x73717368
SUPERBLOCK = struct.Struct("<IIIIIHHHHHHQQQQQQQQ")
assert SUPERBLOCK.size == 96
INVALID = 0xFFFFFFFFFFFFFFFF
NO_INDEX = 0xFFFFFFFF
META_SIZE = 8192
META_UNCOMPRESSED = 0x8000
# A data block's or fragment's size word: this bit set means stored uncompressed.
BLOCK_UNCOMPRESSED = 1 << 24
DEVICE_ALIGN = 4096

# Superblock flags.
FLAG_NO_FRAGMENTS = 0x0010
FLAG_DUPLICATES = 0x0040
FLAG_NO_XATTRS = 0x0200
FLAG_COMPRESSOR_OPTIONS = 0x0400

# Inode types: basic, and extended (basic + 7).
DIR, FILE, SYMLINK, BLKDEV, CHRDEV, FIFO, SOCKET = range(1, 8)
EXTENDED = 7
TYPES = {
    stat.S_IFDIR: DIR,
    stat.S_IFREG: FILE,
    stat.S_IFLNK: SYMLINK,
    stat.S_IFBLK: BLKDEV,
    stat.S_IFCHR: CHRDEV,
    stat.S_IFIFO: FIFO,
    stat.S_IFSOCK: SOCKET,
}

INODE_HEADER = struct.Struct("<HHHHII")  # type, mode, uid index, gid index, mtime, number
DIR_INODE = struct.Struct("<IIHHI")  # block index, nlink, size, offset, parent
EXT_DIR_INODE = struct.Struct("<IIIIHHI")  # nlink, size, block, parent, index count, offset, xattr
FILE_INODE = struct.Struct("<IIII")  # blocks start, fragment, fragment offset, size
EXT_FILE_INODE = struct.Struct("<QQQIIII")  # start, size, sparse, nlink, fragment, offset, xattr
LINK_INODE = struct.Struct("<II")  # nlink, target size
DEV_INODE = struct.Struct("<II")  # nlink, device
IPC_INODE = struct.Struct("<I")  # nlink
XATTR_INDEX = struct.Struct("<I")

DIR_HEADER = struct.Struct("<III")  # count - 1, inode block start, base inode number
DIR_ENTRY = struct.Struct("<HhHH")  # offset, inode number delta, type, name size - 1
MAX_DIR_ENTRIES = 256
DIR_INDEX = struct.Struct("<III")  # offset in the listing, metadata block, name size - 1
# A directory of this many entries gets an index of its runs, so the kernel's lookup skips
# to the right run instead of scanning from the start (squashfs-tools-ng's threshold).
DIR_INDEX_THRESHOLD = 256
FRAGMENT_ENTRY = struct.Struct("<QII")  # start, size word, unused
XATTR_KEY = struct.Struct("<HH")  # type (prefix id), name size
XATTR_VALUE = struct.Struct("<I")
XATTR_ID = struct.Struct("<QII")  # key-value reference, count, size
XATTR_TABLE = struct.Struct("<QII")  # key-value table start, id count, unused
XATTR_PREFIXES = {"user.": 0, "trusted.": 1, "security.": 2}


def encode_device(major: int, minor: int) -> int:
    """Linux's new_encode_dev, as squashfs stores a device number."""
    return (minor & 0xFF) | (major << 8) | ((minor & ~0xFF) << 12)


def reference(block: int, offset: int) -> int:
    """An inode or metadata reference: the metadata block's start, the offset in it."""
    return (block << 16) | offset
