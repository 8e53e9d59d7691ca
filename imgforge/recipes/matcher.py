"""moby's pattern matcher, ported: ``.dockerignore`` patterns compiled and matched as Docker does.

A port of github.com/moby/patternmatcher (``patternmatcher.go``; its test tables are in
tests/unit/test_ignore.py). Each pattern becomes the same regular expression as in Docker
and is compiled by RE2, whose syntax Go's regexp shares (and which runs in linear time). A
pattern Docker refuses (``filepath.Match`` syntax, an invalid expression) is refused here:
the build would fail.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from imgforge.patterns import GO_SPACE

# Characters QuoteMeta escapes that are not filepath.Match syntax (patternmatcher.go).
_QUOTED = set(".+()|{}$")
_EXACT, _PREFIX, _SUFFIX, _REGEXP = "exact", "prefix", "suffix", "regexp"


class PatternError(ValueError):
    """A pattern ``docker build`` refuses, or one imgforge cannot match like Docker."""


def go_clean(path: str) -> str:
    """Go's ``path.Clean``: the shortest equivalent path (``..`` at the root vanishes)."""
    if not path:
        return "."
    rooted = path.startswith("/")
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part != "..":
            parts.append(part)
        elif parts and parts[-1] != "..":
            parts.pop()
        elif not rooted:
            parts.append(part)
    cleaned = ("/" if rooted else "") + "/".join(parts)
    return cleaned or "."

def check_syntax(pattern: str) -> None:
    """Go ``filepath.Match``'s syntax check (``matchChunk``/``getEsc``), which
    ``patternmatcher.New`` runs on every pattern."""
    index, size = 0, len(pattern)
    while index < size:
        char = pattern[index]
        if char == "\\":
            if index + 1 >= size:
                raise PatternError(f"{pattern!r} ends in an unfinished escape")
            index += 2
        elif char == "[":
            index = _class_end(pattern, index + 1)
        else:
            index += 1


def _class_end(pattern: str, index: int) -> int:
    """The index after a ``[...]`` class starting at ``index`` (after the ``[``)."""
    if index < len(pattern) and pattern[index] == "^":
        index += 1
    ranges = 0
    while True:
        if index < len(pattern) and pattern[index] == "]" and ranges:
            return index + 1
        low, index = _class_char(pattern, index)
        if pattern[index] == "-":
            high, index = _class_char(pattern, index + 1)
            if high < low:
                raise PatternError(f"{pattern!r} has an empty range {low}-{high}")
        ranges += 1


def _class_char(pattern: str, index: int) -> tuple[str, int]:
    if index >= len(pattern) or pattern[index] in "-]":
        raise PatternError(f"{pattern!r} has a malformed character class")
    if pattern[index] == "\\":
        index += 1
        if index >= len(pattern):
            raise PatternError(f"{pattern!r} has a malformed character class")
    if index + 1 >= len(pattern):
        raise PatternError(f"{pattern!r} has an unclosed character class")
    return pattern[index], index + 1


@dataclass(frozen=True)
class Pattern:
    """One compiled pattern (patternmatcher.go ``Pattern.compile`` and ``match``)."""

    cleaned: str
    exclusion: bool
    kind: str
    regex: Any

    @classmethod
    def compile(cls, cleaned: str, exclusion: bool) -> Pattern:
        import re2

        kind, source = go_regex(cleaned)
        if kind != _REGEXP:
            return cls(cleaned, exclusion, kind, None)
        try:
            return cls(cleaned, exclusion, kind, re2.compile(source))
        except re2.error as exc:
            raise PatternError(f"{cleaned!r} is not a valid pattern ({exc})") from None

    def match(self, path: str) -> bool:
        if self.kind == _EXACT:
            return path == self.cleaned
        if self.kind == _PREFIX:
            return path.startswith(self.cleaned[:-2])
        if self.kind == _SUFFIX:
            suffix = self.cleaned[2:]
            return path.endswith(suffix) or (suffix[:1] == "/" and path == suffix[1:])
        return self.regex.search(path) is not None


def go_regex(pattern: str) -> tuple[str, str]:
    """(match kind, regular expression) exactly as ``Pattern.compile`` builds them: Go's
    regexp syntax is RE2's, so the expression is compiled by RE2 itself."""
    out, kind, index = "^", _EXACT, 0
    while index < len(pattern):
        first = index == 0
        char = pattern[index]
        index += 1
        if char == "*" and pattern.startswith("*", index):
            index += 1 + pattern.startswith("/", index + 1)
            if index >= len(pattern):
                out, kind = (out, _PREFIX) if kind == _EXACT else (out + ".*", _REGEXP)
            else:
                out, kind = out + "(.*/)?", _REGEXP
            kind = _SUFFIX if first else kind
        elif char == "*":
            out, kind = out + "[^/]*", _REGEXP
        elif char == "?":
            out, kind = out + "[^/]", _REGEXP
        elif char in _QUOTED:
            out += "\\" + char
        elif char == "\\":
            escaped = pattern[index]
            index += 1
            if escaped == "C":  # RE2 reads \C as any byte, Go's regexp refuses it
                raise PatternError(f"{pattern!r} is not a valid pattern (escape \\C)")
            out, kind = out + "\\" + escaped, _REGEXP
        elif char in "[]":
            out, kind = out + char, _REGEXP
        else:
            out += char
    return kind, out + "$"


def _parent_matches(pattern: Pattern, parents: list[str]) -> bool:
    """Whether ``pattern`` matches one of the directories ``parents`` (outermost first)."""
    return any(pattern.match("/".join(parents[: i + 1])) for i in range(len(parents)))


@dataclass(frozen=True)
class PatternMatcher:
    """patternmatcher.go ``PatternMatcher``: the patterns in order, later ones win."""

    patterns: tuple[Pattern, ...] = ()

    @classmethod
    def new(cls, patterns: list[str]) -> PatternMatcher:
        compiled = []
        for raw in patterns:
            text = go_clean(raw.strip(GO_SPACE)) if raw.strip(GO_SPACE) else ""
            if not text:
                continue
            exclusion = text.startswith("!")
            if exclusion:
                if text == "!":
                    raise PatternError('illegal exclusion pattern: "!"')
                text = text[1:]
            check_syntax(text)
            compiled.append(Pattern.compile(text, exclusion))
        return cls(tuple(compiled))

    @property
    def exclusions(self) -> bool:
        return any(p.exclusion for p in self.patterns)

    def matches_or_parent_matches(self, path: str) -> bool:
        """Whether ``path`` or one of its parent directories is excluded."""
        matched = False
        parents = path.split("/")[:-1]
        for pattern in self.patterns:
            if pattern.exclusion != matched:
                continue
            match = pattern.match(path) or _parent_matches(pattern, parents)
            if match:
                matched = not pattern.exclusion
        return matched

    def matches_using_parent_results(
        self, path: str, parent: tuple[bool, ...] | None
    ) -> tuple[bool, tuple[bool, ...]]:
        """``MatchesUsingParentResults``: (excluded, what to pass to the children)."""
        matched = False
        info = []
        for index, pattern in enumerate(self.patterns):
            match = parent[index] if parent else False
            if not match and pattern.exclusion == matched:
                match = pattern.match(path)
                if not match and not parent:
                    match = _parent_matches(pattern, path.split("/")[:-1])
            info.append(match)
            if match:
                matched = not pattern.exclusion
        return matched, tuple(info)

    def enters(self, directory: str) -> bool:
        """Whether the context walk still enters an excluded ``directory``: only when an
        exception pattern starts with its path (go-archive ``Tarballer.Do``)."""
        return any(
            (p.cleaned + "/").startswith(directory + "/") for p in self.patterns if p.exclusion
        )
