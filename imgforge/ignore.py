"""``.dockerignore`` beside a recipe: which files a build context leaves out."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

IGNORE_FILE = ".dockerignore"


def _regex(pattern: str) -> re.Pattern[str]:
    """Docker's pattern syntax (Go filepath.Match plus ``**``) as a regex on a relative
    path with ``/`` separators."""
    out = ""
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if pattern.startswith("**", index):
            out += ".*"
            index += 2
            if pattern.startswith("/", index):
                out += "/?"
                index += 1
            continue
        out += {"*": "[^/]*", "?": "[^/]"}.get(char, re.escape(char))
        index += 1
    return re.compile(out + r"\Z")


def _clean(pattern: str) -> str:
    parts = [p for p in pattern.strip().split("/") if p not in ("", ".")]
    return "/".join(parts)


@dataclass(frozen=True)
class Ignore:
    """The rules of one ``.dockerignore``, in order; later rules win (``!`` re-includes)."""

    rules: tuple[tuple[bool, re.Pattern[str]], ...] = ()

    @classmethod
    def load(cls, directory: Path) -> Ignore:
        path = directory / IGNORE_FILE
        if not path.is_file():
            return cls()
        rules = []
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            negate = line.startswith("!")
            pattern = _clean(line[1:] if negate else line)
            if pattern:
                rules.append((negate, _regex(pattern)))
        return cls(tuple(rules))

    def excludes(self, relative: str) -> bool:
        """Whether ``relative`` (or a directory above it) is left out of the context."""
        parts = relative.split("/")
        candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        excluded = False
        for negate, regex in self.rules:
            if any(regex.match(candidate) for candidate in candidates):
                excluded = not negate
        return excluded
