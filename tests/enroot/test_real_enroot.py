"""imgforge's enroot images judged by the real enroot: the ``.sqsh`` of a recipe on the NGC
stand-in against ``docker run`` of the same image (environment, argv, working directory)
and against what ``enroot import dockerd://`` makes of it (the same tree, the same
/etc/environment, /etc/rc, /etc/rc.local and /etc/fstab); and each variable imgforge
refuses for enroot is one the real enroot changes, each one it accepts one enroot keeps.

Runs wherever enroot is installed (on PATH, or under /opt/enroot/bin); elsewhere it skips,
saying so, as the Apptainer suite does. docs/ENROOT.md says how it was installed here.
"""

from __future__ import annotations

import contextlib
import io
import os
import random
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors
import pytest
from support import toml_string

from imgforge.cli import main
from imgforge.enroot.lint import env_problem

ENROOT_HOME = Path("/opt/enroot/bin")
ENROOT = shutil.which("enroot") or (
    str(ENROOT_HOME / "enroot") if (ENROOT_HOME / "enroot").is_file() else None
)
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        ENROOT is None, reason="enroot is not installed (neither on PATH nor in /opt/enroot/bin)"
    ),
]

STANDIN = "imgforge-standin/ngc-pytorch:24.01-py3"
BASE = "itest-enroot-base:1"
# A base with what recipes can't set: volumes, a working directory with a space, a label
# with a line break.
BASE_DOCKERFILE = f"""\
FROM {STANDIN}
VOLUME ["/data", "/cache"]
WORKDIR "/work dir"
LABEL org.example.note="two\\nlines"
"""
# What `enroot start` sets itself (docs/ENROOT.md): the shell running /etc/rc (PWD, SHLVL,
# OLDPWD), conf/environ/10-terminal.env (TERM), the login step where the image has none
# (HOME, USER, LOGNAME, SHELL); HOSTNAME is Docker's own.
OWNED = {"PWD", "SHLVL", "OLDPWD", "TERM", "HOME", "USER", "LOGNAME", "SHELL", "HOSTNAME"}
# Values enroot keeps, and values it changes (it substitutes ${NAME} from the host, strips
# surrounding quotes, drops ENROOT_* names).
KEPT = {
    "E_DOLLAR": "$HOME $(id) `id` $$ ${HOME:-x} ${1}",
    "E_QUOTES": "it's \"double\" 'single'",
    "E_HALF": '"half',
    "E_INNER": '"a" b',
    "E_BACKSLASH": "C:\\dir\\ \\n \\\\",
    "E_SPACES": "  lead and trail  \t",
    "E_EMPTY": "",
    "E_EQUALS": "a=b==c",
    "E_UNICODE": "naïve ✓ 日本語 🚀",
    "E_CONTROL": "bell\x07 esc\x1b[0m",
}
CHANGED = {
    "E_BRACED": "${HOME}/.cache",
    "E_DOUBLE_QUOTED": '"quoted"',
    "E_SINGLE_QUOTED": "'quoted' ",
    "ENROOT_MINE": "x",
}
ARGUMENTS = [
    ["printf", "%s\\0", "a b", "  spaced  "],
    ["printf", "%s\\0", "it's", '"double"', "$HOME", "${PATH}", "`id`", ""],
    ["pwd"],
]


def accepted(count: int) -> dict[str, str]:
    """Random values a recipe accepts (no NUL, \\n, \\r), with a fixed seed."""
    chars = "".join(chr(c) for c in range(1, 0x180) if chr(c) not in "\0\n\r") + "✓🚀"
    generator = random.Random(15)
    return {
        f"E_RANDOM_{i}": "".join(generator.choice(chars) for _ in range(generator.randint(1, 20)))
        for i in range(count)
    }


def run(*command: str | Path, **options: object) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(  # type: ignore[call-overload, no-any-return]
        [str(word) for word in command],
        capture_output=True,
        timeout=900,
        stdin=subprocess.DEVNULL,
        **options,
    )


@dataclass(frozen=True)
class Enroot:
    env: dict[str, str]

    def __call__(self, *args: str | Path, login: bool = True) -> bytes:
        env = dict(self.env, ENROOT_LOGIN_SHELL="y" if login else "n")
        done = run(ENROOT or "enroot", *args, env=env)
        assert done.returncode == 0, done.stderr.decode(errors="replace")
        return bytes(done.stdout)


@pytest.fixture(scope="module")
def enroot(tmp_path_factory: pytest.TempPathFactory) -> Enroot:
    """enroot with its own data, cache and runtime directories, and no GPU hook."""
    root = tmp_path_factory.mktemp("enroot")
    env = dict(os.environ)
    env["PATH"] = f"{Path(ENROOT or '').parent}:{env.get('PATH', '')}"
    for name in ("RUNTIME", "CACHE", "DATA", "TEMP"):
        (root / name).mkdir(mode=0o700)
        env[f"ENROOT_{name}_PATH"] = str(root / name)
    env["NVIDIA_VISIBLE_DEVICES"] = "void"  # no GPU here: the nvidia hook does nothing
    env["TERM"] = "xterm"
    return Enroot(env)


@dataclass(frozen=True)
class Built:
    image: str
    sqsh: Path  # imgforge's
    imported: Path  # enroot import dockerd://IMAGE


def recipe_text(name: str, env: dict[str, str]) -> str:
    lines = [f'name = "{name}"', f'base = "{BASE}"', "[env]"]
    lines += [f"{key} = {toml_string(value)}" for key, value in env.items()]
    lines += ["[runscript]", 'command = "env -0"']
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def base(standin_image: str) -> Iterator[str]:
    client = docker.from_env()
    client.images.build(fileobj=io.BytesIO(BASE_DOCKERFILE.encode()), tag=BASE, rm=True)
    yield BASE
    with contextlib.suppress(docker.errors.ImageNotFound):
        client.images.remove(BASE, force=True)


def imported(enroot: Enroot, image: str, where: Path) -> Path:
    target = where / f"{image.replace(':', '+')}.imported.sqsh"
    enroot("import", "--output", target, f"dockerd://{image}")
    return target


@pytest.fixture(scope="module")
def carried(base: str, enroot: Enroot, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    """A recipe with every value enroot keeps, built with --sqsh."""
    root = tmp_path_factory.mktemp("carried")
    env = KEPT | {k: v for k, v in accepted(24).items() if env_problem(k, v) is None}
    (root / "itest-enroot.toml").write_text(recipe_text("itest-enroot", env))
    out = root / "out"
    argv = ["build", str(root / "itest-enroot.toml"), "--out", str(out), "--sqsh"]
    assert main([*argv, "--singularity", "none", "--compression", "lzo"]) == 0
    image = "itest-enroot:latest"
    yield Built(image, out / "itest-enroot" / "itest-enroot.sqsh", imported(enroot, image, root))
    with contextlib.suppress(docker.errors.ImageNotFound):
        docker.from_env().images.remove(image, force=True)


def docker_run(image: str, *args: str) -> bytes:
    done = run("docker", "run", "--rm", "--network", "host", image, *args)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    return bytes(done.stdout)


def environ(output: bytes) -> dict[str, str]:
    pairs = (entry.decode().partition("=") for entry in output.split(b"\0") if entry)
    return {name: value for name, _, value in pairs}


def listing(image: Path) -> list[str]:
    """``unsquashfs -lln`` without times and directory sizes (a squashfs-internal figure)."""
    lines = run("unsquashfs", "-lln", image).stdout.decode(errors="surrogateescape")
    out = []
    for line in lines.splitlines():
        fields = line.split(None, 5)
        if len(fields) == 6:
            mode, owner, size, _, _, path = fields
            out.append(f"{mode} {owner} {'' if mode.startswith('d') else size} {path}")
    return sorted(out)


def test_the_same_tree_as_enroots_import(carried: Built) -> None:
    ours = listing(carried.sqsh)
    assert len(ours) > 1000 and any(line.endswith(" squashfs-root/etc/rc") for line in ours)
    assert ours == listing(carried.imported)


@pytest.mark.parametrize("name", ["etc/environment", "etc/rc", "etc/rc.local", "etc/fstab"])
def test_enroots_files_byte_for_byte(carried: Built, name: str) -> None:
    ours = run("unsquashfs", "-cat", carried.sqsh, name)
    theirs = run("unsquashfs", "-cat", carried.imported, name)
    assert ours.returncode == theirs.returncode == 0
    assert ours.stdout == theirs.stdout


def test_the_environment_is_dockers(carried: Built, enroot: Enroot) -> None:
    """Byte for byte but for what enroot sets itself; PATH too without the login shell
    (with it, the image's Debian /etc/profile sets PATH, as imgforge warns)."""
    docker_env = environ(docker_run(carried.image))
    for login in (False, True):
        enroot_env = environ(enroot("start", carried.sqsh, login=login))
        ignored = OWNED | ({"PATH"} if login else set())
        assert {k: v for k, v in enroot_env.items() if k not in ignored} == {
            k: v for k, v in docker_env.items() if k not in ignored
        }
    assert set(KEPT) <= set(docker_env)


@pytest.mark.parametrize("args", ARGUMENTS, ids=lambda a: " ".join(a) or "no-args")
def test_argv_and_working_directory_are_dockers(
    carried: Built, enroot: Enroot, args: list[str]
) -> None:
    assert enroot("start", carried.sqsh, *args) == docker_run(carried.image, *args)


def test_volumes_are_mounted(carried: Built, enroot: Enroot) -> None:
    out = enroot("start", carried.sqsh, "sh", "-c", "test -d /data && test -d /cache && echo ok")
    assert out == b"ok\n"


def test_what_imgforge_refuses_is_what_enroot_changes(
    base: str, enroot: Enroot, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A recipe with values enroot keeps and values it changes: --sqsh refuses it, naming a
    changed one; the Docker image imported by the real enroot shows exactly those changed."""
    recipe = tmp_path / "itest-enroot-refused.toml"
    values = KEPT | CHANGED
    recipe.write_text(recipe_text("itest-enroot-refused", values))
    argv = ["build", str(recipe), "--out", str(tmp_path / "out"), "--singularity", "none"]
    assert main([*argv, "--sqsh"]) == 2
    said = capsys.readouterr().err
    assert any(f"env.{name}: --sqsh: " in said for name in CHANGED)
    assert main(argv) == 0
    image = "itest-enroot-refused:latest"
    try:
        sqsh = imported(enroot, image, tmp_path)
        under_enroot = environ(enroot("start", sqsh, login=False))
        under_docker = environ(docker_run(image))
    finally:
        with contextlib.suppress(docker.errors.ImageNotFound):
            docker.from_env().images.remove(image, force=True)
    for name, value in values.items():
        assert under_docker[name] == value
        assert (under_enroot.get(name) == value) is (env_problem(name, value) is None), name
