"""imgforge.render.limits: what a Dockerfile or a .def can't carry exactly is refused at
render time with one ``FILE: KEY: REASON`` line, never discovered by an engine."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from imgforge.errors import RecipeError, UsageError
from imgforge.recipes.image import ImageConfig
from imgforge.recipes.jobs import BuildJob
from imgforge.render import check, render
from imgforge.render.limits import DOCKERFILE_LINE_MAX

BASE = "example.org/base:1"
Jobs = Callable[..., list[BuildJob]]


def job_of(
    tmp_path: Path,
    jobs_for: Jobs,
    text: str,
    *,
    config: ImageConfig | None = None,
    files: tuple[str, ...] = (),
) -> BuildJob:
    for name in files:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if not name.endswith("/"):
            path.write_text("x\n")
    (tmp_path / "proj.toml").write_text(f'base = "{BASE}"\n{text}', encoding="utf-8")
    (job,) = jobs_for(tmp_path, {BASE: config or ImageConfig(env=("PATH=/bin",))})
    return job


def refusal(job: BuildJob) -> RecipeError:
    with pytest.raises(RecipeError) as caught:
        check(job)
    assert "\n" not in str(caught.value)
    return caught.value


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("  spaced", "whitespace"),
        ("spaced\u00a0", "whitespace"),
        ("\u2028x", "whitespace"),
        ("a {{ HOME }} b", "{{ NAME }}"),
        ("{{x}}", "{{ NAME }}"),
    ],
)
def test_labels_that_a_def_would_change_are_refused(
    tmp_path: Path, jobs_for: Jobs, value: str, why: str
) -> None:
    job = job_of(tmp_path, jobs_for, f"[labels]\nk = {json.dumps(value)}\n")
    error = refusal(job)
    assert error.key == "labels.k" and why in error.reason


@pytest.mark.parametrize("value", ["{{", "{ {x}}", "in  side", "%post", "# x", "a}}"])
def test_labels_a_def_keeps_are_accepted(tmp_path: Path, jobs_for: Jobs, value: str) -> None:
    check(job_of(tmp_path, jobs_for, f"[labels]\nk = {json.dumps(value)}\n"))


def test_a_run_command_too_long_for_a_dockerfile_line_names_its_key(
    tmp_path: Path, jobs_for: Jobs
) -> None:
    fits = "x" * (DOCKERFILE_LINE_MAX - len('RUN ["/bin/sh", "-c", "--", ""]'))
    job = job_of(tmp_path, jobs_for, f'[run]\ncommands = ["true", "{fits}"]\n')
    assert max(map(len, render(job, "dockerfile").split("\n"))) == DOCKERFILE_LINE_MAX
    job = job_of(tmp_path, jobs_for, f'[run]\ncommands = ["true", "{fits}x"]\n')
    error = refusal(job)
    assert error.key == "run.commands[1]"
    assert f"{DOCKERFILE_LINE_MAX + 1} bytes" in error.reason


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('[env]\nBIG = "{}"\n', "env.BIG"),
        ('[labels]\nbig = "{}"\n', "labels.big"),
    ],
)
def test_env_and_labels_too_long_name_their_key(
    tmp_path: Path, jobs_for: Jobs, text: str, key: str
) -> None:
    job = job_of(tmp_path, jobs_for, text.format("é" * 40000))
    assert refusal(job).key == key


def test_a_post_section_apptainer_cant_read_at_once_is_refused(
    tmp_path: Path, jobs_for: Jobs
) -> None:
    commands = json.dumps(["echo " + "x" * 20000] * 4)
    error = refusal(job_of(tmp_path, jobs_for, f"[run]\ncommands = {commands}\n"))
    assert error.key == "run.commands" and "%post" in error.reason


def test_a_source_starting_with_a_dash_is_never_an_option_of_apptainers_cp(
    tmp_path: Path, jobs_for: Jobs
) -> None:
    job = job_of(tmp_path, jobs_for, '[files]\n"-rf" = "/opt/x"\n', files=("-rf",))
    assert "\n    ./-rf /.imgforge:staging/0\n" in render(job, "def")
    assert 'COPY ["-rf", "/opt/x"]\n' in render(job, "dockerfile")


def test_nothing_can_be_copied_over_the_staging_directory(tmp_path: Path, jobs_for: Jobs) -> None:
    job = job_of(
        tmp_path, jobs_for, '[files]\n"root/" = "/"\n', files=("root/.imgforge:staging/0",)
    )
    assert refusal(job).key == "files.root/"


def test_base_env_with_a_nul_is_refused_naming_the_image(tmp_path: Path, jobs_for: Jobs) -> None:
    job = job_of(tmp_path, jobs_for, "", config=ImageConfig(env=("A=x\0y",)))
    error = refusal(job)
    assert error.key == "base" and BASE in error.reason and "NUL" in error.reason


def test_a_skipped_base_env_name_stays_a_comment(tmp_path: Path, jobs_for: Jobs) -> None:
    job = job_of(tmp_path, jobs_for, "", config=ImageConfig(env=("A\nrm -rf /=x", "B=1")))
    env = render(job, "env")
    assert "# skipped: 'A\\nrm -rf /' is not a valid variable name" in env
    assert "\nrm" not in env


def test_an_out_directory_a_def_cant_name_is_refused(tmp_path: Path, jobs_for: Jobs) -> None:
    (tmp_path / "proj.toml").write_text(f'base = "{BASE}"\n')
    (job,) = jobs_for(tmp_path, {BASE: ImageConfig()}, out=tmp_path / "o$(id)")
    with pytest.raises(UsageError, match="^--out: "):
        check(job)
