"""The Docker-style runscript run by real shells: with SINGULARITY_NO_EVAL (apptainer run
--no-eval) it runs exactly what docker run runs, ENTRYPOINT then the arguments or else CMD,
for any words; without it, ENTRYPOINT and CMD words are still never evaluated."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imgforge.render import runscript_body
from imgforge.sif.read import parse_runscript

# Any word but NUL (which no argv can hold); line breaks of every kind included.
WORDS = st.text(st.characters(blacklist_characters="\0", blacklist_categories=["Cs"]), max_size=12)
PRINT_ARGV = ["printf", "%s\\0"]


def runscript(entrypoint: list[str], cmd: list[str]) -> str:
    return "#!/bin/sh\n" + runscript_body(entrypoint, cmd)


def ran(shell: str, script: str, args: list[str], tmp: Path, *, no_eval: bool) -> list[str]:
    path = tmp / "runscript"
    path.write_text(script)
    env = {"PATH": "/usr/bin:/bin"} | ({"SINGULARITY_NO_EVAL": "1"} if no_eval else {})
    done = subprocess.run(
        [shell, str(path), *args], env=env, capture_output=True, check=True, timeout=30
    )
    assert done.stdout.endswith(b"\0") or done.stdout == b"", done.stdout
    return done.stdout.decode().split("\0")[:-1]


@pytest.mark.parametrize("shell", ["sh", "bash"])
@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    entry=st.lists(WORDS, max_size=3),
    cmd=st.lists(WORDS, max_size=3),
    args=st.lists(WORDS, max_size=3),
    with_entrypoint=st.booleans(),
)
def test_no_eval_runs_what_docker_runs(
    tmp_path: Path,
    shell: str,
    entry: list[str],
    cmd: list[str],
    args: list[str],
    with_entrypoint: bool,
) -> None:
    if with_entrypoint:
        entrypoint, command = [*PRINT_ARGV, *entry], cmd
        expected = entry + (args or cmd)
        arguments = args
    else:  # CMD only: the arguments replace it, so they start with the program too
        entrypoint, command = [], [*PRINT_ARGV, *cmd]
        expected = args if args else cmd
        arguments = [*PRINT_ARGV, *args] if args else []
    script = runscript(entrypoint, command)
    assert parse_runscript(script) == (entrypoint, command)
    printed = expected or [""]  # printf's format runs once when it has no argument
    assert ran(shell, script, arguments, tmp_path, no_eval=True) == printed
    # Apptainer's default evaluates the arguments only, never ENTRYPOINT and CMD.
    if not arguments:
        assert ran(shell, script, [], tmp_path, no_eval=False) == printed
