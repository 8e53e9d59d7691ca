"""The Log protocol: how library code hands the caller a line of build output, saying
what kind of line it is (after pypa/build's ``_ctx.log``), so no one sniffs prefixes."""

from __future__ import annotations

from typing import Literal, Protocol

# "output": build.log (and --verbose) only; "step": also the recipe's current step on
# the progress display (a build step starting, a command run, packing progress, ...).
Kind = Literal["output", "step"]
OUTPUT: Kind = "output"
STEP: Kind = "step"


class Log(Protocol):
    """Takes one line of a build's output."""

    def __call__(self, message: str, *, kind: Kind = OUTPUT) -> None: ...


def discard(message: str, *, kind: Kind = OUTPUT) -> None:
    """A Log that keeps nothing."""


class Lines(list[str]):
    """A Log that keeps every line (kinds dropped), e.g. to look at after a run."""

    def __call__(self, message: str, *, kind: Kind = OUTPUT) -> None:
        self.append(message)
