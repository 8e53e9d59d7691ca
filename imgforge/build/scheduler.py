"""Run work over a DAG: each node once its parents succeeded, up to N at a time."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Mapping, Sequence

from imgforge.build.outcome import Outcome
from imgforge.errors import ImgforgeError

FAILED = Outcome.FAILED
NOT_ATTEMPTED = Outcome.NOT_ATTEMPTED
# How long an interrupted run waits for running work to notice and clean up.
GRACE_SECONDS = 10.0

Result = tuple[str, "Outcome | BaseException"]


def _worker(name: str, work: Callable[[str], Outcome], results: queue.Queue[Result]) -> None:
    try:
        results.put((name, work(name)))
    except BaseException as exc:  # handed to the scheduling thread, which decides
        results.put((name, exc))


def _ready(
    pending: list[str], parents: Mapping[str, Sequence[str]], outcomes: dict[str, Outcome]
) -> tuple[list[str], list[str]]:
    """(names whose parents all succeeded, names a failed parent rules out). Parents
    outside the run (not in ``parents``) count as done."""
    ready, blocked = [], []
    for name in pending:
        mine = [outcomes.get(p) for p in parents.get(name, ()) if p in parents]
        if FAILED in mine or NOT_ATTEMPTED in mine:
            blocked.append(name)
        elif None not in mine:
            ready.append(name)
    return ready, blocked


def schedule(
    order: Sequence[str],
    parents: Mapping[str, Sequence[str]],
    work: Callable[[str], Outcome],
    *,
    jobs: int = 1,
    keep_going: bool = False,
    errors: list[ImgforgeError] | None = None,
    on_interrupt: Callable[[], None] | None = None,
) -> dict[str, Outcome]:
    """Call ``work(name)`` (which returns its Outcome) for every name in ``order``.

    A node starts as soon as all its parents are done with an outcome other than failed
    or not attempted; a failed node's descendants are not attempted. Without
    ``keep_going`` nothing new starts after the first failure. ImgforgeErrors raised by
    ``work`` are collected in ``errors``; anything else propagates. Work runs in daemon
    threads: on Ctrl-C, ``on_interrupt`` is called (to cancel what runs), running work
    gets a grace period to clean up, and the interrupt propagates.
    """
    outcomes: dict[str, Outcome] = {}
    pending = list(order)
    parents = {name: parents.get(name, ()) for name in order}
    running: set[str] = set()
    results: queue.Queue[Result] = queue.Queue()
    try:
        while pending or running:
            ready, blocked = _ready(pending, parents, outcomes)
            if FAILED in outcomes.values() and not keep_going:
                ready, blocked = [], list(pending)
            for name in blocked:
                outcomes[name] = NOT_ATTEMPTED
                pending.remove(name)
            for name in ready[: max(jobs - len(running), 0)]:
                pending.remove(name)
                running.add(name)
                threading.Thread(
                    target=_worker, args=(name, work, results), daemon=True, name=f"imgforge-{name}"
                ).start()
            if running:
                _collect(results.get(), running, outcomes, errors)
    except KeyboardInterrupt:
        if on_interrupt is not None:
            on_interrupt()
        _drain(results, running, outcomes, errors)
        raise
    return {name: outcomes[name] for name in order}


def _collect(
    result: Result,
    running: set[str],
    outcomes: dict[str, Outcome],
    errors: list[ImgforgeError] | None,
) -> None:
    name, value = result
    running.discard(name)
    if isinstance(value, ImgforgeError):
        outcomes[name] = FAILED
        if errors is not None:
            errors.append(value)
    elif isinstance(value, BaseException):
        raise value
    else:
        outcomes[name] = value


def _drain(
    results: queue.Queue[Result],
    running: set[str],
    outcomes: dict[str, Outcome],
    errors: list[ImgforgeError] | None,
) -> None:
    """Wait (a bounded time) for interrupted work to finish its own cleanup."""
    while running:
        try:
            name, value = results.get(timeout=GRACE_SECONDS)
        except (queue.Empty, KeyboardInterrupt):
            return
        running.discard(name)
        outcomes[name] = FAILED if isinstance(value, BaseException) else value
