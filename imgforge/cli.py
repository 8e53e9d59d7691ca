"""Command line: parse arguments, wire the pieces, map errors to exit codes."""

from __future__ import annotations

import itertools
import os
import signal
import sys
import tempfile
import threading
import traceback
from collections.abc import Sequence
from typing import Any

from imgforge.commands import COMMANDS
from imgforge.commands.common import Output
from imgforge.commands.parser import make_parser
from imgforge.errors import (
    NO_TRACEBACK_FILE,
    ImgforgeError,
    UsageError,
    is_system_error,
    shown,
    unexpected,
)


def main(argv: Sequence[str] | None = None) -> int:
    """Run imgforge; return the exit code (0 ok, 1 failed, 2 bad input, 3 environment)."""
    try:
        code = _main(argv)
        sys.stdout.flush()
    except (OSError, AttributeError) as exc:  # a full disk, a closed pipe, no stdout
        why = getattr(exc, "strerror", None) or "no standard output"
        print(f"imgforge: error: cannot write the output: {why}", file=sys.stderr)
        # Python flushes stdout again at exit: give it somewhere that takes the bytes.
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115
        return 1
    return code


def _main(argv: Sequence[str] | None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if (verbose := _version_request(arguments)) is not None:
        from imgforge.commands.about import version_text

        sys.stdout.write(version_text(verbose=verbose))
        return 0
    parser = make_parser()
    try:
        args = parser.parse_args(arguments)
    except SystemExit as exc:
        return int(exc.code or 0)
    except UsageError as exc:
        print(f"imgforge: error: {exc}", file=sys.stderr)
        return exc.exit_code
    out = Output(args)
    previous = _terminate_as_interrupt()
    try:
        return COMMANDS[args.command](args, out)
    except ImgforgeError as exc:
        if out.verbose:
            traceback.print_exc()
        print(f"imgforge: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except Exception as exc:
        print(f"imgforge: error: {_foreign(args.command, exc, out)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(
            "imgforge: interrupted; build containers removed, artifacts unchanged", file=sys.stderr
        )
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _foreign(command: str, exc: Exception, out: Output) -> str:
    """The message for an exception outside imgforge's error tree. An operating-system
    error outside a build (e.g. --out not writable while rendering) as the system words
    it; anything else is a bug or a broken installation: what failed and how, and where
    its traceback is (stderr with --verbose, else a new file in the temporary directory)."""
    if out.verbose:
        traceback.print_exc()
    if is_system_error(exc):
        return shown(str(exc))
    if out.verbose:
        return unexpected(command, exc, "the lines above")
    try:
        fd, path = tempfile.mkstemp(prefix="imgforge-traceback-", suffix=".log")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            traceback.print_exc(file=handle)
    except OSError:
        path = NO_TRACEBACK_FILE
    return unexpected(command, exc, path)


def _version_request(arguments: list[str]) -> bool | None:
    """``--version`` among the options before the command: whether ``-v``/``--verbose``
    is there too (the parser's own ``--version`` can't see what follows it); else None."""
    leading = list(itertools.takewhile(lambda a: a.startswith("-"), arguments))
    if "--version" not in leading:
        return None
    return bool({"-v", "--verbose"} & set(leading))


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _terminate_as_interrupt() -> Any:
    """SIGTERM unwinds like Ctrl-C, so cleanup runs (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, _interrupt)
