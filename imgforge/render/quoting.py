"""Quoting of values for the shells and file formats imgforge writes to."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable

# Every character that some reader of a .def takes as a line break: Apptainer's \n,
# and what Python's str.splitlines (spython) breaks at too.
_LINE_BREAK = re.compile("[\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")
# A "{" followed by another: Apptainer (1.2+) substitutes {{ NAME }} anywhere in a .def.
_DOUBLE_BRACE = re.compile(r"\{(?=\{)")
# spython (singularity-cli) ends a section at any line holding "bootstrap:", anywhere.
_STAGE_WORD = re.compile(r"(?i)bootstrap(?=:)")


def sh_quote(value: str) -> str:
    """Quote ``value`` for POSIX sh as one single-quoted word, always.

    Unlike :func:`shlex.quote`, safe-looking strings are quoted too, so that every
    rendered env line has the same shape and sourcing it reproduces the exact bytes. A
    ``'`` is written ``'"'"'`` as shlex does, never ``'\\''``: Apptainer's embedded shell
    (mvdan.cc/sh) keeps the backslash of an unquoted ``\\'`` in an assignment value.
    After each line break (of any reader: Apptainer's, spython's) the quote is closed
    and reopened (``''``): Apptainer's .def
    parser starts a new section at any line whose first word begins with ``%``, even
    inside a quoted string, so no line of the output may start with one. For the same
    reason a quote is closed and reopened between two ``{``: Apptainer reads
    ``{{ NAME }}`` anywhere in a .def as a build variable
    (internal/pkg/build/args/reader.go), so no output holds two ``{`` in a row; and
    before the ``:`` of ``bootstrap:``, which spython reads as another stage anywhere.
    """
    quoted = _DOUBLE_BRACE.sub("{''", value.replace("'", "'\"'\"'"))
    quoted = _STAGE_WORD.sub("\\g<0>''", quoted)
    return "'" + _LINE_BREAK.sub("\\g<0>''", quoted) + "'"


def sh_join(words: Iterable[str]) -> str:
    """Quote each word with :func:`sh_quote` and join them with spaces."""
    return " ".join(sh_quote(word) for word in words)


def args_quoted(words: Iterable[str]) -> str:
    """Words as one string of double-quoted words, as Apptainer's Docker-style runscript
    keeps ENTRYPOINT and CMD (shell.ArgsQuoted): ``eval "set ..."`` reads them back."""
    return " ".join(f'"{_escape_double(word)}"' for word in words)


def _escape_double(word: str) -> str:
    """Apptainer's shell.Escape: backslash, double quote, backquote and dollar."""
    for char in ("\\", '"', "`", "$"):
        word = word.replace(char, "\\" + char)
    return word


def prepend_lines(words: Iterable[str], pad: str = "") -> str:
    """``set -- WORD "$@"`` lines that put ``words`` before the arguments, last word first,
    each line after ``pad``. Only the lines are indented, never a line break inside a word
    (jinja's ``indent`` would put ``pad`` into the word too)."""
    return "\n".join(f'{pad}set -- {sh_quote(word)} "$@"' for word in reversed(list(words)))


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


def escaped(text: str) -> str:
    """``text`` with every non-printable character shown as a Python escape: for names
    that go into a comment line, which must stay one line."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
