"""One job's build log: every line to build.log (and the --verbose stream), step lines
also to the progress display."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

from imgforge.log import OUTPUT, STEP, Kind

Say = Callable[[str], None]
Step = Callable[[str, str | None], None]


@dataclass(frozen=True)
class JobLog:
    """The Log of the job ``name`` (see imgforge.log)."""

    name: str
    file: TextIO
    step: Step
    stream: Say | None = None

    def __call__(self, message: str, *, kind: Kind = OUTPUT) -> None:
        self.file.write(message + "\n")
        self.file.flush()
        if kind == STEP:
            self.step(self.name, message)
        if self.stream is not None:
            self.stream(f"[{self.name}] {message}")


@dataclass(frozen=True)
class SayLog:
    """A Log whose every line is a user message (output of work done outside a build)."""

    say: Say

    def __call__(self, message: str, *, kind: Kind = OUTPUT) -> None:
        self.say(message)
