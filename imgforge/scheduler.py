"""Run work over a DAG: each node once its parents succeeded, up to N at a time."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

from imgforge.errors import ImgforgeError

FAILED = "failed"
NOT_ATTEMPTED = "not attempted"


def schedule(
    order: Sequence[str],
    parents: Mapping[str, Sequence[str]],
    work: Callable[[str], str],
    *,
    jobs: int = 1,
    keep_going: bool = False,
    errors: list[ImgforgeError] | None = None,
) -> dict[str, str]:
    """Call ``work(name)`` (which returns an outcome word) for every name in ``order``.

    A node starts as soon as all its parents are done with an outcome other than failed
    or not attempted; a failed node's descendants are not attempted. Without
    ``keep_going`` nothing new starts after the first failure. ImgforgeErrors raised
    by ``work`` are collected in ``errors``; anything else propagates.
    """
    outcomes: dict[str, str] = {}
    pending = list(order)
    with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="imgforge") as pool:
        running: dict[Future[str], str] = {}
        while pending or running:
            stop = FAILED in outcomes.values() and not keep_going
            for name in list(pending):
                mine = [outcomes.get(p) for p in parents.get(name, ()) if p in order]
                if stop or FAILED in mine or NOT_ATTEMPTED in mine:
                    outcomes[name] = NOT_ATTEMPTED
                    pending.remove(name)
                elif None not in mine and len(running) < jobs:
                    pending.remove(name)
                    running[pool.submit(work, name)] = name
            if not running:
                continue
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                name = running.pop(future)
                try:
                    outcomes[name] = future.result()
                except ImgforgeError as exc:
                    outcomes[name] = FAILED
                    if errors is not None:
                        errors.append(exc)
    return {name: outcomes[name] for name in order}
