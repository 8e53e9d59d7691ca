"""Attacks from outside the hostile corpus: injection, escapes, divergent build paths.

Each test asserts the behaviour docs/SECURITY.md promises. Those marked "finding" are
attacks that once got through (each comment says what happened); those marked "refused"
are attacks imgforge always handled, kept as regression cases.

Real builds use the NGC stand-in (or tiny images derived from it with a metadata-only
``docker build``), ``--network host`` and ``--singularity none`` (or ``native``), so they
stay small on a shared engine.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

STANDIN = "imgforge-standin/ngc-pytorch:24.01-py3"


def _imgforge() -> list[str]:
    venv = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "imgforge"
    if venv.exists():
        return [str(venv)]
    return [sys.executable, "-m", "imgforge"]


def imgforge(
    *args: str, cwd: Path | None = None, timeout: int = 600
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*_imgforge(), *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
        errors="replace",
    )


def _engine() -> bool:
    docker = shutil.which("docker")
    if docker is None:
        return False
    ok = subprocess.run([docker, "image", "inspect", STANDIN], capture_output=True)
    return ok.returncode == 0


needs_engine = pytest.mark.skipif(
    not _engine() and os.environ.get("CI") != "true", reason="no Docker engine / stand-in"
)


def docker(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DOCKER_BUILDKIT": "0"}
    return subprocess.run(
        ["docker", *args], capture_output=True, text=True, input=stdin, env=env, timeout=600
    )


@pytest.fixture
def tag() -> str:
    """A unique image name for this test; removed afterwards."""
    name = f"atk-fresh-{uuid.uuid4().hex[:10]}"
    yield name
    for repository in (name, f"{name}-base"):
        found = docker("images", "-q", repository).stdout.split()
        if found:
            docker("rmi", "-f", *found)


def derived_base(name: str, *instructions: str) -> str:
    """A tiny image on top of the stand-in (metadata or a few files only)."""
    ref = f"{name}-base:1"
    dockerfile = "\n".join([f"FROM {STANDIN}", *instructions]) + "\n"
    built = docker("build", "-q", "--network", "host", "-t", ref, "-", stdin=dockerfile)
    assert built.returncode == 0, built.stderr
    return ref


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


def build(recipe: Path, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return imgforge("build", str(recipe), "--out", str(out), "--network", "host", "--force", *extra)


def run_in(image: str, script: str) -> str:
    result = docker(
        "run", "--rm", "--network", "none", "--entrypoint", "/bin/sh", image, "-c", script
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


# ---------------------------------------------------------------------------------------
# Class 4/5 (finding): the build context is not sealed. A [files] source "." copies the
# whole context, and the context holds imgforge's own ".imgforge:Dockerfile": it lands in
# the image (and so in the SIF) with the dockerfile strategy, but not with the commit
# strategy, nor with the .def, nor with a plain `docker build` of the recipe directory.
# ---------------------------------------------------------------------------------------


@pytest.mark.integration
@needs_engine
def test_dot_source_does_not_copy_imgforges_own_dockerfile(tmp_path: Path, tag: str) -> None:
    recipe = write(
        tmp_path / "rec" / f"{tag}.toml",
        f'name = "{tag}"\nbase = "{STANDIN}"\n[files]\n"." = "/opt/app/"\n',
    )
    write(tmp_path / "rec" / "data.txt", "hi\n")
    out = tmp_path / "out"
    listings = {}
    for strategy in ("dockerfile", "commit"):
        result = build(recipe, out, "--singularity", "none", "--strategy", strategy)
        assert result.returncode == 0, result.stderr
        listings[strategy] = run_in(f"{tag}:latest", "ls -A /opt/app").split()
    assert ".imgforge:Dockerfile" not in listings["dockerfile"], listings
    assert listings["dockerfile"] == listings["commit"], listings


# ---------------------------------------------------------------------------------------
# Class 4/6 (finding): --out whose NAME directory IS the recipe directory (a copied
# source). check_out only refuses --out itself inside a copied source, so
# `imgforge build app/app.toml --out .` writes Dockerfile, manifest.json, build.log, the
# lock file and the SIF into the directory it copies, and a half-written build.log ends
# up in the image. Expected: exit 2, one line naming --out.
# ---------------------------------------------------------------------------------------


def test_out_whose_recipe_dir_is_a_copied_source_is_refused(tmp_path: Path) -> None:
    app = tmp_path / "app"
    write(
        app / "app.toml",
        'name = "app"\nbase = "example.org/none/base:1"\n[files]\n"." = "/opt/app/"\n',
    )
    write(app / "data.txt", "hi\n")
    before = sorted(p.name for p in app.iterdir())
    result = imgforge("render", "app/app.toml", "--out", ".", cwd=tmp_path, timeout=120)
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "--out" in one_line_error(result)
    assert sorted(p.name for p in app.iterdir()) == before


def test_out_clobbering_a_copied_file_is_refused(tmp_path: Path) -> None:
    """Same hole, sharper: the artifacts overwrite a file the recipe copies."""
    app = tmp_path / "app"
    write(
        app / "app.toml",
        'name = "app"\nbase = "example.org/none/base:1"\n'
        '[files]\n"Dockerfile" = "/opt/Dockerfile"\n',
    )
    write(app / "Dockerfile", "# the user's own Dockerfile\n")
    result = imgforge("render", "app/app.toml", "--out", ".", cwd=tmp_path, timeout=120)
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert (app / "Dockerfile").read_text() == "# the user's own Dockerfile\n"


# ---------------------------------------------------------------------------------------
# Class 1/5 (finding): an [env] value is code in the commit strategy and the .def. The
# commit script and Apptainer's %post run under `set -x`; dash expands $PS4 (command
# substitution included) before every traced command, and the env the script runs in
# carries the recipe's PS4. The Dockerfile path never evaluates it. Expected: the value
# stays literal everywhere (or PS4 is refused as a name the shell owns, exit 2).
# ---------------------------------------------------------------------------------------


@pytest.mark.integration
@needs_engine
def test_env_ps4_is_never_evaluated_by_the_commit_strategy(tmp_path: Path, tag: str) -> None:
    recipe = write(
        tmp_path / "rec" / f"{tag}.toml",
        f'name = "{tag}"\nbase = "{STANDIN}"\n[env]\nPS4 = "$(touch /tmp/pwned-by-ps4)+ "\n'
        '[run]\ncommands = ["true"]\n',
    )
    result = build(recipe, tmp_path / "out", "--singularity", "none", "--strategy", "commit")
    if result.returncode == 2:  # refusing the name is correct too
        assert "PS4" in one_line_error(result)
        return
    assert result.returncode == 0, result.stderr
    assert "absent" in run_in(
        f"{tag}:latest", "test -e /tmp/pwned-by-ps4 && echo present || echo absent"
    )


def test_env_ps4_render_has_no_code_path(tmp_path: Path) -> None:
    """Render-level form of the same finding (no engine): the .def's %post sources the env
    file and then runs under Apptainer's `sh -e -x`, so PS4 is evaluated there too."""
    recipe = write(
        tmp_path / "rec" / "ps4.toml",
        'base = "example.org/none/base:1"\n[env]\nPS4 = "$(id)"\n[run]\ncommands = ["true"]\n',
    )
    result = imgforge("render", str(recipe), "--out", str(tmp_path / "out"), timeout=120)
    if result.returncode == 2:
        assert "PS4" in one_line_error(result)
        return
    deffile = (tmp_path / "out" / "ps4" / "ps4.def").read_text()
    post = deffile.split("%post", 1)[1].split("%environment", 1)[0]
    # Apptainer runs %post with `sh -e -x` whatever the .def says: after sourcing the env
    # file, %post must neutralise PS4 before its first step.
    assert re.search(r"^\s*(unset PS4|PS4=)", post, re.M), post


# ---------------------------------------------------------------------------------------
# Class 5 (finding): a base image with USER. The Dockerfile's COPY writes as root whatever
# USER says; the commit strategy runs its cp/mkdir as the base's USER and fails; the .def's
# %post runs everything as root (apt, pip and [run] too, where the Dockerfile runs them as
# USER). Expected: the same outcome in both strategies (or exit 2 naming Config.User).
# ---------------------------------------------------------------------------------------


@pytest.mark.integration
@needs_engine
def test_base_with_user_gives_same_result_in_both_strategies(tmp_path: Path, tag: str) -> None:
    base = derived_base(tag, "USER 65534")
    recipe = write(
        tmp_path / "rec" / f"{tag}.toml",
        f'name = "{tag}"\nbase = "{base}"\n[files]\n"f.txt" = "/opt/x/f.txt"\n',
    )
    write(tmp_path / "rec" / "f.txt", "hi\n")
    results = {}
    for strategy in ("dockerfile", "commit"):
        result = build(recipe, tmp_path / "out", "--singularity", "none", "--strategy", strategy)
        results[strategy] = result.returncode
        if result.returncode == 2:
            assert "User" in one_line_error(result)
    assert results["dockerfile"] == results["commit"], results


# ---------------------------------------------------------------------------------------
# Class 5 (finding): a directory copied onto a base path that holds a symlink where the
# source has a directory. Docker's COPY replaces the link with a directory; the commit
# strategy's (and the .def's) `cp -a SRC/. DEST` fails ("cannot overwrite non-directory").
# ---------------------------------------------------------------------------------------


@pytest.mark.integration
@needs_engine
def test_dir_copy_over_base_symlink_same_in_both_strategies(tmp_path: Path, tag: str) -> None:
    base = derived_base(tag, "RUN mkdir -p /opt/app /srv/real && ln -s /srv/real /opt/app/lib")
    recipe = write(
        tmp_path / "rec" / f"{tag}.toml",
        f'name = "{tag}"\nbase = "{base}"\n[files]\n"app/" = "/opt/app/"\n',
    )
    write(tmp_path / "rec" / "app" / "lib" / "x.so", "so\n")
    seen = {}
    for strategy in ("dockerfile", "commit"):
        result = build(recipe, tmp_path / "out", "--singularity", "none", "--strategy", strategy)
        assert result.returncode == 0, (strategy, result.stderr)
        seen[strategy] = run_in(f"{tag}:latest", "ls -ld /opt/app/lib | cut -c1; ls /opt/app/lib/")
    assert seen["dockerfile"] == seen["commit"], seen


# ---------------------------------------------------------------------------------------
# Class 5 (finding): [files] into /.singularity.d. The Docker image gets the file, the
# native SIF silently drops it (imgforge writes its own /.singularity.d, and verify --deep
# passes), and a .def build copies it in %post over imgforge's env file or beside it, where
# Apptainer sources it at every start: three different images. Expected: exit 2.
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "dest",
    [
        "/.singularity.d/env/50-extra.sh",
        "/.singularity.d/env/10-docker2singularity.sh",
        "/.singularity.d/",
    ],
)
def test_files_into_singularity_metadata_are_refused(tmp_path: Path, dest: str) -> None:
    recipe = write(
        tmp_path / "rec" / "sd.toml",
        f'base = "example.org/none/base:1"\n[files]\n"x.sh" = "{dest}"\n',
    )
    write(tmp_path / "rec" / "x.sh", "export INJECTED=1\n")
    result = imgforge("render", str(recipe), "--out", str(tmp_path / "out"), timeout=120)
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "files.x.sh" in one_line_error(result)


# ---------------------------------------------------------------------------------------
# Class 2/5 (finding): base = "sha256:<image id>" passes as repository "sha256" with a
# 64-character tag (ParseNormalizedNamed), but the engine reads it as an image ID
# (ParseAnyReference): imgforge inspects and builds FROM a local image chosen by ID, while
# the .def says "Bootstrap: docker / From: sha256:..." = docker.io/library/sha256. The
# 64-hex form without "sha256:" is refused; this one should be too.
# ---------------------------------------------------------------------------------------


@pytest.mark.integration
@needs_engine
def test_base_image_id_with_algorithm_is_refused(tmp_path: Path) -> None:
    image_id = docker("image", "inspect", "--format", "{{.Id}}", STANDIN).stdout.strip()
    assert image_id.startswith("sha256:")
    recipe = write(tmp_path / "rec" / "byid.toml", f'base = "{image_id}"\n')
    result = imgforge("render", str(recipe), "--out", str(tmp_path / "out"), timeout=120)
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "base" in one_line_error(result)


# ---------------------------------------------------------------------------------------
# Refused (regression cases): attacks imgforge handled correctly.
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("setup", "expect"),
    [
        (lambda d: os.mkfifo(d / ".dockerignore"), "FIFO"),
        (lambda d: os.mkfifo(d / "imgforge.toml"), "FIFO"),
        (lambda d: os.symlink("/dev/zero", d / "imgforge.toml"), "character device"),
        (lambda d: (d / "imgforge.toml").write_text("#" * (2 << 20)), "larger than"),
    ],
    ids=["fifo-dockerignore", "fifo-project", "devzero-project", "huge-project"],
)
def test_special_sibling_files_are_refused_quickly(tmp_path: Path, setup, expect: str) -> None:
    rec = tmp_path / "rec"
    recipe = write(rec / "r.toml", 'base = "example.org/none/base:1"\n')
    setup(rec)
    result = imgforge("render", str(recipe), "--out", str(tmp_path / "out"), timeout=30)
    assert result.returncode == 2
    assert expect in one_line_error(result)


@pytest.mark.parametrize(
    ("recipe", "key"),
    [
        ('[env]\n"A\\u001b[2J" = "x"\n', "env.A\\x1b[2J"),
        ('[files]\n"a\\u009bb" = "/x"\n', "files.a\\x9bb"),
        ('[apt]\npackages = ["-o=APT::x"]\n', "apt.packages[0]"),
        ('[run]\ncommands = ["\\u00a0"]\n', "run.commands[0]"),
        ('[files]\n"f" = "/.imgforge:staging/0"\n', "files.f"),
    ],
)
def test_hostile_fields_are_one_escaped_line(tmp_path: Path, recipe: str, key: str) -> None:
    path = write(tmp_path / "rec" / "r.toml", 'base = "example.org/none/base:1"\n' + recipe)
    write(tmp_path / "rec" / "f", "x\n")
    result = imgforge("render", str(path), "--out", str(tmp_path / "out"), timeout=60)
    assert result.returncode == 2
    line = one_line_error(result)
    assert key in line and "\x1b" not in line and "\x9b" not in line


def test_requirements_include_by_abbreviation_is_refused(tmp_path: Path) -> None:
    path = write(
        tmp_path / "rec" / "r.toml",
        'base = "example.org/none/base:1"\n[pip]\nrequirements = ["req.txt"]\n',
    )
    write(tmp_path / "rec" / "req.txt", "einops\x0c-r /etc/passwd\n")
    result = imgforge("render", str(path), "--out", str(tmp_path / "out"), timeout=60)
    assert result.returncode == 2
    assert "pip.requirements[0]" in one_line_error(result)


def test_multiline_run_cannot_open_a_def_section(tmp_path: Path) -> None:
    path = write(
        tmp_path / "rec" / "r.toml",
        'base = "example.org/none/base:1"\n[run]\n'
        'commands = ["echo a\\n%post\\nBootstrap: docker\\necho {{ HOME }}"]\n',
    )
    result = imgforge("render", str(path), "--out", str(tmp_path / "out"), timeout=60)
    assert result.returncode == 0, result.stderr
    deffile = (tmp_path / "out" / "r" / "r.def").read_text()
    starts = [line.split()[0] for line in deffile.splitlines() if line.strip().startswith("%")]
    assert starts == ["%files", "%post", "%environment", "%runscript", "%labels"]
    assert "{{" not in deffile
