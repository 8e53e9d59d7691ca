"""Read a .def the way Apptainer does: a port of its definition-file parser.

Ported from apptainer/apptainer ``pkg/build/types/parser/deffile.go`` (scanDefinitionFile,
parseTokenSection, GetLabels, doHeader, All) and ``internal/pkg/build/args/reader.go``
(build variables), so that imgforge can check at render time that every rendered .def
means, to Apptainer, exactly what the recipe says. Go's whitespace and regexp classes
are spelled out: they differ from Python's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from imgforge.patterns import GO_SPACE

# bufio.Scanner's default buffer limit (bufio.MaxScanTokenSize): one section, and the
# line after it that ends it, must fit.
SCAN_LIMIT = 64 * 1024
# internal/pkg/build/args/reader.go: buildArgsRegexp (RE2: \s is [\t\n\f\r ], \w ASCII).
BUILD_ARG_RE = re.compile(r"\{\{[\t\n\f\r ]*([0-9A-Za-z_]+)[\t\n\f\r ]*\}\}")
# deffile.go: fileSplitter, "split at space, but not within double quotes".
_GO_S = "\\t\\n\\f\\r "
FILE_SPLITTER = re.compile(
    rf"([^{_GO_S}\"']*\{{\{{[{_GO_S}]*[0-9A-Za-z_]+[{_GO_S}]*\}}\}}*[^{_GO_S}{{}}\"']*)+"
    rf"|([^{_GO_S}\"']+|\"([^\"]*)\"|'([^']*))"
)
_STAGE_RE = re.compile(r"(?mi)^bootstrap:")


def go_trim(text: str) -> str:
    """strings.TrimSpace."""
    return text.strip(GO_SPACE)


@dataclass(frozen=True)
class Section:
    """One section as Apptainer splits it: its name, arguments and raw body."""

    name: str
    args: str
    body: str


@dataclass(frozen=True)
class Definition:
    """One stage of a .def: header keys, sections in order, %files pairs, labels."""

    header: dict[str, str]
    sections: list[Section]
    files: list[tuple[str, str]] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)

    def body(self, name: str) -> str:
        """The concatenated bodies of the sections called ``name`` (as Apptainer does)."""
        return _joined(self.sections, name)


def _first_word(line: str) -> str:
    words = line.lstrip(GO_SPACE)
    end = next((i for i, c in enumerate(words) if c in GO_SPACE), len(words))
    return words[:end]


def opens_section(line: str) -> bool:
    """scanDefinitionFile: a line whose first word starts with ``%`` starts a section."""
    return _first_word(line).startswith("%")


def scan_lines(text: str) -> list[str]:
    """bufio.ScanLines: the lines split at \\n, one trailing \\r dropped."""
    return [line for line, _ in _lines(text)]


def section_head(line: str) -> tuple[str, str]:
    """parseTokenSection: (name, arguments) of a section's first line: the first
    space-separated word after the ``%``s, lower-cased, and the rest of the line (an
    indented ``%`` line keeps its blanks, so its name is empty: not a valid section)."""
    head = line.lstrip("%")
    name = head.lower().split(" ", 1)[0]
    return name, head.split(" ", 1)[1] if " " in head else ""


def header_field(line: str) -> tuple[str, str] | None:
    """doHeader: ``key: value`` of a header line (``#`` cuts it, key lower-cased), or
    None when it has no ``:``. Blank and comment lines are the caller's to skip."""
    key, colon, value = line.split("#", 1)[0].partition(":")
    return (go_trim(key).lower(), go_trim(value)) if colon else None


def _lines(text: str) -> list[tuple[str, int]]:
    """bufio.ScanLines: lines split at \\n, one trailing \\r dropped; with each line's
    size in the input (line, \\r and \\n included)."""
    pieces = text.split("\n")
    if pieces and pieces[-1] == "":
        pieces.pop()
    out = []
    for index, piece in enumerate(pieces):
        newline = index < len(pieces) - 1 or text.endswith("\n")
        size = len(piece.encode("utf-8", "surrogatepass")) + newline
        out.append((piece[:-1] if piece.endswith("\r") else piece, size))
    return out


def tokens(text: str) -> list[tuple[str, int]]:
    """scanDefinitionFile: the header, then each section from its ``%`` line on, each
    with the number of bytes the scanner must hold to return it (the token and the line
    that ends it)."""
    found: list[tuple[str, int]] = []
    current: list[str] = []
    size = 0
    for line, line_size in _lines(text):
        if opens_section(line) and (current or found):
            found.append(("".join(current), size + line_size))
            current, size = [], 0
        current.append(line + "\n")
        size += line_size
    if current:
        found.append(("".join(current), size))
    return found


def _section(token: str) -> Section:
    """parseTokenSection: the name is the first line's first space-separated word after
    the %s, lower-cased; the rest of that line is its arguments."""
    first, _, body = token.partition("\n")
    name, args = section_head(first)
    return Section(name, args, body)


def _header(token: str) -> dict[str, str]:
    """doHeader, without continuations: ``key: value`` lines, ``#`` cuts a line."""
    header = {}
    for raw in go_trim(token).split("\n"):
        line = go_trim(raw)
        if not line or line.startswith("#"):
            continue
        key, value = header_field(line) or (go_trim(line.split("#", 1)[0]).lower(), "")
        header[key] = value
    return header


def files_pairs(body: str) -> list[tuple[str, str]]:
    """The %files body as (source, destination) pairs, split with fileSplitter."""
    pairs = []
    for raw in go_trim(body).split("\n"):
        line = go_trim(raw)
        if not line or line.startswith("#"):
            continue
        fields = [m.group(0) for m in FILE_SPLITTER.finditer(line)]
        source = go_trim(fields[0]).strip('"')
        dest = go_trim(fields[1]).strip('"') if len(fields) > 1 else ""
        pairs.append((source, dest))
    return pairs


def labels(body: str) -> dict[str, str]:
    """GetLabels: ``key value`` per line, both trimmed."""
    found = {}
    for raw in go_trim(body).split("\n"):
        line = go_trim(raw)
        if not line or line.startswith("#"):
            continue
        key, _, value = line.partition(" ")
        found[go_trim(key)] = go_trim(value)
    return found


def stages(text: str) -> list[str]:
    """All: the text split before every line that starts with ``bootstrap:`` (any case);
    what comes before the first such line is a stage of its own only if it has sections."""
    starts = [m.start() for m in _STAGE_RE.finditer(text)]
    cuts = [0, *starts, len(text)]
    chunks = [text[a:b] for a, b in zip(cuts, cuts[1:], strict=False) if text[a:b]]
    if chunks and starts and starts[0] > 0 and not parse(chunks[0]).sections:
        chunks.pop(0)
    return chunks


def parse(text: str) -> Definition:
    """ParseDefinitionFile: one stage's header, sections, %files and %labels."""
    found = [token for token, _ in tokens(text)]
    while found and not found[0]:
        found.pop(0)
    header: dict[str, str] = {}
    if found:
        # doSections trims the first token only: a header, or the first section.
        found[0] = go_trim(found[0])
        if not found[0].startswith("%"):
            header = _header(found.pop(0))
    sections = [_section(token) for token in found]
    # parseTokenSection appends %files sections with the same arguments to one group.
    groups: dict[str, list[tuple[str, str]]] = {}
    for section in sections:
        if section.name == "files":
            groups.setdefault(section.args, []).extend(files_pairs(section.body))
    files = [pair for pairs in groups.values() for pair in pairs]
    return Definition(header, sections, files, labels(_joined(sections, "labels")))


def _joined(sections: list[Section], name: str) -> str:
    return "".join(s.body for s in sections if s.name == name)
