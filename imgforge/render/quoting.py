"""Quoting of values for the shells and file formats imgforge writes to."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable

_LINE_BREAK = re.compile("[\r\n]")


def sh_quote(value: str) -> str:
    """Quote ``value`` for POSIX sh as one single-quoted word, always.

    Unlike :func:`shlex.quote`, safe-looking strings are quoted too, so that every
    rendered env line has the same shape and sourcing it reproduces the exact bytes.
    After each line break the quote is closed and reopened (``''``): Apptainer's .def
    parser starts a new section at any line whose first word begins with ``%``, even
    inside a quoted string, so no line of the output may start with one.
    """
    quoted = value.replace("'", "'\\''")
    return "'" + _LINE_BREAK.sub("\\g<0>''", quoted) + "'"


def sh_join(words: Iterable[str]) -> str:
    """Quote each word with :func:`sh_quote` and join them with spaces."""
    return " ".join(sh_quote(word) for word in words)


def dockerfile_quote(value: str) -> str:
    """Quote ``value`` as a double-quoted Dockerfile word (ENV, LABEL).

    The Dockerfile lexer treats backslash, double quote and ``$`` specially inside
    double quotes; escaping exactly those three keeps the string byte for byte.
    Values never contain newlines (the recipe loader refuses them), so a line can
    never end in a continuation backslash.
    """
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$")
    return f'"{escaped}"'


def json_list(words: Iterable[str]) -> str:
    """Render ``words`` as a JSON array: the exec form of CMD/ENTRYPOINT/RUN."""
    return json.dumps(list(words), ensure_ascii=False)
