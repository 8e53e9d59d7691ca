"""What makes stored blocks reusable: the compression profile and its short id."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any

FIELDS = ("compressor", "level", "block_size", "writer")
IDENT_BYTES = 8  # 16 hex digits: a handful of profiles per cache, never a collision
# What a profile.json the cache wrote can hold: squashfs block sizes (4 KiB to 1 MiB),
# levels of any compressor, short printable names.
BLOCK_SIZES = frozenset(1 << shift for shift in range(12, 21))
LEVEL_MAX = 1 << 20
TEXT_MAX = 256


@dataclass(frozen=True)
class Profile:
    """What makes stored bytes reusable: equal profiles give byte-identical output."""

    compressor: str  # "gzip" | "zstd" | "xz"
    level: int
    block_size: int
    # The writer and compression library versions, e.g. "imgforge-squashfs 1; zlib 1.2.13".
    writer: str

    def canonical(self) -> str:
        """The fields as JSON with sorted keys and no spaces: what ``ident`` hashes."""
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))

    def ident(self) -> str:
        """A stable short hex id of the canonical JSON of the fields."""
        digest = hashlib.blake2b(self.canonical().encode("utf-8"), digest_size=IDENT_BYTES)
        return digest.hexdigest()

    @classmethod
    def from_json(cls, data: Any) -> Profile | None:
        """The profile a ``profile.json`` holds, or None when it isn't one."""
        if not isinstance(data, dict) or set(data) != set(FIELDS):
            return None
        text, numbers = (data["compressor"], data["writer"]), (data["level"], data["block_size"])
        if not all(isinstance(v, str) for v in text):
            return None
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in numbers):
            return None
        if not all(v.isprintable() and len(v) <= TEXT_MAX for v in text):
            return None  # shown on a terminal as it is
        level, block_size = numbers
        if not -LEVEL_MAX <= level <= LEVEL_MAX or block_size not in BLOCK_SIZES:
            return None
        return cls(**data)
