"""imgforge as users get it: the sdist and wheel that ``python -m build`` makes, installed
into a new virtual environment and run from a directory outside the checkout.

An audit hook in that environment records every file the installed imgforge opens or
lists; nothing may come from the checkout. The SIF it builds is read back by Sylabs'
siftool and by the installed ``imgforge verify``."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tarfile
import venv
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from imgforge import __version__

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SOURCE_FILES = sorted(
    path.relative_to(REPO).as_posix()
    for path in (REPO / "imgforge").rglob("*")
    if path.is_file() and "__pycache__" not in path.parts
)
NGC = "nvcr.io/nvidia/pytorch:24.01-py3"
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Written into the test venv's site-packages: each interpreter start imports the hook.
GUARD = """\
import atexit, os, sys
_checkout = os.environ["IMGFORGE_TEST_CHECKOUT"].rstrip("/") + "/"
_seen = []
def _hook(event, args):
    if event in ("open", "os.listdir", "os.scandir") and args and isinstance(args[0], str):
        path = os.path.abspath(args[0])
        if path.startswith(_checkout) or path == _checkout[:-1]:
            _seen.append(f"{event} {path}")
def _report():
    if _seen:
        with open(os.environ["IMGFORGE_TEST_READS"], "a", encoding="utf-8") as log:
            log.write("".join(line + "\\n" for line in _seen))
sys.addaudithook(_hook)
atexit.register(_report)
"""
DEFFILE = """\
Bootstrap: docker
From: ubuntu:22.04

%post
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends curl
    apt-get clean
    rm -rf /var/lib/apt/lists/*
"""
SMALL_RECIPE = """\
name = "wheelcheck"
tag = "1.0"
base = "{base}"

[env]
WHEEL_GREETING = "it's \\"installed\\" $HOME"

[files]
"app/" = "/opt/wheelcheck/"

[run]
commands = ["test -f /opt/wheelcheck/main.py"]

[labels]
"org.example.origin" = "wheel"

[runscript]
command = "python3 /opt/wheelcheck/main.py"
"""


@dataclass(frozen=True)
class Installed:
    """A venv holding only the built wheel (and its dependencies), and a work dir."""

    venv: Path
    work: Path
    reads: Path
    wheel: Path
    sdist: Path

    def run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        env = {
            key: value
            for key, value in os.environ.items()
            if key not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")
        }
        env.update(
            PATH=f"{self.venv / 'bin'}:{SYSTEM_PATH}",
            IMGFORGE_TEST_CHECKOUT=str(REPO),
            IMGFORGE_TEST_READS=str(self.reads),
        )
        result = subprocess.run(
            [str(self.venv / "bin" / "imgforge"), *argv],
            cwd=self.work,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        if check:
            assert result.returncode == 0, f"imgforge {' '.join(argv)}:\n{result.stderr}"
        return result


def built_distributions(target: Path) -> tuple[Path, Path]:
    """``python -m build`` of the checkout: the sdist, then the wheel built from it."""
    subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(target), str(REPO)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    (sdist,) = target.glob("imgforge-*.tar.gz")
    (wheel,) = target.glob("imgforge-*.whl")
    return sdist, wheel


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory, standin_image: str) -> Iterator[Installed]:
    root = tmp_path_factory.mktemp("wheel")
    sdist, wheel = built_distributions(root / "dist")
    environment = root / "venv"
    venv.EnvBuilder(with_pip=True, clear=True).create(environment)
    python = environment / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", str(wheel)],
        check=True,
        capture_output=True,
        timeout=900,
    )
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    Path(site, "_imgforge_checkout_guard.py").write_text(GUARD, encoding="utf-8")
    Path(site, "_imgforge_checkout_guard.pth").write_text("import _imgforge_checkout_guard\n")
    work = root / "work"
    work.mkdir()
    yield Installed(environment, work, root / "reads.log", wheel, sdist)


@pytest.fixture(autouse=True)
def nothing_read_from_the_checkout(installed: Installed) -> Iterator[None]:
    installed.reads.unlink(missing_ok=True)
    yield
    reads = installed.reads.read_text() if installed.reads.exists() else ""
    assert reads == "", f"the installed imgforge read the checkout:\n{reads}"


def test_wheel_and_sdist_carry_every_package_file(installed: Installed) -> None:
    with zipfile.ZipFile(installed.wheel) as wheel:
        in_wheel = {name for name in wheel.namelist() if name.startswith("imgforge/")}
    with tarfile.open(installed.sdist) as sdist:
        prefix = f"imgforge-{__version__}/"
        in_sdist = {m.name.removeprefix(prefix) for m in sdist.getmembers() if m.isfile()}
    assert set(SOURCE_FILES) - in_wheel == set()
    assert set(SOURCE_FILES) - in_sdist == set()
    assert any(name.startswith("imgforge/render/templates/sif/") for name in in_wheel)


def test_runs_from_the_venv_not_the_checkout(installed: Installed) -> None:
    lines = installed.run("--version", "-v").stdout.splitlines()
    assert lines[0] == f"imgforge {__version__}"
    location = next(line for line in lines if line.startswith("installed at "))
    assert location.removeprefix("installed at ").startswith(str(installed.venv))
    assert re.fullmatch(r"spython \d+\.\d+.*", next(x for x in lines if x.startswith("spython")))


def test_schema_init_and_import(installed: Installed) -> None:
    printed = json.loads(installed.run("schema").stdout)
    installed.run("schema", "--out", "written.schema.json")
    assert json.loads((installed.work / "written.schema.json").read_text()) == printed
    assert "# Recipe reference" in installed.run("schema", "--format", "markdown").stdout
    project = installed.work / "initialised"
    project.mkdir()
    installed.run("init", "first", "--base", NGC, "--dir", project.name)
    text = (project / "first.toml").read_text()
    assert text.startswith("#:schema ./recipe.schema.json\n")
    assert json.loads((project / "recipe.schema.json").read_text()) == printed
    (project / "Dockerfile").write_text("FROM ubuntu:22.04\nRUN apt-get install -y curl\n")
    installed.run("import", "initialised/Dockerfile", "--name", "imported")
    assert (project / "imported.toml").read_text().startswith("#:schema ./recipe.schema.json\n")
    (project / "legacy.def").write_text(DEFFILE)
    installed.run("import", "initialised/legacy.def")
    assert 'packages = ["curl"]' in (project / "legacy.toml").read_text()
    (project / "app.def").write_text("Bootstrap: library\nFrom: alpine\n%test\n    true\n")
    refused = installed.run("import", "initialised/app.def", check=False)
    assert refused.returncode == 2 and "Bootstrap: library" in refused.stderr


def test_render_build_verify_graph_doctor(installed: Installed, standin_image: str) -> None:
    recipes = installed.work / "recipes"
    (recipes / "app").mkdir(parents=True)
    (recipes / "app" / "main.py").write_text("print('hello from the wheel')\n")
    (recipes / "wheelcheck.toml").write_text(SMALL_RECIPE.format(base=standin_image))
    installed.run("render", "recipes/wheelcheck.toml", "--out", "out")
    assert (installed.work / "out" / "wheelcheck" / "wheelcheck.def").is_file()
    installed.run(
        "build", "recipes/wheelcheck.toml", "--out", "out", "--singularity", "native",
        "--network", "host",
    )  # fmt: skip
    sif = installed.work / "out" / "wheelcheck" / "wheelcheck.sif"
    listing = subprocess.run(
        ["siftool", "list", str(sif)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert "Squashfs" in listing and "Def.FILE" in listing and "JSON.Generic" in listing
    installed.run("verify", "wheelcheck", "--out", "out", "--deep")
    installed.run(
        "build", "recipes/wheelcheck.toml", "--out", "committed", "--strategy", "commit",
        "--singularity", "native", "--format", "simg", "--network", "host",
    )  # fmt: skip
    assert (installed.work / "committed" / "wheelcheck" / "wheelcheck.simg").stat().st_size > 0
    assert "wheelcheck" in installed.run("graph", "recipes").stdout
    installed.run("doctor", "--singularity", "native")
    assert "_imgforge()" in installed.run("completion", "bash").stdout
