"""Base-image data is input: ImageConfig.from_inspect refuses what can't be carried and
everything it accepts reaches the env file byte for byte (sourced by sh and by bash)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from support import sourced_env

from imgforge.errors import ImageDataError, ImgforgeError
from imgforge.recipes.envnames import OWNED, carried, kept_as_default, why_not_carried
from imgforge.recipes.image import DEFAULT_PATH, ImageConfig
from imgforge.render import make_environment, render

NGC = "nvcr.io/nvidia/pytorch:24.01-py3"


def inspect(**config: object) -> dict[str, object]:
    return {"Config": config, "Architecture": "amd64"}


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            {"Env": ["A\nB=1"]},
            "img: Config.Env[0]: variable name 'A\\nB' has non-printable characters",
        ),
        ({"Env": ["OK=1", "NOEQ"]}, "img: Config.Env[1]: 'NOEQ' is not NAME=VALUE"),
        ({"Env": ["=x"]}, "img: Config.Env[0]: '=x' is not NAME=VALUE"),
        ({"Env": ["A=\x00"]}, "img: Config.Env.A: the value holds a NUL character"),
        (
            {"Env": ["\x1b[2J=1"]},
            "img: Config.Env[0]: variable name '\\x1b[2J' has non-printable characters",
        ),
        ({"Env": "A=1"}, "img: Config.Env: expected a list, got str"),
        ({"Env": [1]}, "img: Config.Env: expected a string, got int"),
        ({"WorkingDir": "/a\rb"}, "img: Config.WorkingDir: '/a\\rb' has non-printable characters"),
        ({"WorkingDir": "rel"}, "img: Config.WorkingDir: 'rel' is not absolute"),
        ({"User": "u\n"}, "img: Config.User: 'u\\n' has non-printable characters"),
        ({"Labels": {"a\tb": "x"}}, "img: Config.Labels: label key 'a\\tb' is not printable"),
        ({"Labels": {"a": "x\x00"}}, "img: Config.Labels.a: the value holds a NUL character"),
        ({"Labels": ["a"]}, "img: Config.Labels: expected a map, got list"),
        ({"Cmd": ["a\x00"]}, "img: Config.Cmd: 'a\\x00' holds a NUL character"),
        ({"Env": ["A=\udcff"]}, "img: Config.Env: 'A=\\udcff' is not valid Unicode"),
    ],
)
def test_refused_configs(config: dict[str, object], message: str) -> None:
    with pytest.raises(ImageDataError) as caught:
        ImageConfig.from_inspect(inspect(**config), origin="img")
    assert str(caught.value) == message
    assert caught.value.exit_code == 2


def test_the_real_ngc_config_is_accepted(ngc_config: ImageConfig) -> None:
    assert len(ngc_config.shell_env()) == len(ngc_config.env)


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("PATH", True), ("LD_LIBRARY_PATH", True), ("BASH_ENV", True), ("ENV", True),
        ("_CUDA_COMPAT_PATH", True), ("SHELL", True), ("UID", False), ("EUID", False),
        ("PPID", False), ("SHELLOPTS", False), ("BASHOPTS", False), ("BASH_VERSINFO", False),
        ("RANDOM", False), ("LINENO", False), ("SECONDS", False), ("_", False),
        ("HOME", False), ("PWD", False), ("IFS", False), ("GID", False),
        ("APPTAINER_NAME", False), ("SINGULARITYENV_X", False), ("APPTAINERENV_X", False),
        ("9LIVES", False), ("A-B", False), ("É", False), ("", False),
    ],
)  # fmt: skip
def test_carried_names(name: str, ok: bool) -> None:
    assert carried(name) is ok


# The shells themselves agree: every owned name that bash knows is special in it.
def test_bash_readonly_names_are_owned() -> None:
    listed = subprocess.run(
        ["bash", "-c", "readonly -p"], capture_output=True, text=True, check=True
    ).stdout
    names = {line.split()[2].split("=")[0] for line in listed.splitlines() if line.strip()}
    assert names - {"BASH_REMATCH"} <= OWNED


NAMES = st.one_of(
    st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,12}", fullmatch=True),
    st.sampled_from(sorted(OWNED) + ["my-var", "9X", "a.b", "É", "A B", "%post", "{{ x }}"]),
    st.text(st.characters(categories=["L", "N", "P", "S"]), min_size=1, max_size=8),
)
HOSTILE_NAMES = st.sampled_from(["A\nB", "A\udcff", "", "\x1b[2J", "A\u2028B", "A\x00"])
VALUES = st.one_of(
    st.text(st.characters(exclude_characters="\0"), max_size=40),
    st.sampled_from(["'", "'\\''", "%post", "\n%files\n", "$(id)", "\\", "\r\n"]),
)
HOSTILE_VALUES = st.text(max_size=10).map(lambda t: t + "\0") | st.just("a\udcffb")
# At most one hostile entry, inserted among carriable ones.
HOSTILE = st.one_of(
    st.just(None), st.tuples(HOSTILE_NAMES, VALUES), st.tuples(NAMES, HOSTILE_VALUES)
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(st.tuples(NAMES, VALUES), max_size=8, unique_by=lambda p: p[0]),
    HOSTILE,
    st.integers(0, 8),
)
@example(env=[("SHLVL", "")], hostile=None, where=0)  # set by the checking shell itself
@example(env=[("A=", "")], hostile=None, where=0)  # the entry "A==": A is "="
def test_accepted_env_is_sourced_exactly(
    tmp_path: Path,
    jobs_for: Callable[..., list[object]],
    env: list[tuple[str, str]],
    hostile: tuple[str, str] | None,
    where: int,
) -> None:
    """Any Env: refused with exit 2 and a printable message, or the env file yields
    exactly the carried pairs under sh and under bash (``env -i``)."""
    if hostile is not None and hostile[0] not in dict(env):
        env.insert(where, hostile)
    entries = [f"{name}={value}" for name, value in env]
    try:
        config = ImageConfig.from_inspect(inspect(Env=entries), origin="img")
    except ImgforgeError as exc:
        assert exc.exit_code == 2 and str(exc).isprintable()
        event("refused")
        return
    directory = tmp_path / "recipes"
    directory.mkdir(exist_ok=True)
    (directory / "proj.toml").write_text(f'base = "{NGC}"\n')
    job = jobs_for(directory, {NGC: config})[0]
    text = render(job, "env", make_environment())
    # An Env entry is NAME=VALUE split at its first "=" (a hostile name holding one is
    # another name and value), as the engine reads it.
    env = [(entry.partition("=")[0], entry.partition("=")[2]) for entry in entries]
    # What the shells running the check set themselves can't be seen in what they print.
    expected = {n: v for n, v in env if carried(n) and n not in SHELL_OWN}
    expected.setdefault("PATH", DEFAULT_PATH)
    # Defaults apply where the shell has no value of its own (env -i: all but these).
    expected |= {n: v for n, v in env if kept_as_default(n) and n not in SHELL_SET}
    for shell in ("sh", "bash"):
        got = sourced(shell, text, tmp_path)
        assert {n: v for n, v in got.items() if n not in SHELL_SET} == expected
    event("sourced")


SHELL_SET = {"OPTIND", "PWD", "UID"}
SHELL_OWN = {"PWD", "SHLVL", "_", "OLDPWD"}


def sourced(shell: str, script: str, tmp_path: Path) -> dict[str, str]:
    return {n: v for n, v in sourced_env(shell, script, tmp_path).items() if n not in SHELL_OWN}


def test_why_not_carried_wording() -> None:
    assert why_not_carried("UID") == "'UID' is read-only in bash"
    assert why_not_carried("HOME") == "'HOME' is set by Apptainer's runtime"
