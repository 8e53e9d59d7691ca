"""imgforge.render.quoting: exact cases, and sourcing quoted text in real shells (dash, bash)."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from imgforge.recipes.image import ImageConfig
from imgforge.recipes.jobs import BuildJob
from imgforge.render import render
from imgforge.render.quoting import dockerfile_quote, json_list, sh_join, sh_quote

SHELLS = ("sh", "bash")  # sh is dash on Debian
NO_NUL = st.text(
    alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\0"), max_size=60
)
# Values a shell or a .def parser is most likely to trip over, mixed with anything else.
NASTY = st.lists(
    st.sampled_from(
        ["'", '"', "\\", "$", "`", "\n", "\r", "%", "\n%post", "$(id)", "'\\''", " ", "\t", "é"]
    )
    | NO_NUL,
    max_size=8,
).map("".join)
VALUES = NASTY | NO_NUL
PROPERTY = settings(max_examples=200, deadline=None, database=None)


def run_shell(shell: str, script: Path, *args: str) -> bytes:
    """Run ``script`` with ``shell`` in an empty environment; return its stdout."""
    result = subprocess.run(
        ["env", "-i", "LC_ALL=C", shell, str(script), *args],
        capture_output=True,
        check=True,
        timeout=30,
    )
    return result.stdout


def env0(output: bytes) -> dict[bytes, bytes]:
    """Parse ``env -0`` output."""
    pairs = (entry.partition(b"=") for entry in output.split(b"\0") if entry)
    return {name: value for name, _, value in pairs}


# Exact cases.


@pytest.mark.parametrize(
    ("value", "quoted"),
    [
        ("", "''"),
        ("plain", "'plain'"),
        ("a b", "'a b'"),
        ("it's", "'it'\"'\"'s'"),
        ("'", "''\"'\"''"),
        ("$HOME `id` $(id) \\ \"", "'$HOME `id` $(id) \\ \"'"),
        ("é ✓", "'é ✓'"),
        # After a line break the quote is closed and reopened: no line starts with '%'.
        ("a\n%post", "'a\n''%post'"),
        ("a\r\nb", "'a\r''\n''b'"),
    ],
)
def test_sh_quote_exact(value: str, quoted: str) -> None:
    assert sh_quote(value) == quoted


def test_sh_join() -> None:
    assert sh_join(["python", "-c", "print('hi')"]) == "'python' '-c' 'print('\"'\"'hi'\"'\"')'"
    assert sh_join([]) == ""


@pytest.mark.parametrize(
    ("value", "quoted"),
    [
        ("", '""'),
        ("plain", '"plain"'),
        ("a b", '"a b"'),
        ('say "hi"', '"say \\"hi\\""'),
        ("$HOME and ${X:-y}", '"\\$HOME and \\${X:-y}"'),
        ("C:\\path\\", '"C:\\\\path\\\\"'),
        ("`id` 'sq'", "\"`id` 'sq'\""),
        ("é ✓", '"é ✓"'),
    ],
)
def test_dockerfile_quote_exact(value: str, quoted: str) -> None:
    assert dockerfile_quote(value) == quoted


def test_dockerfile_quote_never_ends_in_a_continuation() -> None:
    # A Dockerfile line ending in a backslash continues onto the next line.
    assert not dockerfile_quote("a\\").endswith("\\")


@pytest.mark.parametrize(
    ("words", "text"),
    [
        ([], "[]"),
        (["/bin/sh", "-c", "echo a\necho b"], '["/bin/sh", "-c", "echo a\\necho b"]'),
        (["say", 'x"y', "é"], '["say", "x\\"y", "é"]'),
    ],
)
def test_json_list_exact(words: list[str], text: str) -> None:
    assert json_list(words) == text


# Properties: what the shells make of the quoted text.


@pytest.mark.parametrize("shell", SHELLS)
@PROPERTY
@given(value=VALUES)
def test_sh_quote_round_trips_through_the_shell(
    tmp_path_factory: pytest.TempPathFactory, shell: str, value: str
) -> None:
    script = tmp_path_factory.mktemp("q") / "script.sh"
    script.write_text(f'export X={sh_quote(value)}\nprintf %s "$X"\n', encoding="utf-8")
    assert run_shell(shell, script) == value.encode("utf-8")


@pytest.mark.parametrize("shell", SHELLS)
@PROPERTY
@given(words=st.lists(VALUES, max_size=4))
def test_sh_join_round_trips_through_the_shell(
    tmp_path_factory: pytest.TempPathFactory, shell: str, words: list[str]
) -> None:
    script = tmp_path_factory.mktemp("q") / "script.sh"
    script.write_text(f"printf '%s\\0' {sh_join(words)}\n", encoding="utf-8")
    output = run_shell(shell, script)
    expected = b"".join(word.encode("utf-8") + b"\0" for word in words) if words else b"\0"
    assert output == expected


@PROPERTY
@given(value=VALUES)
@example(value="a\n%post")
@example(value="cat > /etc/sudoers.d/x <<'EOF'\n%sudo ALL=(ALL) ALL\n  %environment\nEOF")
def test_sh_quote_output_has_no_line_a_def_parser_takes_for_a_section(value: str) -> None:
    # Apptainer (and spython) start a new .def section at any line whose first word begins
    # with '%'; a quoted multi-line value must never produce such a line.
    for line in re.split("[\r\n]", sh_quote(value))[1:]:
        assert not line.lstrip().startswith("%")


@pytest.fixture(scope="module")
def env_recipe(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("recipes")
    (directory / "proj.toml").write_text(
        'base = "example.org/base:1"\n[env]\nZZ_RECIPE = "from the recipe"\n'
    )
    return directory


@pytest.mark.parametrize("shell", SHELLS)
@settings(
    max_examples=100,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(value=VALUES, other=VALUES)
def test_env_file_reproduces_every_value(
    env_recipe: Path,
    jobs_for: Callable[..., list[BuildJob]],
    tmp_path_factory: pytest.TempPathFactory,
    shell: str,
    value: str,
    other: str,
) -> None:
    base = ImageConfig(env=(f"X={value}", "BAD-NAME=skipped", f"_Y={other}", "PATH=/usr/bin"))
    (job,) = jobs_for(env_recipe, {"example.org/base:1": base})
    env_file = tmp_path_factory.mktemp("env") / "imgforge-env.sh"
    env_file.write_text(render(job, "env"), encoding="utf-8")
    script = env_file.with_name("check.sh")
    script.write_text('. "$1"\nexec env -0\n')
    seen = env0(run_shell(shell, script, str(env_file)))
    assert seen[b"X"] == value.encode("utf-8")
    assert seen[b"_Y"] == other.encode("utf-8")
    assert seen[b"ZZ_RECIPE"] == b"from the recipe"
    assert b"BAD-NAME" not in seen

