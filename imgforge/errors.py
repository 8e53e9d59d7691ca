"""The exception tree: each error's ``str()`` is the message the user sees."""

from __future__ import annotations

from typing import TypeGuard

_NAMED_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def shown(text: str) -> str:
    """``text`` safe to print on a terminal, on one line: every character that is not
    printable (control and escape characters, line and paragraph separators, format
    characters such as bidi overrides, lone surrogates from undecodable file names) is
    written as a Python-style escape, the rest is kept."""
    return "".join(c if c.isprintable() else _escape(c) for c in text)


def _escape(char: str) -> str:
    if char in _NAMED_ESCAPES:
        return _NAMED_ESCAPES[char]
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


class ImgforgeError(Exception):
    """Base of every expected failure; ``exit_code`` is what the CLI returns. Its
    ``str()`` is the message as the user sees it: one line, control characters escaped
    (this is the one place that does so, whatever the error was made from)."""

    exit_code = 1

    def __str__(self) -> str:
        return shown(super().__str__())


class UsageError(ImgforgeError):
    """Bad command-line input (an option or argument)."""

    exit_code = 2


class RecipeError(ImgforgeError):
    """A recipe or project file is invalid: ``path: key: reason``."""

    exit_code = 2

    def __init__(self, path: object, key: str, reason: str) -> None:
        self.path = str(path)
        self.key = key
        self.reason = reason
        where = f"{self.path}: {key}" if key else self.path
        super().__init__(f"{where}: {reason}")


class ImageDataError(RecipeError):
    """What the engine reports about an image (its Env, labels, entrypoint, cmd, working
    directory, user) can't be carried safely: ``image: key: reason``."""


class GraphError(ImgforgeError):
    """The recipe DAG is invalid: a cycle, a missing dependency, a duplicate name."""

    exit_code = 2


class EngineError(ImgforgeError):
    """The environment lacks something: no Docker engine, no Singularity tool."""

    exit_code = 3


class BuildError(ImgforgeError):
    """A build step, an engine operation or a verification failed."""

    exit_code = 1


class LayersUnreadable(ImgforgeError):
    """An image's layers on this machine hold something imgforge can't read exactly as
    ``docker export`` would give it: the image is read through the engine instead."""

    exit_code = 1


def is_system_error(exc: BaseException) -> TypeGuard[OSError]:
    """An operating-system error with an errno (a full disk, a read-only directory), which
    the system words; an OSError without one (jinja's TemplateNotFound) is a bug."""
    return isinstance(exc, OSError) and exc.errno is not None


NO_TRACEBACK_FILE = "none written; rerun with --verbose"


def unexpected(operation: str, exc: BaseException, traceback_at: str) -> str:
    """The one line for an exception imgforge did not expect (a bug, a broken install):
    what was being done, the exception's type and message, and where its traceback is."""
    detail = str(exc).strip().replace("\n", " ")
    said = f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
    return shown(f"{operation}: unexpected {said} (traceback in {traceback_at})")
