"""The exception tree: each error's ``str()`` is the message the user sees."""

from __future__ import annotations


class ImgforgeError(Exception):
    """Base of every expected failure; ``exit_code`` is what the CLI returns."""

    exit_code = 1


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
        # A key may hold any character (a TOML quoted key): the message stays one line.
        shown = key if key.isprintable() else repr(key)[1:-1]
        where = f"{self.path}: {shown}" if key else self.path
        super().__init__(f"{where}: {reason}")


class GraphError(ImgforgeError):
    """The recipe DAG is invalid: a cycle, a missing dependency, a duplicate name."""

    exit_code = 2


class EngineError(ImgforgeError):
    """The environment lacks something: no Docker engine, no Singularity tool."""

    exit_code = 3


class BuildError(ImgforgeError):
    """A build step, an engine operation or a verification failed."""

    exit_code = 1


def unexpected(operation: str, exc: BaseException, traceback_at: str) -> str:
    """The one line for an exception imgforge did not expect (a bug, a broken install):
    what was being done, the exception's type and message, and where its traceback is."""
    detail = str(exc).strip().replace("\n", " ")
    said = f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
    return f"{operation}: unexpected {said} (traceback in {traceback_at})"
