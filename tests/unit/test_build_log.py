"""A job's log: every line to build.log and the --verbose stream, step lines (and only
those) to the progress display; the run summary from the jobs' outcomes."""

from __future__ import annotations

import io

from imgforge.build.joblog import JobLog, SayLog
from imgforge.build.orchestrator import Summary
from imgforge.build.outcome import Outcome
from imgforge.errors import BuildError
from imgforge.log import STEP, Lines, discard


def test_step_lines_reach_the_display_and_every_line_the_file_and_stream() -> None:
    file = io.StringIO()
    steps: list[tuple[str, str | None]] = []
    streamed: list[str] = []
    log = JobLog("app", file, lambda name, text: steps.append((name, text)), streamed.append)
    log("Step 1/2 : FROM base", kind=STEP)
    log("Step output that merely looks like one")
    log("$ tar2sqfs out.sqfs", kind=STEP)
    assert file.getvalue().splitlines() == [
        "Step 1/2 : FROM base",
        "Step output that merely looks like one",
        "$ tar2sqfs out.sqfs",
    ]
    assert steps == [("app", "Step 1/2 : FROM base"), ("app", "$ tar2sqfs out.sqfs")]
    assert streamed == [f"[app] {line}" for line in file.getvalue().splitlines()]


def test_say_log_and_lines_keep_the_text_whatever_the_kind() -> None:
    said: list[str] = []
    SayLog(said.append)("push: abc Pushed", kind=STEP)
    lines = Lines()
    lines("one")
    lines("two", kind=STEP)
    discard("nothing", kind=STEP)
    assert said == ["push: abc Pushed"] and lines == ["one", "two"]


def test_summary_groups_names_by_outcome_in_order() -> None:
    error = BuildError("b failed")
    outcomes = {
        "a": Outcome.BUILT,
        "b": Outcome.FAILED,
        "c": Outcome.NOT_ATTEMPTED,
        "d": Outcome.SKIPPED,
        "e": Outcome.BUILT,
    }
    summary = Summary.of(outcomes, [error])
    assert summary == Summary(("a", "e"), ("d",), ("b",), ("c",), (error,))
    assert [str(outcome) for outcome in Outcome] == [
        "built", "skipped", "failed", "not attempted"
    ]  # fmt: skip
