"""The input boundary: recipe files, imgforge.toml, options and environment variables.
Every failure a user can cause is exit 2 with one printable line; properties put hostile
text into every field and option."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from support import toml_string

from imgforge.cli import main
from imgforge.errors import RecipeError
from imgforge.patterns import APT_RE
from imgforge.recipes.inputfile import MAX_BYTES, MAX_DEPTH
from imgforge.recipes.model import load

NGC = "nvcr.io/nvidia/pytorch:24.01-py3"


@pytest.fixture(autouse=True)
def no_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    """Render without an engine: fast, and what a user without Docker gets."""
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/imgforge-test.sock")
    monkeypatch.delenv("IMGFORGE_NETWORK", raising=False)
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)


def one_line(err: str) -> str:
    """The single stderr line of a failed command, checked printable."""
    assert err.endswith("\n") and err.count("\n") == 1, err
    assert err[:-1].isprintable(), err
    return err[:-1]


# ------------------------------------------------------------------------- apt


@pytest.mark.parametrize(
    "argument",
    [
        "ffmpeg", "libgl1", "g++", "libstdc++6", "python3.11", "gcc-12", "libc6:i386",
        "curl=7.88.1-10+deb12u5", "nginx=1:1.22.1-9", "nginx/bookworm-backports",
        "libc6:amd64=2.36-9", "lib32z1", "x11-apps", "a0",
    ],
)  # fmt: skip
def test_apt_arguments_accepted(argument: str) -> None:
    assert APT_RE.fullmatch(argument)


@pytest.mark.parametrize(
    "argument",
    [
        "foo-",  # apt-get install foo- removes foo
        "foo=1.0-",  # ... and so does a trailing '-' after a version
        "foo:amd64-",
        "foo/stable-",
        "foo=1.0+",  # a trailing '+' modifier would drop to foo=1.0 if 1.0+ is absent
        "?installed", "~nfoo", "foo*", "^foo", "foo$", "f[o]o", "foo|bar", "!foo",
        "task^", "Foo", "f", "-f", "--purge", "foo bar", "foo=", "foo/", "foo:",
        "foo=abc", "foo=1.0/stable", "foo:*", "foo\n", "",
    ],
)  # fmt: skip
def test_apt_arguments_refused(argument: str) -> None:
    assert not APT_RE.fullmatch(argument)


# ------------------------------------------------------------------- recipes


def recipe(tmp_path: Path, body: str, name: str = "app.toml") -> Path:
    path = tmp_path / name
    path.write_text(f'base = "{NGC}"\n{body}', encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("body", "key", "reason"),
    [
        ('[labels]\n"org.imgforge.recipe" = "spoof"\n', "labels.org.imgforge.recipe",
         "org.imgforge.* labels are imgforge's own"),
        ('[labels]\n"org.imgforge" = "x"\n', "labels.org.imgforge",
         "org.imgforge.* labels are imgforge's own"),
        ("[build]\ngpus = true\n", "build.gpus",
         'true needs strategy = "commit" (docker build runs no step with GPUs)'),
        ('[env]\nUID = "0"\n', "env.UID", "'UID' is read-only in bash"),
        ('[env]\nRANDOM = "4"\n', "env.RANDOM", "'RANDOM' is set by the shell itself"),
        ('[env]\nHOME = "/x"\n', "env.HOME", "'HOME' is set by Apptainer's runtime"),
        ('[env]\nAPPTAINER_BIND = "/x"\n', "env.APPTAINER_BIND",
         "'APPTAINER_BIND' is set by Apptainer's runtime"),
        ('[apt]\npackages = ["foo-"]\n', "apt.packages[0]",
         "'foo-' is not a valid Debian package name"),
    ],
)  # fmt: skip
def test_recipe_errors(tmp_path: Path, body: str, key: str, reason: str) -> None:
    path = recipe(tmp_path, body)
    with pytest.raises(RecipeError) as caught:
        load(path)
    assert str(caught.value) == f"{path}: {key}: {reason}"


def test_gpus_with_commit_is_accepted(tmp_path: Path) -> None:
    assert load(recipe(tmp_path, '[build]\nstrategy = "commit"\ngpus = true\n')).gpus


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("x = " + "[" * 5000 + "]" * 5000 + "\n", f"nested deeper than {MAX_DEPTH} levels"),
        (
            "x = " + "{a = " * 3000 + "1" + "}" * 3000 + "\n",
            f"nested deeper than {MAX_DEPTH} levels",
        ),
        ("a" + ".a" * 5000 + " = 1\n", f"nested deeper than {MAX_DEPTH} levels"),
        ("# " + "x" * MAX_BYTES + "\n", f"the file is larger than {MAX_BYTES} bytes"),
    ],
)
def test_oversized_files(tmp_path: Path, content: str, reason: str) -> None:
    path = tmp_path / "deep.toml"
    path.write_text(content)
    with pytest.raises(RecipeError) as caught:
        load(path)
    assert str(caught.value) == f"{path}: {reason}"


def test_special_files_are_refused_without_blocking(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo.toml")
    (tmp_path / "zero.toml").symlink_to("/dev/zero")
    for name, kind in (("fifo.toml", "a FIFO"), ("zero.toml", "a character device")):
        with pytest.raises(RecipeError) as caught:
            load(tmp_path / name)
        assert str(caught.value) == f"{tmp_path / name}: the file is {kind}"


def test_a_fifo_beside_the_recipes_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = recipe(tmp_path, "")
    os.mkfifo(tmp_path / "other.toml")
    assert main(["render", str(target), "--out", str(tmp_path / "out")]) == 2
    assert one_line(capsys.readouterr().err).endswith("other.toml: the file is a FIFO")


def test_non_utf8_recipe_and_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_bytes(b'base = "x"\n# \xff\xfe\n')
    assert main(["render", str(bad), "--out", str(tmp_path / "o1")]) == 2
    assert one_line(capsys.readouterr().err).endswith("bad.toml: not valid UTF-8")
    directory = tmp_path / "d"
    directory.mkdir()
    odd = Path(os.fsdecode(bytes(directory) + b"/r\xff\x1b.toml"))
    odd.write_text(f'base = "{NGC}"\n')
    assert main(["render", str(odd), "--out", str(tmp_path / "o2")]) == 2
    assert "\\udcff\\x1b" in one_line(capsys.readouterr().err)


# ------------------------------------------------------------ options and env


@pytest.fixture
def ok_recipe(tmp_path: Path) -> Iterator[Path]:
    directory = tmp_path / "recipes"
    directory.mkdir()
    (directory / "app").mkdir()
    yield recipe(directory, '[files]\n"app/" = "/opt/app/"\n')


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--network", "container:abc"], "--network (or IMGFORGE_NETWORK): 'container:abc' "
         "is not host, none, bridge or a network name"),
        (["--out", "OUT/$(id)"], "holds '$()'"),
        (["--out", "OUT/a b"], "holds ' '"),
        (["--out", "OUT/x*"], "holds '*'"),
        (["--out", "OUT/`x`"], "holds '`'"),
        (["--out", "RECIPES/app/build"], "which a recipe copies"),
        (["--out", "RECIPES/app"], "which a recipe copies"),
        (["--out", "RECIPES/app.toml"], "exists and is not a directory"),
        (["--strategy", "dockerfile", "--base-map", f"{NGC}=a/../b"], "invalid reference format"),
        (["-j", "x\x1b[2J"], "invalid int value: 'x\\x1b[2J'"),
    ],
)  # fmt: skip
def test_option_errors(
    ok_recipe: Path, capsys: pytest.CaptureFixture[str], options: list[str], message: str
) -> None:
    out = str(ok_recipe.parent.parent / "out")
    options = [o.replace("OUT", out).replace("RECIPES", str(ok_recipe.parent)) for o in options]
    arguments = [
        "render",
        str(ok_recipe),
        *(options if "--out" in options else [*options, "--out", out]),
    ]
    assert main(arguments) == 2
    assert message in one_line(capsys.readouterr().err)


def test_gpus_with_strategy_dockerfile_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = recipe(tmp_path, '[build]\nstrategy = "commit"\ngpus = true\n')
    arguments = ["render", str(path), "--strategy", "dockerfile", "--out", str(tmp_path / "o")]
    assert main(arguments) == 2
    assert one_line(capsys.readouterr().err) == (
        "imgforge: error: --strategy dockerfile: recipe 'app' has gpus = true, which only "
        "the commit strategy honours"
    )


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("IMGFORGE_NETWORK", "container:victim", "'container:victim' is not host"),
        ("SOURCE_DATE_EPOCH", "yesterday", "SOURCE_DATE_EPOCH: 'yesterday' is not a number"),
        ("SOURCE_DATE_EPOCH", "1" * 30, "is not a number of seconds"),
        ("SOURCE_DATE_EPOCH", "١٢", "is not a number of seconds"),
    ],
)
def test_environment_errors(
    ok_recipe: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    variable: str,
    value: str,
    message: str,
) -> None:
    monkeypatch.setenv(variable, value)
    assert main(["render", str(ok_recipe), "--out", str(ok_recipe.parent / "out")]) == 2
    assert message in one_line(capsys.readouterr().err)


# ----------------------------------------------------------------- properties

HOSTILE = st.one_of(
    st.text(max_size=30),
    st.text(st.characters(codec="ascii"), max_size=30),
    st.sampled_from(
        [
            "\x1b[2J", "a\nb", "%post", "{{ x }}", "-x", "--mount=type=bind", "<<EOF",
            '["/bin/sh"]', "$(id)", "`id`", "a\\", "'", '"', "\u202e", "\x00", "a" * 300,
            "../x", "/etc/passwd", "org.imgforge.x", "UID", "foo-", "?installed",
            "x/../../containers/abc", "localhost:5000/..", " ", "",
        ]
    ),
)  # fmt: skip
FIELDS = [
    "name = {v}", "tag = {v}", "base = {v}", "[apt]\npackages = [{v}]", "[pip]\npackages = [{v}]",
    "[pip]\nrequirements = [{v}]", "[pip]\nindex_url = {v}", "[env]\n{v} = \"x\"",
    "[env]\nX = {v}", "[labels]\n{v} = \"x\"", "[labels]\nx = {v}", "[files]\n{v} = \"/x\"",
    "[files]\n\"app\" = {v}", "[run]\ncommands = [{v}]", "[runscript]\ncommand = {v}",
    "[build]\nstrategy = {v}", "{v} = 1",
]  # fmt: skip


@settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.sampled_from(FIELDS), HOSTILE)
def test_any_field_renders_or_is_one_line(
    tmp_path_factory: pytest.TempPathFactory,
    capsys: pytest.CaptureFixture[str],
    field: str,
    text: str,
) -> None:
    """Hostile text in any recipe field: `imgforge render` succeeds, or exits 2 with
    exactly one printable line on stderr (never a traceback, never another code)."""
    directory = tmp_path_factory.mktemp("recipes")
    (directory / "app").write_text("x\n")
    body = field.format(v=toml_string(text))
    if not field.startswith("base"):
        body = f"base = {toml_string(NGC)}\n{body}"
    (directory / "app.toml").write_text(body + "\n", encoding="utf-8")
    capsys.readouterr()
    code = main(["render", str(directory / "app.toml"), "--out", str(directory / "out")])
    err = capsys.readouterr().err
    assert code in (0, 2), err
    event(f"exit {code}")
    if code == 2:
        one_line(err)
    else:
        assert err == ""


OPTIONS = ["--out", "--base-map", "--push", "--network", "-j", "--strategy", "--compression"]


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.sampled_from(OPTIONS), HOSTILE)
def test_any_option_renders_or_is_one_line(
    tmp_path_factory: pytest.TempPathFactory,
    capsys: pytest.CaptureFixture[str],
    option: str,
    text: str,
) -> None:
    """Hostile text in any option value: success, or exit 2 with one printable line."""
    directory = tmp_path_factory.mktemp("recipes")
    (directory / "app.toml").write_text(f'base = "{NGC}"\n')
    os.chdir(directory)
    if "\x00" in text:  # no argv can hold a NUL
        return
    arguments = ["render", "app.toml", option, text]
    if option != "--out":
        arguments += ["--out", str(directory / "out")]
    capsys.readouterr()
    code = main(arguments)
    err = capsys.readouterr().err
    assert code in (0, 2), err
    event(f"exit {code}")
    if code == 2:
        one_line(err)
