"""Split a Singularity/Apptainer definition file into header and sections as Apptainer does.

The rules follow Apptainer's own parser (pkg/build/types/parser/deffile.go): a line whose
first word starts with ``%`` opens a section, named by the text up to the first space;
everything before the first section is the header, ``Key: value`` lines where ``#``
starts a comment; a second ``Bootstrap:`` at the start of a line starts another stage.
Line endings are LF or CRLF (Go's bufio.ScanLines drops the CR); section bodies keep
every line exactly, indentation and blank lines included, because %post is run as is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from imgforge.errors import RecipeError

STAGE_RE = re.compile(r"bootstrap:", re.IGNORECASE)
# Go's unicode.IsSpace (bufio.ScanWords, strings.TrimSpace): Python's str.strip() and
# str.split() also take \x1c-\x1f for blanks, which Apptainer does not.
GO_SPACE = (
    "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
)
GO_SPACE += "\u2028\u2029\u202f\u205f\u3000"
DEF_START_RE = re.compile(r"\s*bootstrap\s*:", re.IGNORECASE)


@dataclass(frozen=True)
class HeaderLine:
    """One ``Key: value`` line of the header (key lower-cased, comment removed)."""

    line: int
    key: str
    value: str
    raw: str


@dataclass(frozen=True)
class Section:
    """One ``%name args`` section and the lines after it, as written."""

    line: int
    name: str
    args: str
    raw: str
    body: tuple[str, ...]

    def numbered(self) -> list[tuple[int, str]]:
        """(line number, text) of each body line."""
        return [(self.line + 1 + index, text) for index, text in enumerate(self.body)]


@dataclass(frozen=True)
class Definition:
    """A definition file: header lines, sections in order, and where stages start."""

    header: tuple[HeaderLine, ...]
    sections: tuple[Section, ...]
    stage_lines: tuple[int, ...]
    # Header lines that are not ``Key: value`` (line, text): Apptainer rejects them.
    malformed: tuple[tuple[int, str], ...]


def read_source(path: Path) -> str:
    """The text of a file to import; unreadable input is a RecipeError (exit 2, one line)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise RecipeError(path, "", f"cannot read file: {exc.strerror}") from None
    if b"\0" in data:
        raise RecipeError(path, "", "not a text file (it contains NUL bytes)")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise RecipeError(path, "", "not valid UTF-8") from None


def is_definition(path: Path, text: str) -> bool:
    """A definition file: named ``*.def``, or its first line that is neither blank nor a
    comment is a ``Bootstrap:`` header (no Dockerfile instruction looks like that)."""
    if path.suffix == ".def":
        return True
    for line in text.split("\n"):
        if line.strip() and not line.lstrip().startswith("#"):
            return DEF_START_RE.match(line) is not None
    return False


def lines_of(text: str) -> list[str]:
    """Lines as Go's bufio.ScanLines yields them: split at LF, one trailing CR dropped."""
    lines = [line.removesuffix("\r") for line in text.split("\n")]
    return lines[:-1] if lines and lines[-1] == "" else lines


def _header_line(number: int, raw: str) -> HeaderLine | tuple[int, str] | None:
    line = raw.strip(GO_SPACE)
    if not line or line.startswith("#"):
        return None
    key, colon, value = line.split("#", 1)[0].partition(":")
    if not colon:
        return number, line
    return HeaderLine(number, key.strip(GO_SPACE).lower(), value.strip(GO_SPACE), line)


def _section(number: int, raw: str, body: list[str]) -> Section:
    # Apptainer: strings.TrimLeft(line, "%") then SplitN(line, " ", 2); an indented
    # header keeps its leading blanks, which makes its name empty (an invalid section).
    name, _, args = raw.lstrip("%").partition(" ") if raw.startswith("%") else ("", "", "")
    return Section(number, name.lower(), args.strip(), raw, tuple(body))


def scan(text: str) -> Definition:
    """Header lines and sections of a definition file's text."""
    header: list[HeaderLine] = []
    malformed: list[tuple[int, str]] = []
    opened: list[tuple[int, str, list[str]]] = []
    lines = lines_of(text)
    for number, raw in enumerate(lines, start=1):
        if raw.lstrip(GO_SPACE).startswith("%"):  # the first word starts with %
            opened.append((number, raw, []))
        elif opened:
            opened[-1][2].append(raw)
        elif isinstance(parsed := _header_line(number, raw), HeaderLine):
            header.append(parsed)
        elif parsed is not None:
            malformed.append(parsed)
    stages = tuple(n for n, raw in enumerate(lines, start=1) if STAGE_RE.match(raw))
    sections = tuple(_section(number, raw, body) for number, raw, body in opened)
    return Definition(tuple(header), sections, stages, tuple(malformed))
