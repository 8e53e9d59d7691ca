"""imgforge.cli.main: exit codes, one-line error messages, and the engine-free commands."""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import jinja2
import pytest

import imgforge
from imgforge import __version__
from imgforge.cli import main
from imgforge.commands import COMMANDS
from imgforge.commands.about import LIBRARIES

NGC = "nvcr.io/nvidia/pytorch:24.01-py3"


@pytest.fixture(autouse=True)
def no_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    """Point the Docker SDK at a socket that does not exist: no engine is ever reached."""
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent.sock")
    for name in ("DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH", "DOCKER_CONTEXT", "IMGFORGE_NETWORK"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def recipes(tmp_path: Path) -> Path:
    directory = tmp_path / "recipes"
    (directory / "app").mkdir(parents=True)
    (directory / "app" / "main.py").write_text("print('hi')\n")
    (directory / "common.toml").write_text(
        f'base = "{NGC}"\ntag = "1.0"\n[env]\nCOMMON = "c d"\n[apt]\npackages = ["curl"]\n'
    )
    (directory / "app.toml").write_text(
        'base = "recipe:common"\n[files]\n"app/" = "/opt/app/"\n'
        '[runscript]\ncommand = "python /opt/app/main.py"\n'
    )
    return directory


def error_line(capsys: pytest.CaptureFixture[str]) -> str:
    """The only line on stderr (asserting there is exactly one, and no traceback)."""
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.endswith("\n") and err.count("\n") == 1, err
    return err.rstrip("\n")


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"imgforge {__version__}\n"


def test_python_dash_m(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "imgforge", "--version"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        cwd=tmp_path,
    )
    assert (result.returncode, result.stdout) == (0, f"imgforge {__version__}\n")


def test_render_writes_all_artifacts(
    recipes: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert main(["render", str(recipes / "app.toml"), "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    # The target and its ancestor, parents first, each with all three files.
    assert captured.out.splitlines() == [
        f"warning: base image {NGC} unknown here; its env is not in the rendered .def",
        f"common: {out}/common/Dockerfile {out}/common/common.def",
        f"app: {out}/app/Dockerfile {out}/app/app.def",
    ]
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == [
        "app",
        "app/Dockerfile",
        "app/app.def",
        "app/imgforge-env.sh",
        "common",
        "common/Dockerfile",
        "common/common.def",
        "common/imgforge-env.sh",
    ]
    app_def = (out / "app" / "app.def").read_text()
    assert "Bootstrap: localimage\nFrom: ../out/common/common.sif\n" in app_def
    assert "\nFROM common:1.0\n" in (out / "app" / "Dockerfile").read_text()
    env_file = out / "common" / "imgforge-env.sh"
    assert env_file.read_text().endswith("export COMMON='c d'\n")
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o755


def test_render_default_out_and_quiet(
    recipes: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(recipes.parent)
    assert main(["render", "-q", "recipes/common.toml"]) == 0
    assert capsys.readouterr() == ("", "")
    assert (recipes.parent / "build" / "common" / "common.def").is_file()
    assert not (recipes.parent / "build" / "app").exists()


def test_render_applies_base_map(
    recipes: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (recipes / "imgforge.toml").write_text(
        f'[base_map]\n"{NGC}" = "mirror.local/ngc/pytorch:24.01"\n'
    )
    out = tmp_path / "out"
    assert main(["render", "-q", str(recipes / "common.toml"), "--out", str(out)]) == 0
    assert "\nFROM mirror.local/ngc/pytorch:24.01\n" in (out / "common" / "Dockerfile").read_text()
    assert "\nFrom: mirror.local/ngc/pytorch:24.01\n" in (out / "common" / "common.def").read_text()
    # The command line wins over the project file.
    argv = ["render", "-q", str(recipes / "common.toml"), "--out", str(out)]
    assert main([*argv, "--base-map", f"{NGC}=other.local/pytorch:1"]) == 0
    assert "\nFROM other.local/pytorch:1\n" in (out / "common" / "Dockerfile").read_text()
    # Provenance keeps the reference the recipe names.
    assert f'org.imgforge.base="{NGC}"' in (out / "common" / "Dockerfile").read_text()


BAD_RECIPES = [
    ("tag = 1\n", "tag", "expected a string, got int"),
    ('colour = "red"\n', "colour", "unknown key"),
    ('[apt]\npackages = ["vim; rm -rf /"]\n', "apt.packages[0]",
     "'vim; rm -rf /' is not a valid Debian package name"),
    ('[env]\nX = "a\\nb"\n', "env.X", "must not contain a newline"),
    ('[files]\n"../etc" = "/etc/"\n', "files.../etc", "'../etc' must not contain '..'"),
]


@pytest.mark.parametrize(("text", "key", "reason"), BAD_RECIPES)
@pytest.mark.parametrize("command", ["render", "graph"])
def test_bad_recipe_is_one_line_and_exit_2(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    command: str,
    text: str,
    key: str,
    reason: str,
) -> None:
    path = tmp_path / "proj.toml"
    path.write_text(f'base = "{NGC}"\n{text}')
    target = str(tmp_path if command == "graph" else path)
    code = main([command, target, "--out", str(tmp_path / "out")])
    assert code == 2
    assert error_line(capsys) == f"imgforge: error: {path}: {key}: {reason}"
    assert not (tmp_path / "out").exists()


def test_toml_syntax_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "proj.toml"
    path.write_text(f'base = "{NGC}"\n[env\n')
    assert main(["render", str(path), "--out", str(tmp_path / "out")]) == 2
    assert error_line(capsys) == (
        f"imgforge: error: {path}: TOML syntax error: "
        "Expected ']' at the end of a table declaration (at line 2, column 5)"
    )


def test_missing_recipe_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "nope.toml"
    assert main(["render", str(path)]) == 2
    assert error_line(capsys) == f"imgforge: error: {path}: no such recipe file"


def test_missing_dependency(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "app.toml").write_text('base = "recipe:common"\n')
    assert main(["render", str(tmp_path / "app.toml"), "--out", str(tmp_path / "out")]) == 2
    assert error_line(capsys) == (
        f"imgforge: error: {tmp_path / 'app.toml'}: base: no recipe named 'common' in {tmp_path}"
    )


def test_cycle(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a.toml").write_text('base = "recipe:b"\n')
    (tmp_path / "b.toml").write_text('base = "recipe:a"\n')
    assert main(["graph", str(tmp_path)]) == 2
    assert error_line(capsys) == (
        f"imgforge: error: {tmp_path / 'b.toml'}: base: dependency cycle: a -> b -> a"
    )


def test_verbose_shows_the_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "proj.toml"
    path.write_text(f'base = "{NGC}"\ntag = 1\n')
    assert main(["render", "-v", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err
    assert err.endswith(f"imgforge: error: {path}: tag: expected a string, got int\n")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--jobs", "0"], "imgforge: error: --jobs: must be at least 1"),
        (
            ["--base-map", "nvcr.io/x"],
            "imgforge: error: --base-map: 'nvcr.io/x' is not REF=LOCAL_REF with two image "
            "references",
        ),
        (
            ["--base-map", "nvcr.io/x=../containers/abc"],
            "imgforge: error: --base-map: 'nvcr.io/x=../containers/abc' is not REF=LOCAL_REF "
            "with two image references: '../containers/abc': invalid reference format",
        ),
        (
            ["--base-map", "x=b\x1b[2J"],
            "imgforge: error: --base-map: 'x=b\\x1b[2J' is not REF=LOCAL_REF with two image "
            "references: 'b\\x1b[2J': invalid reference format: repository name "
            "(library/b\\x1b[2J) must be lowercase",
        ),
        (
            ["--push", "myregistry"],
            "imgforge: error: --push: 'myregistry' is not a registry (HOST[:PORT][/PATH]): "
            "'myregistry' names no registry host (no '.', ':' or 'localhost'): Docker Hub",
        ),
        (
            ["--push", "localhost:5000/../x"],
            "imgforge: error: --push: 'localhost:5000/../x' is not a registry "
            "(HOST[:PORT][/PATH]): invalid reference format",
        ),
        (
            ["--compression", "lzma"],
            "imgforge: error: --compression: lzma makes squashfs images that neither the "
            "kernel nor squashfuse can mount; use xz (same algorithm, mountable) or gzip",
        ),
        (
            ["--compression", "bzip2\x1b"],
            "imgforge: error: --compression: 'bzip2\\x1b' is not one of gzip, xz, zstd, lz4, lzo",
        ),
    ],
)
def test_bad_options(
    recipes: Path, capsys: pytest.CaptureFixture[str], options: list[str], message: str
) -> None:
    assert main(["render", str(recipes / "common.toml"), *options]) == 2
    assert error_line(capsys) == message


def test_help_lists_only_the_mountable_compressions(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["build", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--compression {gzip,xz,zstd,lz4,lzo}[:LEVEL]" in out
    assert "lzma" not in out


def test_build_without_engine_is_exit_3(recipes: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["build", str(recipes / "common.toml")]) == 3
    message = error_line(capsys)
    assert message.startswith("imgforge: error: no Docker engine reachable (")
    assert message.endswith("); start dockerd or set DOCKER_HOST")


def test_usage_error_is_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["frobnicate"]) == 2
    assert "invalid choice: 'frobnicate'" in capsys.readouterr().err


def test_graph_text(recipes: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["graph", str(recipes)]) == 0
    assert capsys.readouterr().out == (
        f"common:1.0  <-  {NGC}  [unknown]\n"
        "app:latest  <-  recipe:common  [unknown]\n"
    )


def test_graph_dot(recipes: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["graph", str(recipes), "--format", "dot"]) == 0
    assert capsys.readouterr().out == (
        "digraph recipes {\n"
        "  rankdir=LR;\n"
        '  node [shape=box, style="rounded,filled", fontname="Helvetica"];\n'
        f'  "common" [label="common:1.0\\n{NGC}\\nunknown", fillcolor="#eeeeee", '
        'tooltip="unknown"];\n'
        '  "app" [label="app:latest\\nrecipe:common\\nunknown", fillcolor="#eeeeee", '
        'tooltip="unknown"];\n'
        '  "common" -> "app";\n'
        "}\n"
    )


def test_graph_default_directory(
    recipes: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(recipes.parent)  # holds recipes/
    assert main(["graph"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == f"common:1.0  <-  {NGC}  [unknown]"


def test_version_verbose_names_python_and_libraries(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version", "-v"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"imgforge {__version__}"
    assert lines[1].startswith(f"python {platform.python_implementation()} ")
    assert f"installed at {Path(imgforge.__file__).resolve().parent}" in lines
    named = {line.split()[0]: line.split()[1] for line in lines[4:]}
    assert set(named) == set(LIBRARIES)
    assert named["jinja2"] == importlib.metadata.version("jinja2")


@pytest.mark.parametrize(
    "error",
    [RuntimeError("boom\nsecond line"), jinja2.TemplateNotFound("sif/actions/exec.j2"), KeyError()],
    ids=["runtime", "template-missing", "no-message"],
)
@pytest.mark.parametrize("verbose", [False, True])
def test_an_unexpected_exception_is_one_line_naming_it(
    error: Exception,
    verbose: bool,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    def broken(args: object, out: object) -> int:
        raise error

    monkeypatch.setitem(COMMANDS, "render", broken)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    argv = ["render", "x.toml", *(["--verbose"] if verbose else [])]
    assert main(argv) == 1
    err = capsys.readouterr().err
    last = err.splitlines()[-1]
    said = f"{type(error).__name__}: {error}".replace("\n", " ").rstrip(": ")
    if verbose:
        assert last == f"imgforge: error: render: unexpected {said} (traceback in the lines above)"
        assert "Traceback (most recent call last)" in err
        return
    assert err.count("\n") == 1 and "Traceback" not in err
    (written,) = tmp_path.glob("imgforge-traceback-*.log")
    assert last == f"imgforge: error: render: unexpected {said} (traceback in {written})"
    assert "in broken" in written.read_text()


def test_an_os_error_outside_a_build_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "r.toml").write_text('base = "nvcr.io/nvidia/pytorch:24.01-py3"\n')
    (tmp_path / "out").write_text("a file where --out wants a directory")
    out = tmp_path / "out" / "sub"
    assert main(["render", str(tmp_path / "r.toml"), "--out", str(out)]) == 1
    line = error_line(capsys)
    assert "unexpected" not in line and str(out) in line


@pytest.mark.parametrize("kind", ["fifo", "symlink", "directory"])
def test_schema_out_never_replaces_what_is_not_a_regular_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    target = tmp_path / "target"
    {
        "fifo": lambda: os.mkfifo(target),
        "symlink": lambda: target.symlink_to(tmp_path / "elsewhere.json"),
        "directory": target.mkdir,
    }[kind]()
    assert main(["schema", "--out", str(target)]) == 2
    assert error_line(capsys) == (
        f"imgforge: error: --out: {str(target)!r} exists and is not a regular file"
    )
    assert os.path.lexists(target) and not target.is_file()  # still what it was
    assert not (tmp_path / "elsewhere.json").exists()  # nothing written through the link


def test_schema_out_dash_prints(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["schema", "--out", "-"]) == 0
    assert json.loads(capsys.readouterr().out)["$schema"].startswith("https://")


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
@pytest.mark.parametrize("argv", [["--version", "-v"], ["schema"], ["completion", "bash"]])
def test_output_that_cannot_be_written_is_one_line(argv: list[str]) -> None:
    with open("/dev/full", "w") as full:
        result = subprocess.run(
            [sys.executable, "-m", "imgforge", *argv],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "No space left on device" in result.stderr
