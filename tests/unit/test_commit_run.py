"""The commit strategy's container run on an engine in memory: what it creates, what it
commits, how a failing script is reported, and that the container always goes."""

from __future__ import annotations

import io

import pytest
from fakes import FakeEngine

from imgforge.engine.commit import CONTAINER_PREFIX, CommitRun, commit_run
from imgforge.errors import BuildError

WHAT = "recipes/a.toml: a:latest"


def a_run(*, interactive: bool = False, name: str | None = "imgforge-commit-a-0123") -> CommitRun:
    return CommitRun(
        base="alpine:3.19",
        env=["PATH=/bin", "A=1"],
        workdir="/work",
        script="set -x\nmake\n",
        staging=io.BytesIO(b"staged"),
        network="host",
        gpus=False,
        what=WHAT,
        interactive=interactive,
        name=name,
    )


def test_the_script_runs_in_a_named_container_that_is_committed_and_removed() -> None:
    engine = FakeEngine()
    lines: list[str] = []
    committed, changes = commit_run(engine, a_run(), lines.append)
    (spec,) = engine.created
    assert (spec.image, spec.script, spec.env, spec.workdir) == (
        "alpine:3.19", "set -x\nmake\n", ("PATH=/bin", "A=1"), "/work"
    )  # fmt: skip
    assert (spec.name, spec.network, spec.gpus, spec.interactive) == (
        "imgforge-commit-a-0123", "host", False, False
    )  # fmt: skip
    assert committed in engine.images and changes == []
    assert lines == ["+ true"]
    # A container of that name left by a lost build goes first; the run's own goes last.
    assert engine.removed[0] == "imgforge-commit-a-0123"
    assert engine.containers == {}


def test_an_unnamed_run_gets_a_fresh_name() -> None:
    engine = FakeEngine()
    commit_run(engine, a_run(name=None), lambda line: None)
    assert engine.removed[0].startswith(CONTAINER_PREFIX)


def test_a_failing_script_names_the_step_and_its_last_line() -> None:
    engine = FakeEngine()
    engine.script_output = ["+ apt-get update", "ok", "+ make", "cc: error", ""]
    engine.script_status = 2
    with pytest.raises(BuildError) as info:
        commit_run(engine, a_run(), lambda line: None)
    assert str(info.value) == f"{WHAT}: the build script failed (exit 2) at make: cc: error"
    assert engine.containers == {}


def test_an_interrupted_run_is_not_committed() -> None:
    engine = FakeEngine()
    engine.cancel.set()
    with pytest.raises(BuildError, match=r": interrupted$"):
        commit_run(engine, a_run(), lambda line: None)
    assert engine.containers == {}


def test_an_interactive_run_lists_the_changes() -> None:
    engine = FakeEngine()
    lines: list[str] = []
    _, changes = commit_run(engine, a_run(interactive=True), lines.append)
    assert changes == ["A /root/by-hand"]
    assert lines == []
