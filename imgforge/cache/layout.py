"""Where the cache lives and where each of its files is (the layout is in ``__init__``)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from imgforge.errors import UsageError

BLOCKS = "blocks"
LAYERS = "layers"
LOCK = "lock"
# What an earlier version kept in the root (its usage records): eviction removes them.
RECORDS = ("usage", "added")
PROFILE_FILE = "profile.json"
# The digits of the names the cache gives its files and directories.
HEX_DIGITS = frozenset("0123456789abcdef")
# A writer's temporary file starts with this; nothing else in the cache does.
TEMPORARY_PREFIX = "."


def default_root(environ: Mapping[str, str] = os.environ) -> Path:
    """``$XDG_CACHE_HOME/imgforge``, else ``~/.cache/imgforge``. A relative (or empty)
    XDG_CACHE_HOME is ignored, as the XDG Base Directory specification says."""
    xdg = environ.get("XDG_CACHE_HOME", "")
    if xdg and os.path.isabs(xdg):
        return Path(xdg) / "imgforge"
    home = environ.get("HOME") or os.path.expanduser("~")
    return Path(home) / ".cache" / "imgforge"


def profile_dir(root: Path, ident: str) -> Path:
    return root / BLOCKS / ident


def layers_dir(root: Path, ident: str) -> Path:
    return root / LAYERS / ident


def check_dir(root: Path, *, option: str = "--cache-dir", create: bool = False) -> None:
    """A cache directory the user named: a directory we may read and write, or nothing yet
    in a directory (``create``: one where we may make it). Raises UsageError saying why not."""
    shown = str(root)
    if os.path.lexists(root) and not root.is_dir():
        raise UsageError(f"{option}: {shown!r} exists and is not a directory")
    if root.is_dir():
        # A read-only cache still serves what it holds (a build then keeps no new blocks).
        if not os.access(root, os.R_OK | os.X_OK):
            raise UsageError(f"{option}: {shown!r} is not readable by you")
        return
    parent = root.parent
    while not os.path.lexists(parent):
        parent = parent.parent
    if not parent.is_dir():
        raise UsageError(f"{option}: {shown!r} can't be made: {str(parent)!r} is not a directory")
    if create and not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"{option}: {shown!r} can't be made in {str(parent)!r} (not writable)")
