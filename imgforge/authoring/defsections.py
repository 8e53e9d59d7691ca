"""Translate a .def's %environment, %labels, %files and %runscript into recipe values, exactly
as Apptainer reads them, with the reason for every line a recipe can't say the same way."""

from __future__ import annotations

import posixpath
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from imgforge.authoring.deffile import Section
from imgforge.authoring.shellwords import is_blank, is_comment, literal_words
from imgforge.patterns import LABEL_KEY_RE, PATH_RE
from imgforge.recipes.envnames import why_not_carried
from imgforge.recipes.ignore import IGNORE_FILE

Refusal = tuple[int, str]  # (line, what); line 0: the file as a whole
SHELLS = ("#!/bin/sh", "#!/bin/bash")
PLAIN_PATH = "not a plain path: quotes, spaces, globs or variables"
NESTED = "a directory to a path not ending in /, which Apptainer nests in it if the base has it"
# Words sh runs itself, which a Docker CMD (exec form) can't: POSIX special and regular
# builtins and the reserved words.
SH_BUILTINS = frozenset(
    [
        ".", ":", "alias", "bg", "break", "builtin", "cd", "command", "continue", "eval", "exec",
        "exit", "export", "false", "fg", "getopts", "hash", "jobs", "kill", "local", "read",
        "readonly", "return", "set", "shift", "source", "test", "times", "trap", "true", "type",
        "ulimit", "umask", "unalias", "unset", "wait", "[", "!", "{", "}", "case", "do", "done",
        "elif", "else", "esac", "fi", "for", "if", "in", "then", "until", "while",
    ]
)  # fmt: skip
RUNSCRIPT_RE = re.compile(r'(?P<command>.*[^ \t])[ \t]+"\$@"')  # sh's blanks only


@dataclass(frozen=True)
class Values:
    """One section's values in recipe terms, and what a recipe can't express of it."""

    pairs: tuple[tuple[str, str], ...] = ()
    refused: tuple[Refusal, ...] = ()
    # %environment: the line of each name's last assignment.
    lines: tuple[tuple[str, int], ...] = ()


def shown(text: str) -> str:
    """``text`` for a one-line message."""
    return text if text.isprintable() else repr(text)[1:-1]


def with_lines(section: Section, read: Sequence[str]) -> list[tuple[int, str]]:
    """spython's lines of ``section`` (stripped, blank ones dropped) with their line
    numbers; the comment lines it keeps are skipped, as Apptainer skips them."""
    numbers = [n for n, text in section.numbered() if text.strip()]
    pairs = zip(numbers, read, strict=True)
    return [(n, text) for n, text in pairs if not text.startswith("#")]


def labels(section: Section, read: Sequence[str]) -> Values:
    """Apptainer's GetLabels: the key up to the first space, both parts trimmed, last wins."""
    found: dict[str, str] = {}
    refused: list[Refusal] = []
    for line, text in with_lines(section, read):
        key, _, value = (part.strip() for part in text.partition(" "))
        if not LABEL_KEY_RE.fullmatch(key) or key.startswith("org.imgforge."):
            refused.append((line, f"label {shown(key)} (not a label key a recipe can set)"))
        found[key] = value
    return Values(tuple(found.items()), tuple(refused))


def _assignments(text: str) -> list[tuple[str, str]] | None:
    """``[export] A=x [B=y ...]`` made of literal words, else None."""
    words = literal_words(text)
    if not words:
        return None
    pairs = [word.assignment for word in words[1 if words[0].raw == "export" else 0 :]]
    if not pairs or any(pair is None or "\r" in pair[1] for pair in pairs):
        return None
    return [pair for pair in pairs if pair is not None]


def environment(section: Section) -> Values:
    """%environment's plain assignments. Apptainer sources it with allexport
    (internal/pkg/util/shell/interpreter), so ``A=x`` exports as ``export A=x`` does."""
    found: dict[str, tuple[str, int]] = {}
    refused: list[Refusal] = []
    for line, raw in section.numbered():
        text = raw.strip(" \t")
        if is_blank(text) or is_comment(text):
            continue
        pairs = _assignments(text)
        if pairs is None:
            refused.append((line, f"{shown(text)} (not a plain NAME=value assignment)"))
        for name, value in pairs or ():
            found[name] = (value, line)
    for name, (_, line) in found.items():
        if why := why_not_carried(name):
            refused.append((line, f"%environment sets {name} ({why})"))
    return Values(
        pairs=tuple((name, value) for name, (value, _) in found.items()),
        refused=tuple(refused),
        lines=tuple((name, line) for name, (_, line) in found.items()),
    )


def _symlinks(path: Path) -> bool:
    return path.is_symlink() or (path.is_dir() and any(p.is_symlink() for p in path.rglob("*")))


def _copy(source: str, dest: str, directory: Path) -> tuple[str, str] | str:
    """One %files entry as a [files] entry, or why not. Apptainer makes the destination's
    parent (the destination itself if it ends in /), then runs ``cp -fLr source dest``
    (internal/pkg/build/files/copy.go CopyFromHost)."""
    dest = dest if dest.startswith("/") else f"/{dest}"
    normal = posixpath.normpath(source)
    if not PATH_RE.fullmatch(source) or not PATH_RE.fullmatch(dest):
        return PLAIN_PATH
    if source.startswith("/") or normal == "." or normal.split("/")[0] == "..":
        return "a recipe copies files from inside its own directory"
    if {".", ".."} & set(source.rstrip("/").split("/")):
        # cp -r DIR/. DEST copies DIR's contents, DIR/sub/.. its parent's: a recipe
        # source names the directory itself.
        return "a source with . or .. in its path (cp copies such a directory's contents)"
    if ".." in dest.split("/"):
        return "a destination with .."
    if not (directory / normal).exists():
        return "the source does not exist beside the .def"
    if _symlinks(directory / normal):
        return "a symbolic link, which Apptainer copies as what it points to"
    if not (directory / normal).is_dir():
        return normal, dest
    if not dest.endswith("/"):
        return NESTED
    return f"{normal}/", posixpath.join(posixpath.normpath(dest), posixpath.basename(normal), "")


def files(section: Section, read: Sequence[str], directory: Path) -> Values:
    """%files (sources relative to the .def's directory, as recipe files are to the recipe)."""
    found: dict[str, str] = {}
    refused: list[Refusal] = []
    for line, text in with_lines(section, read):
        fields = text.split()
        copy = _copy(fields[0], fields[-1], directory) if len(fields) <= 2 else PLAIN_PATH
        copy = PLAIN_PATH if "'" in text or '"' in text else copy
        if isinstance(copy, tuple) and copy[0] in found:
            copy = "the same source copied twice"
        if isinstance(copy, str):
            refused.append((line, f"%files {shown(text)} ({copy})"))
        else:
            found[copy[0]] = copy[1]
    if found and (directory / IGNORE_FILE).exists():
        # Apptainer copies %files whole; a recipe's [files] follow .dockerignore.
        refused.append((section.line, f"%files beside a {IGNORE_FILE}, which Apptainer ignores "
                        "and a recipe's [files] follow"))  # fmt: skip
    return Values(tuple(found.items()), tuple(refused))


def _command(text: str) -> str | None:
    """The recipe command of a runscript line ``[exec] WORD... "$@"`` of literal words."""
    match = RUNSCRIPT_RE.fullmatch(text)
    words = literal_words(match["command"]) if match else None
    values = [word.value for word in words or ()]
    if values[:1] == ["exec"]:
        words, values = (words or [])[1:], values[1:]
    if not words or words[0].assignment is not None:
        return None
    # exec's own options (-a NAME, -c, --) and builtins are sh's, not a program to run.
    if values[0].startswith("-") or values[0] in SH_BUILTINS:
        return None
    return shlex.join(values)


def _commands(section: Section) -> list[tuple[int, str]]:
    """(line, text) of the lines that are neither blank nor comments, for sh."""
    return [
        (n, text.strip(" \t"))
        for n, text in section.numbered()
        if not is_blank(text) and not is_comment(text)
    ]


def runscript_lines(section: Section) -> list[str]:
    """What spython is given of %runscript: its command line, when it has just one."""
    commands = _commands(section)
    return [commands[0][1]] if len(commands) == 1 else []


def runscript(section: Section, read: str | None) -> tuple[str | None, list[Refusal]]:
    """The one command %runscript runs with its arguments. ``read`` is spython's reading of
    the command line, the only line it is given: it counts comment lines as commands."""
    if not section.body:
        return None, []
    lines = [(n, text.strip(" \t")) for n, text in section.numbered() if not is_blank(text)]
    if lines and lines[0][1].startswith("#!") and lines[0][1] not in SHELLS:
        return None, [(lines[0][0], f"%runscript {shown(lines[0][1])} (not a sh script)")]
    commands = _commands(section)
    if len(commands) != 1:
        return None, [(section.line, f"%runscript of {len(commands)} commands (a recipe runs one)")]
    # spython strips with Python's notion of blanks; sh's are space and tab.
    command = _command(read) if read == commands[0][1] else None
    if command is None:
        why = 'not [exec] COMMAND "$@" with literal words'
        return None, [(commands[0][0], f"%runscript {shown(commands[0][1])} ({why})")]
    return command, []
