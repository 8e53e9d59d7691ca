"""imgforge's SIFs judged by the real Apptainer: one recipe on the NGC stand-in with every
kind of value a recipe accepts, made into a SIF by the native backend, by the apptainer
backend and by ``apptainer build`` from the rendered .def, and compared with the Docker
image (``docker run``) and with the SIF Apptainer itself makes from the same image
(``apptainer build REF.sif docker-daemon:IMAGE``).

Runs wherever Apptainer is installed (on PATH, or under /opt/apptainer/bin); elsewhere it
skips, saying so: the only tests that may skip under CI=true.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import string
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors
import pytest
from support import installed_runtime, toml_string

from imgforge.cli import main
from imgforge.recipes.image import split_env
from imgforge.sif.runtime_env import differences, from_docker_run

RUNTIME = installed_runtime()
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        RUNTIME is None,
        reason="apptainer is not installed (neither on PATH nor in /opt/apptainer/bin)",
    ),
]

STANDIN_REF = "imgforge-standin/ngc-pytorch:24.01-py3"
NGC_REF = "nvcr.io/nvidia/pytorch:24.01-py3"
NAME = "itest-apptainer"
IMAGE = f"{NAME}:latest"
# Every kind of value a recipe's [env] accepts (no NUL, no line break): quotes of each
# kind, every expansion sh knows, backslashes, what .def parsers and Apptainer's embedded
# shell read specially, and text beyond ASCII.
TRICKY = {
    "T_APOSTROPHE": "hello from $HOME's \"myproj\"",
    "T_QUOTES": "it's \"double\" and 'single' '' \"\"",
    "T_BACKSLASH_QUOTE": "\\' \\\" \\\\' end\\",
    "T_DOLLAR": "$HOME ${HOME} ${HOME:-x} $$ $? $# $@ $* $0 $1 $(id) $((1+2)) `id`",
    "T_BACKSLASHES": "C:\\dir\\ \\\\ \\n \\t \\0 \\u000A trailing \\",
    "T_GLOB": "* ? [a-z] ~ ~root {a,b} !x",
    "T_SHELL": "; && || | > < >> 2>&1 & ( ) # not a comment",
    "T_DEF": "%post %environment {{ HOME }} {{x}} Bootstrap: docker",
    "T_SPACES": "  lead and trail  \t tab ",
    "T_EMPTY": "",
    "T_EQUALS": "a=b==c",
    "T_UNICODE": "naïve café ✓ 日本語 🚀 \u00a0nbsp \u2028ls",
    "T_CONTROL": "bell\x07 esc\x1b[0m del\x7f",
}
# And any value the recipe validator accepts (all but NUL, \n and \r), drawn from the whole
# range of characters with a fixed seed: each punctuation character alone and in pairs,
# then random strings.
ACCEPTED = "".join(chr(c) for c in range(1, 0x250) if chr(c) not in "\0\n\r") + "\u2028\u0085✓🚀"


def accepted_values(count: int) -> dict[str, str]:
    generator = random.Random(12)
    values = {f"T_PUNCT_{i}": f"{c}x{c}{c}" for i, c in enumerate(string.punctuation)}
    for index in range(count):
        size = generator.randint(1, 24)
        values[f"T_RANDOM_{index}"] = "".join(generator.choice(ACCEPTED) for _ in range(size))
    return values


TRICKY |= accepted_values(24)
LABEL = ("org.example.runtime", "real apptainer ✓ it's \"quoted\"")
# The image's ENTRYPOINT is the NGC entrypoint then printf, which prints each argument
# NUL-terminated: what a run prints is exactly the argv it ran.
RUNSCRIPT = "[runscript]\nentrypoint = \"printf '%s\\\\0'\"\ncommand = \"default 'two words'\"\n"
ARGUMENTS = [
    [],
    ["one"],
    ["a b", "  spaced  "],
    ["it's", '"double"', "'single'"],
    ["$HOME", "${PATH}", "$(id)", "`id`"],
    ["back\\slash", "trail\\", "\\$HOME"],
    ["", "--", "-x"],
]


def run(*command: str | Path, **options: object) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(  # type: ignore[call-overload, no-any-return]
        [str(word) for word in command],
        capture_output=True,
        timeout=600,
        stdin=subprocess.DEVNULL,
        **options,
    )


@pytest.fixture(scope="module", autouse=True)
def runtime_on_path() -> Iterator[None]:
    """The runtime's directory on PATH for this module only: imgforge finds it there (the
    apptainer backend, verify, doctor), and so does a SIF's launch line."""
    assert RUNTIME is not None
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PATH", f"{Path(RUNTIME.path).parent}:{os.environ.get('PATH', '')}")
        yield


@dataclass(frozen=True)
class Images:
    native: Path
    backend: Path
    definition: Path
    reference: Path
    recipes: Path
    out: Path


def build_definition(recipes: Path, out: Path) -> Path:
    """The SIF `apptainer build` makes from imgforge's rendered .def, run from the recipe's
    directory as the README says, its base taken from the engine (there is no registry)."""
    assert RUNTIME is not None
    rendered = out / NAME / f"{NAME}.def"
    text = rendered.read_text()
    header = f"Bootstrap: docker\nFrom: {STANDIN_REF}\n"
    assert header in text
    local = rendered.with_name(f"{NAME}.daemon.def")
    local.write_text(text.replace(header, f"Bootstrap: docker-daemon\nFrom: {STANDIN_REF}\n"))
    target = out / f"{NAME}.def.sif"
    done = run(RUNTIME.path, "build", target, os.path.relpath(local, recipes), cwd=recipes)
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
    return target


@pytest.fixture(scope="module")
def images(standin_image: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Images]:
    """The recipe built once: SIFs by both backends and Apptainer's own from the image."""
    assert RUNTIME is not None
    root = tmp_path_factory.mktemp("apptainer")
    recipes = root / "recipes"
    recipes.mkdir()
    (recipes / "imgforge.toml").write_text(f'[base_map]\n"{NGC_REF}" = "{STANDIN_REF}"\n')
    env = "".join(f"{key} = {toml_string(value)}\n" for key, value in TRICKY.items())
    recipe = recipes / f"{NAME}.toml"
    recipe.write_text(
        f'name = "{NAME}"\nbase = "{NGC_REF}"\n\n[env]\n{env}\n'
        f"[labels]\n{toml_string(LABEL[0])} = {toml_string(LABEL[1])}\n\n{RUNSCRIPT}"
    )
    out = root / "build"
    try:
        for backend, directory in (("native", out / "native"), ("apptainer", out / "backend")):
            command = ["build", str(recipe), "--out", str(directory), "--singularity", backend]
            assert main(command) == 0
        reference = root / "reference.sif"
        done = run(RUNTIME.path, "build", reference, f"docker-daemon:{IMAGE}")
        assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
        yield Images(
            native=out / "native" / NAME / f"{NAME}.sif",
            backend=out / "backend" / NAME / f"{NAME}.sif",
            definition=build_definition(recipes, out / "native"),
            reference=reference,
            recipes=recipes,
            out=out,
        )
    finally:
        with contextlib.suppress(docker.errors.ImageNotFound):
            docker.from_env().images.remove(IMAGE, force=True)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(params=["native", "backend", "definition"])
def sif(request: pytest.FixtureRequest, images: Images) -> Path:
    """Each SIF of the recipe: imgforge's two, and Apptainer's from the rendered .def."""
    path: Path = getattr(images, request.param)
    return path


def docker_env() -> dict[str, str]:
    done = run("docker", "run", "--rm", "--entrypoint", "/usr/bin/env", IMAGE, "-0", check=True)
    entries = done.stdout.decode("utf-8", "surrogateescape").split("\0")
    return dict(split_env(entry) for entry in entries if entry)


def test_exec_cleanenv_env_is_the_docker_env(images: Images, sif: Path) -> None:
    assert RUNTIME is not None
    docker = docker_env()
    assert {k: docker[k] for k in TRICKY} == TRICKY
    assert len(docker) > 60  # the NGC config's Env
    seen = RUNTIME.exec_env(sif)
    assert differences(from_docker_run(docker), seen) == []
    assert {k: seen[k] for k in TRICKY} == TRICKY


def test_apptainers_own_sif_of_the_same_image_differs(images: Images) -> None:
    """Why imgforge writes the SIF itself: Apptainer's conversion lets the host win and
    (before 1.5) mangles values; this records what the installed version does."""
    assert RUNTIME is not None
    seen = RUNTIME.exec_env(images.reference)
    if RUNTIME.version >= (1, 5, 0):
        assert {k: seen.get(k) for k in TRICKY} == TRICKY


def argv(output: bytes) -> list[str]:
    assert output.endswith(b"\0"), output
    return output[:-1].decode("utf-8", "surrogateescape").split("\0")


@pytest.mark.parametrize("arguments", ARGUMENTS, ids=lambda a: repr(a)[:30])
def test_run_no_eval_runs_what_docker_runs(sif: Path, arguments: list[str]) -> None:
    assert RUNTIME is not None
    docker = run("docker", "run", "--rm", IMAGE, *arguments, check=True)
    apptainer = run(RUNTIME.path, "run", "--no-eval", sif, *arguments, check=True)
    expected = arguments or ["default", "two words"]
    assert argv(docker.stdout) == expected
    assert argv(apptainer.stdout) == expected


@pytest.mark.parametrize("arguments", ARGUMENTS, ids=lambda a: repr(a)[:30])
def test_run_evaluates_arguments_as_for_apptainers_own_sif(
    images: Images, sif: Path, arguments: list[str]
) -> None:
    """Without --no-eval, Apptainer's shell evaluates the arguments (its default for every
    image from Docker): imgforge's SIF does what Apptainer's own SIF does."""
    assert RUNTIME is not None
    env = {**os.environ, "HOME": "/root"}
    ours = run(RUNTIME.path, "run", sif, *arguments, env=env)
    theirs = run(RUNTIME.path, "run", images.reference, *arguments, env=env)
    assert (ours.returncode, ours.stdout) == (theirs.returncode, theirs.stdout)


def test_the_sif_runs_as_a_program(sif: Path) -> None:
    """``./image.sif ARGS`` is ``apptainer run image.sif ARGS`` (its launch line)."""
    assert RUNTIME is not None
    assert os.stat(sif).st_mode & 0o777 == 0o755
    direct = run(sif, "x", "y z", check=True)
    assert argv(direct.stdout) == ["x", "y z"]
    assert direct.stdout == run(RUNTIME.path, "run", sif, "x", "y z", check=True).stdout


def test_env_options_override_image_values(sif: Path) -> None:
    assert RUNTIME is not None
    path = RUNTIME.path
    printed = run(path, "exec", "--cleanenv", "--env", "T_QUOTES=x'y", sif, "printenv", "T_QUOTES")
    assert printed.stdout == b"x'y\n"
    env = {**os.environ, "APPTAINERENV_T_EMPTY": "set"}
    printed = run(path, "exec", "--cleanenv", sif, "printenv", "T_EMPTY", env=env)
    assert printed.stdout == b"set\n"
    # Without --cleanenv the image's values still win over the host's (as in docker run).
    env = {**os.environ, "T_DOLLAR": "host"}
    printed = run(path, "exec", sif, "printenv", "T_DOLLAR", env=env)
    assert printed.stdout.decode() == TRICKY["T_DOLLAR"] + "\n"


def test_home_and_pwd_are_the_runtimes(sif: Path, tmp_path: Path) -> None:
    assert RUNTIME is not None
    home = tmp_path / "home"
    home.mkdir()
    shown = run(RUNTIME.path, "exec", "--home", home, sif, "sh", "-c", 'printf %s "$HOME"')
    assert shown.stdout.decode() == str(home)
    shown = run(RUNTIME.path, "exec", "--pwd", "/opt", sif, "sh", "-c", "pwd")
    assert shown.stdout == b"/opt\n"


def test_test_action_as_for_apptainers_own_sif(images: Images, sif: Path) -> None:
    assert RUNTIME is not None
    ours = run(RUNTIME.path, "test", sif)
    theirs = run(RUNTIME.path, "test", images.reference)
    assert (ours.returncode, ours.stdout) == (theirs.returncode, theirs.stdout)
    assert ours.returncode == 0


def test_inspect_answers_from_the_sif_without_starting_it(sif: Path) -> None:
    assert RUNTIME is not None
    done = run(RUNTIME.path, "--debug", "inspect", "--json", "--all", sif, check=True)
    assert b"Using inspect-metadata.json SIF descriptor" in done.stderr
    attributes = json.loads(done.stdout)["data"]["attributes"]
    assert attributes["labels"][LABEL[0]] == LABEL[1]
    assert attributes["labels"]["org.label-schema.schema-version"] == "1.0"
    assert "OCI_ENTRYPOINT=" in attributes["runscript"]
    assert attributes["deffile"]
    environment = attributes["environment"]
    assert "/.singularity.d/env/10-docker2singularity.sh" in environment
    assert "export T_APOSTROPHE=" in environment["/.singularity.d/env/10-docker2singularity.sh"]


def test_inspect_as_for_apptainers_own_sif(images: Images, sif: Path) -> None:
    """The same labels (build labels aside) and the same runscript behaviour."""
    assert RUNTIME is not None
    ours, theirs = RUNTIME.inspect(sif), RUNTIME.inspect(images.reference)
    built_by = ("org.label-schema.", "org.opencontainers.image.")
    assert {k: v for k, v in ours["labels"].items() if not k.startswith(built_by)} == {
        k: v for k, v in theirs["labels"].items() if not k.startswith(built_by)
    }


@pytest.mark.parametrize("backend", ["native", "backend"])
def test_verify_runs_the_sif(
    images: Images, capsys: pytest.CaptureFixture[str], backend: str
) -> None:
    assert RUNTIME is not None
    assert main(["verify", NAME, "--deep", "--out", str(images.out / backend)]) == 0
    assert f"ran it with {RUNTIME.label}" in capsys.readouterr().out


def test_verify_ignores_the_callers_runtime_settings(
    images: Images, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert RUNTIME is not None
    monkeypatch.setenv("APPTAINERENV_T_EMPTY", "from the caller")
    monkeypatch.setenv("APPTAINER_NO_EVAL", "1")
    assert main(["verify", NAME, "--out", str(images.out / "native")]) == 0
    assert f"ran it with {RUNTIME.label}" in capsys.readouterr().out


def test_doctor_names_the_runtime(capsys: pytest.CaptureFixture[str]) -> None:
    assert RUNTIME is not None
    main(["doctor"])
    assert RUNTIME.label in capsys.readouterr().out
