"""The installed runtime's version and quirks, and the documented differences between the
environment Docker gives and the one Apptainer gives (checked for real in
tests/apptainer)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from imgforge.sif.runtime import Runtime, parse_version, quirks
from imgforge.sif.runtime_env import (
    APPTAINER_DEFAULT_PATH,
    differences,
    expected_apptainer_env,
    fixed_path,
    from_docker_run,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("apptainer version 1.5.3\n", ("apptainer", (1, 5, 3))),
        ("apptainer version 1.2.5-1.el8", ("apptainer", (1, 2, 5))),
        ("singularity-ce version 4.4.0", ("singularity-ce", (4, 4, 0))),
        ("singularity version 3.8.7-1.el8", ("singularity", (3, 8, 7))),
        ("2.6.1-dist", None),
        ("", None),
    ],
)
def test_parse_version(text: str, expected: tuple[str, tuple[int, int, int]] | None) -> None:
    assert parse_version(text) == expected


def test_quirks_follow_the_version() -> None:
    assert quirks(Runtime("/x", "apptainer", (1, 5, 3))) == []
    old = quirks(Runtime("/x", "apptainer", (1, 3, 4)))
    assert any("apptainer#2561" in text for text in old)
    assert any("apptainer#3328" in text for text in old)
    assert not any("apptainer#2561" in q for q in quirks(Runtime("/x", "apptainer", (1, 4, 0))))
    assert quirks(Runtime("/x", "singularity-ce", (4, 4, 0))) == []
    assert len(quirks(Runtime("/x", "singularity", (3, 5, 3)))) == 2


@pytest.mark.parametrize(
    ("path", "fixed"),
    [
        (APPTAINER_DEFAULT_PATH, APPTAINER_DEFAULT_PATH),
        (
            "/opt/bin:/usr/bin:/bin",
            "/opt/bin:/usr/bin:/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/sbin",
        ),
        ("", APPTAINER_DEFAULT_PATH),
    ],
)
def test_fixed_path_appends_missing_default_directories(path: str, fixed: str) -> None:
    assert fixed_path(path) == fixed


def test_expected_env_of_an_ngc_like_image() -> None:
    image = [
        ("PATH", "/usr/local/cuda/bin:/usr/bin:/bin"),
        ("LD_LIBRARY_PATH", "/usr/local/cuda/lib64"),
        ("HOME", "/root"),
        ("BAD-NAME", "x"),
        ("PS4", "$(id)"),
        ("QUOTE", "it's"),
        ("EMPTY", ""),
    ]
    assert expected_apptainer_env(image) == {
        "LANG": "C",
        "PS1": "Apptainer> ",
        "PATH": "/usr/local/cuda/bin:/usr/bin:/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/sbin",
        "LD_LIBRARY_PATH": "/usr/local/cuda/lib64:/.singularity.d/libs",
        "QUOTE": "it's",
        "EMPTY": "",
    }
    assert expected_apptainer_env([("LANG", "C.UTF-8")])["LANG"] == "C.UTF-8"
    assert expected_apptainer_env([])["LD_LIBRARY_PATH"] == "/.singularity.d/libs"


VALUES = st.text(st.characters(blacklist_characters="\0"), max_size=20)


@given(st.dictionaries(st.from_regex(r"[A-Z][A-Z0-9_]{0,8}", fullmatch=True), VALUES, max_size=6))
def test_differences_accept_exactly_the_documented_ones(env: dict[str, str]) -> None:
    docker = {**env, "HOSTNAME": "abc123", "HOME": "/root"}
    image = from_docker_run(docker)
    apptainer = expected_apptainer_env(image) | {"HOME": "/home/u", "PWD": "/x", "PS1": "A> "}
    assert differences(image, apptainer) == []
    names = sorted(n for n in expected_apptainer_env(image) if n in env and n != "LANG")
    if names:
        changed = apptainer | {names[0]: apptainer[names[0]] + "\\"}
        (line,) = differences(image, changed)
        assert line.startswith(f"env {names[0]}: image ")


def test_host_dependent_and_default_names_are_not_differences() -> None:
    image = [("LANG", ""), ("TERM", ""), ("UID", "1000"), ("HOME", "/h"), ("A", "1")]
    base = {k: v for k, v in expected_apptainer_env(image).items() if k not in {"LANG", "TERM"}}
    assert differences(image, base | {"LANG": "C", "UID": "0", "HOME": "/root"}) == []
    assert differences(image, base) == []
    (line,) = differences(image, base | {"A": "2"})
    assert line == "env A: image '1', apptainer '2'"


def test_variables_of_the_images_own_env_scripts() -> None:
    """An image converted from a SIF keeps its env scripts: what they set is theirs."""
    image = [("A", "1")]
    seen = expected_apptainer_env(image) | {"OWN": "x"}
    assert differences(image, seen, more_scripts=True) == []
    assert differences(image, seen) == ["env OWN: image (unset), apptainer 'x'"]
    del seen["A"]
    assert differences(image, seen, more_scripts=True) == ["env A: image '1', apptainer (unset)"]
