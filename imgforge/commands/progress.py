"""Terminal progress: one live line per running recipe on a TTY, plain lines elsewhere."""

from __future__ import annotations

import os
import sys
import threading
from typing import Any


class PlainProgress:
    """Messages as lines; per-recipe steps are not shown (they are in build.log)."""

    def __init__(self, *, quiet: bool = False) -> None:
        self.quiet = quiet
        self._lock = threading.Lock()

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def say(self, message: str) -> None:
        if not self.quiet:
            with self._lock:
                print(message, flush=True)

    def step(self, name: str, text: str | None) -> None:
        return None


class LiveProgress(PlainProgress):
    """rich: a spinner, the current build step and the elapsed time for each recipe."""

    def __init__(self) -> None:
        super().__init__()
        from rich.console import Console
        from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.fields[name]:<16}"),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=Console(no_color=bool(os.environ.get("NO_COLOR"))),
            transient=True,
        )
        self.tasks: dict[str, Any] = {}

    def __enter__(self) -> LiveProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def say(self, message: str) -> None:
        self.progress.console.print(message, markup=False, highlight=False)

    def step(self, name: str, text: str | None) -> None:
        with self._lock:
            task = self.tasks.get(name)
            if text is None:
                if task is not None:
                    self.progress.remove_task(task)
                    del self.tasks[name]
            elif task is None:
                self.tasks[name] = self.progress.add_task(text[:70], name=name)
            else:
                self.progress.update(task, description=text[:70])


def make_progress(*, quiet: bool, verbose: bool) -> PlainProgress:
    """Live lines on an interactive terminal; plain lines when piped, quiet or verbose."""
    if quiet or verbose or not sys.stdout.isatty() or os.environ.get("TERM") == "dumb":
        return PlainProgress(quiet=quiet)
    return LiveProgress()
