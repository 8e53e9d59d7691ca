"""The DAG scheduler: order, failure propagation, --keep-going, parallelism."""

from __future__ import annotations

import threading
import time

import pytest

from imgforge.build.scheduler import schedule
from imgforge.errors import BuildError, ImgforgeError

# a -> b -> c ; a -> d ; e (unrelated)
PARENTS = {"a": [], "b": ["a"], "c": ["b"], "d": ["a"], "e": []}
ORDER = ["a", "b", "c", "d", "e"]


def run(failing: set[str], *, keep_going: bool, jobs: int = 1) -> tuple[dict[str, str], list[str]]:
    started: list[str] = []
    errors: list[ImgforgeError] = []

    def work(name: str) -> str:
        started.append(name)
        if name in failing:
            raise BuildError(f"{name} failed")
        return "built"

    outcomes = schedule(ORDER, PARENTS, work, jobs=jobs, keep_going=keep_going, errors=errors)
    assert [str(e) for e in errors] == [f"{n} failed" for n in started if n in failing]
    return outcomes, started


def test_parents_run_before_children() -> None:
    outcomes, started = run(set(), keep_going=False)
    assert set(outcomes.values()) == {"built"}
    for child, parents in PARENTS.items():
        for parent in parents:
            assert started.index(parent) < started.index(child)


def test_failure_skips_descendants_and_with_keep_going_unrelated_branches_finish() -> None:
    outcomes, _ = run({"b"}, keep_going=True)
    assert outcomes == {
        "a": "built", "b": "failed", "c": "not attempted", "d": "built", "e": "built"
    }  # fmt: skip


def test_without_keep_going_nothing_new_starts_after_a_failure() -> None:
    outcomes, started = run({"a"}, keep_going=False)
    assert started == ["a"]
    assert outcomes == {
        "a": "failed", "b": "not attempted", "c": "not attempted",
        "d": "not attempted", "e": "not attempted",
    }  # fmt: skip


@pytest.mark.parametrize("jobs", [2, 3])
def test_independent_work_runs_concurrently_up_to_jobs(jobs: int) -> None:
    lock = threading.Lock()
    current = peak = 0

    def work(name: str) -> str:
        nonlocal current, peak
        with lock:
            current += 1
            peak = max(peak, current)
        time.sleep(0.05)
        with lock:
            current -= 1
        return "built"

    names = [f"leaf{i}" for i in range(6)]
    outcomes = schedule(names, {}, work, jobs=jobs)
    assert set(outcomes.values()) == {"built"}
    assert peak == jobs


def test_other_exceptions_propagate() -> None:
    def work(name: str) -> str:
        raise RuntimeError("bug")

    with pytest.raises(RuntimeError):
        schedule(["a"], {}, work)
