"""``.dockerignore`` beside a recipe, matched exactly as ``docker build`` matches it.

The file is read as moby's ``ignorefile/ignorefile.go`` reads it, its patterns are matched
by imgforge.recipes.matcher (the port of moby's pattern matcher), and the directory rule of
the context walk is github.com/moby/go-archive's (``archive.go``, ``Tarballer.Do``): an
excluded directory is still entered when an exception pattern (``!...``) starts with its
path.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from imgforge.patterns import GO_SPACE
from imgforge.recipes.matcher import PatternError, PatternMatcher, go_clean

__all__ = [
    "IGNORE_FILE",
    "Ignore",
    "Info",
    "PatternError",
    "go_clean",
    "read_patterns",
]

Info = tuple[bool, ...] | None

IGNORE_FILE = ".dockerignore"
BOM = b"\xef\xbb\xbf"
# bufio.Scanner's default MaxScanTokenSize: a longer line fails `docker build`.
MAX_LINE = 64 * 1024


def read_patterns(data: bytes) -> list[str]:
    """``ignorefile.ReadAll``: BOM stripped, ``#`` comments skipped, each pattern trimmed,
    cleaned, and relative (a leading ``/`` removed), ``!`` kept in front. Lines are split
    as Go's ``bufio.ScanLines`` splits them (``\\n``, one ``\\r`` before it dropped)."""
    lines = data.removeprefix(BOM).split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    patterns = []
    for number, raw in enumerate(lines, start=1):
        if len(raw) >= MAX_LINE:
            raise PatternError(f"line {number} is longer than {MAX_LINE - 1} bytes")
        line = raw.removesuffix(b"\r").decode("utf-8", "surrogateescape")
        pattern = _read_line(line)
        if any("\udc80" <= char <= "\udcff" for char in pattern):
            raise PatternError(f"line {number} is not valid UTF-8")
        if pattern:
            patterns.append(pattern)
    return patterns


def _read_line(line: str) -> str:
    if line.startswith("#"):
        return ""
    pattern = line.strip(GO_SPACE)
    if not pattern:
        return ""
    invert = pattern.startswith("!")
    if invert:
        pattern = pattern[1:].strip(GO_SPACE)
    if pattern:
        pattern = go_clean(pattern)
        if len(pattern) > 1 and pattern.startswith("/"):
            pattern = pattern[1:]
    return "!" + pattern if invert else pattern

@dataclass(frozen=True)
class Ignore:
    """The ``.dockerignore`` of one recipe directory."""

    matcher: PatternMatcher = PatternMatcher()

    @classmethod
    def parse(cls, data: bytes) -> Ignore:
        return cls(PatternMatcher.new(read_patterns(data)))

    def state(self, relative: str, parent: tuple[bool, ...] | None) -> tuple[bool, Info]:
        """(whether the walk skips ``relative``, the match state its children inherit)."""
        return self.matcher.matches_using_parent_results(relative, parent)

    def info(self, relative: str) -> Info:
        """The match state the walk carries into the directory ``relative``."""
        info: Info = None
        if relative != ".":
            parts = relative.split("/")
            for depth in range(1, len(parts) + 1):
                _, info = self.state("/".join(parts[:depth]), info)
        return info

    def skips(self, relative: str) -> bool:
        """Whether the walk leaves ``relative`` itself out (its parents aside)."""
        parent = os.path.dirname(relative) or "."
        return self.state(relative, self.info(parent))[0]

    def enters(self, directory: str) -> bool:
        """Whether the walk goes into ``directory`` although it skips it."""
        return self.matcher.exclusions and self.matcher.enters(directory)

    def sends(self, relative: str, *, is_dir: bool = False) -> bool:
        """Whether ``relative`` reaches the context: no directory above it is skipped
        without being entered, and it is sent itself (a directory that is skipped but
        entered still brings what the walk sends below it)."""
        info: Info = None
        parts = relative.split("/")
        for depth in range(1, len(parts) + 1):
            prefix = "/".join(parts[:depth])
            skip, info = self.state(prefix, info)
            last = depth == len(parts)
            if skip and (last and not is_dir or not self.enters(prefix)):
                return False
        return True
