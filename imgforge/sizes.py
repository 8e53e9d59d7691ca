"""Sizes as users type them (``20G``, ``500M``, ``1.5T``, bytes) and as imgforge shows them."""

from __future__ import annotations

import math
import re

from imgforge.errors import UsageError

# Binary units, as du -h and df -h mean them: K is 1024 bytes.
UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40, "P": 1 << 50}
SIZE_RE = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*([KMGTP]?)(?:I?B)?", re.IGNORECASE)
# What the squashed-data cache may hold before the least recently used entries go.
DEFAULT_CACHE_LIMIT = 20 * UNITS["G"]


def parse_size(text: str, *, option: str) -> int:
    """A number of bytes, with an optional binary unit (K, M, G, T, P, also as KiB or
    KB); ``option`` names where it came from in the error."""
    match = SIZE_RE.fullmatch(text.strip())
    if match is None:
        raise UsageError(f"{option}: {text!r} is not a size like 20G")
    number, unit = match.groups()
    size = float(number) * UNITS[unit.upper()]
    if not math.isfinite(size):
        raise UsageError(f"{option}: {text!r} is not a size like 20G")
    return int(size)


def format_size(size: int) -> str:
    """``size`` bytes in the largest unit that keeps it at least 1 (one decimal), the
    way parse_size reads it back: 512 -> ``512B``, 1536 -> ``1.5K``, 20 GiB -> ``20G``."""
    for unit in "PTGMK":
        scale = UNITS[unit]
        if size >= scale:
            return f"{size / scale:.1f}".removesuffix(".0") + unit
    return f"{size}B"
