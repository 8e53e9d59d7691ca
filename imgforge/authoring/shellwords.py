"""Read a line of sh as literal words (quotes only, nothing a shell would expand), or refuse.

Importers use this to know a line's meaning without running a shell: a word made of
plain characters, backslash escapes, '...' and "..." (without $ or `) means the same to
every POSIX shell. Anything else (variables, globs, ~, redirections, operators, a quote
or a backslash left open at the end of the line) makes :func:`literal_words` return None.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass

# Characters no POSIX shell treats specially anywhere in a word (no glob, no tilde,
# no brace expansion, no operator): they stand for themselves unquoted.
PLAIN = frozenset(string.ascii_letters + string.digits + "_@%+=:,./-")
ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")
# Inside double quotes a backslash escapes only these (POSIX 2.2.3); before others it stays.
DQ_ESCAPES = '$`"\\'


@dataclass(frozen=True)
class Word:
    """One word: its text as written and the string the shell makes of it."""

    raw: str
    value: str

    @property
    def assignment(self) -> tuple[str, str] | None:
        """(name, value) when the shell reads this word as ``NAME=value``."""
        match = ASSIGNMENT.match(self.raw)
        if match is None:
            return None
        name = match.group()[:-1]
        return name, self.value[len(name) + 1 :]


def _double_quoted(line: str, start: int) -> tuple[str, int] | None:
    """The value of the "..." opening at ``start``, and the index after it."""
    value, index = "", start + 1
    while index < len(line):
        char = line[index]
        if char == '"':
            return value, index + 1
        if char in "$`":
            return None
        if char == "\\" and index + 1 < len(line) and line[index + 1] in DQ_ESCAPES:
            index += 1
            char = line[index]
        value += char
        index += 1
    return None


def _word(line: str, start: int) -> tuple[Word, int] | None:
    """The word starting at ``start`` and the index after it, if it is a literal."""
    value, index = "", start
    while index < len(line) and line[index] not in " \t":
        char = line[index]
        if char in PLAIN:
            value, index = value + char, index + 1
        elif char == "\\" and index + 1 < len(line):
            value, index = value + line[index + 1], index + 2
        elif char == "'" and (end := line.find("'", index + 1)) != -1:
            value, index = value + line[index + 1 : end], end + 1
        elif char == '"' and (quoted := _double_quoted(line, index)) is not None:
            value, index = value + quoted[0], quoted[1]
        else:
            return None
    return Word(line[start:index], value), index


def is_blank(line: str) -> bool:
    """Nothing but blanks, which for sh are space and tab only."""
    return not line.strip(" \t")


def is_comment(line: str) -> bool:
    return line.lstrip(" \t").startswith("#")


def literal_words(line: str) -> list[Word] | None:
    """The words of one line of sh, if every one is a literal; a ``#`` that starts a
    word starts a comment, as in sh. None if the shell would expand or join anything."""
    words: list[Word] = []
    index = 0
    while True:
        while index < len(line) and line[index] in " \t":
            index += 1
        if index == len(line) or line[index] == "#":
            return words
        parsed = _word(line, index)
        if parsed is None:
            return None
        words.append(parsed[0])
        index = parsed[1]
