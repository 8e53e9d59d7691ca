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
from imgforge.recipes.inputfile import read_bounded
from imgforge.sif.definition import (
    go_trim,
    header_field,
    opens_section,
    scan_lines,
    section_head,
)

STAGE_RE = re.compile(r"bootstrap:", re.IGNORECASE)
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
    """The text of a file to import; unreadable input is a RecipeError (exit 2, one line):
    not a regular file (a FIFO, a device, a directory), larger than inputfile.MAX_BYTES."""
    data = read_bounded(path)
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


def _header_line(number: int, raw: str) -> HeaderLine | tuple[int, str] | None:
    line = go_trim(raw)
    if not line or line.startswith("#"):
        return None
    if (field := header_field(line)) is None:
        return number, line
    return HeaderLine(number, *field, line)


def _section(number: int, raw: str, body: list[str]) -> Section:
    name, args = section_head(raw)
    return Section(number, name, go_trim(args), raw, tuple(body))


def scan(text: str) -> Definition:
    """Header lines and sections of a definition file's text."""
    header: list[HeaderLine] = []
    malformed: list[tuple[int, str]] = []
    opened: list[tuple[int, str, list[str]]] = []
    lines = scan_lines(text)
    for number, raw in enumerate(lines, start=1):
        if opens_section(raw):
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
