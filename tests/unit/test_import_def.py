"""imgforge import FILE.def: real-world definition files become recipes that mean the same
(checked through imgforge's renderer and spython's parser, and by running %post both
ways), or are refused with the complete list of what a recipe can't express."""

from __future__ import annotations

import json
import os
import posixpath
import shlex
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from spython.main.parse.parsers import SingularityParser

from imgforge.authoring.shellwords import literal_words
from imgforge.cli import main
from imgforge.patterns import APT_RE, LABEL_KEY_RE
from imgforge.recipes.envnames import carried
from imgforge.recipes.image import ImageConfig
from imgforge.recipes.model import Recipe, load
from imgforge.render.quoting import sh_quote
from imgforge.sif.read import parse_runscript

DEFS = Path(__file__).parents[1] / "data" / "defs"
NGC = "nvcr.io/nvidia/pytorch:24.01-py3"
SMALL_BASE = ImageConfig(env=("PATH=/usr/local/bin:/usr/bin:/bin",), workdir="/workspace")
HEADER = "Bootstrap: docker\nFrom: ubuntu:22.04\n"
RUN_PREFIX = "cd /\nset -ex\n"
NO_DEADLINE = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
Rendered = dict[str, dict[str, str]]


@pytest.fixture
def defs(tmp_path: Path) -> Path:
    """A copy of tests/data/defs (imports write beside the .def)."""
    return Path(shutil.copytree(DEFS, tmp_path / "defs"))


def error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.endswith("\n") and err.count("\n") == 1, err
    return err.rstrip("\n")


def imported(path: Path, *args: str) -> Recipe:
    """Import ``path`` through the CLI (exit 0) and load the recipe it wrote."""
    before = set(path.parent.glob("*.toml"))
    assert main(["import", str(path), *args]) == 0
    (written,) = set(path.parent.glob("*.toml")) - before
    return load(written)


def read_def(text: str) -> Any:
    """spython's reading of a .def's text. spython raises NotImplementedError for any
    bootstrap agent but docker, so a localimage header is read as docker here."""
    parser = SingularityParser(None, load=False)
    parser.lines = text.replace("Bootstrap: localimage", "Bootstrap: docker").split("\n")
    parser.parse()
    return parser.recipe[parser.active_layer]


def env_of(parsed: Any) -> dict[str, str]:
    words = (w for entry in parsed.environ for w in shlex.split(entry, comments=True))
    return dict(word.partition("=")[::2] for word in words)


def labels_of(parsed: Any) -> dict[str, str]:
    pairs = (line.partition(" ") for line in parsed.labels if not line.startswith("#"))
    return {key.strip(): value.strip() for key, _, value in pairs}


def runscript_of(parsed: Any) -> list[str]:
    words = shlex.split(parsed.cmd)
    return words[1:] if words[0] == "exec" else words


def targets_in_original(parsed: Any, directory: Path) -> set[tuple[str, str]]:
    """Where Apptainer's ``cp -fLr`` puts each %files source, on a base without them."""
    found = set()
    for line in parsed.files:
        source, dest = line.split()
        name = posixpath.basename(posixpath.normpath(source))
        found.add((posixpath.normpath(source), dest + name if dest.endswith("/") else dest))
    return found


def targets_in_rendered(parsed: Any) -> set[tuple[str, str]]:
    """Where the rendered .def's %post copies each staged %files source."""
    staged = dict(reversed(line.split()) for line in parsed.files[1:])
    return {
        (posixpath.normpath(staged[stage.removesuffix("/.")]), target)
        for stage, target in map(copied, parsed.install)
        if stage
    }


def copied(line: str) -> tuple[str, str]:
    """(staged source, target) of a %post copy line: ``cp -a S T``, or for a file the
    ``if [ -d T ]; then cp -a S T/NAME; else cp -a S T; fi`` that COPY's rule needs."""
    if not line.startswith(("cp -a ", "if [ -d ")):
        return "", ""
    words = shlex.split(line.replace(";", " ;"))
    if words[:2] == ["cp", "-a"]:
        return words[2], words[3]
    if words[:3] == ["if", "[", "-d"]:
        at = words.index("else")
        return words[at + 3], words[at + 4]
    return "", ""


def sh_c_steps(rendered_def: Any) -> list[str]:
    """The commands of the rendered %post's ``/bin/sh -c -- '...'`` steps, in order: each
    the lines up to where its quoted string closes (spython appends a runscript of several
    lines)."""
    lines, steps = rendered_def.install, []
    starts = [i for i, line in enumerate(lines) if line.startswith("/bin/sh -c -- ")]
    for start in starts:
        for end in range(start + 1, len(lines) + 1):
            try:
                words = shlex.split("\n".join(lines[start:end]))
            except ValueError:  # the quoted script goes on
                continue
            assert words[:3] == ["/bin/sh", "-c", "--"] and len(words) == 4
            steps.append(words[3])
            break
    assert steps, "no /bin/sh -c step"
    return steps


def run_script(rendered_def: Any) -> str:
    """The script of the rendered %post's last ``/bin/sh -c`` step."""
    return sh_c_steps(rendered_def)[-1]


def statements(lines: list[str]) -> list[str]:
    return [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]


# Accepted: what each real-world file becomes.


def test_ngc_def_becomes_apt_pip_and_one_run_script(defs: Path) -> None:
    recipe = imported(defs / "ngc-pytorch.def")
    assert (recipe.name, recipe.base) == ("ngc-pytorch", NGC)
    assert recipe.apt_packages == ("ffmpeg", "libgl1", "libsndfile1")
    assert recipe.pip_packages == ("einops==0.8.0", "timm==0.9.16", "soundfile==0.12.1")
    assert recipe.run_commands == (
        RUN_PREFIX + "    # Scratch directories bound at run time\n"
        "    mkdir -p /scratch /data\n"
        "    for d in /scratch /data; do\n"
        '        chmod 1777 "$d"\n'
        "    done\n"
        "    cat > /etc/motd <<'MOTD'\n"
        "  NGC PyTorch 24.01 + lab packages\n"
        "MOTD\n"
        "\n",
    )
    assert dict(recipe.labels) == {
        "maintainer": "hpc-support@example.org",
        "org.example.base": NGC,
        "org.example.version": "2024.02",
    }
    assert (recipe.entrypoint, recipe.env, recipe.files) == ("python3", (), ())


def test_pip_and_and_chains_stay_in_one_run_command(defs: Path) -> None:
    """``pip install`` may be another interpreter's pip, and sh -e ignores a failure
    before the last command of an ``&&`` chain: neither is what [apt]/[pip] do. The
    leading ``set -e`` goes: Apptainer runs %post with -ex already."""
    recipe = imported(defs / "hpc-apex.def")
    post = (defs / "hpc-apex.def").read_text().split("%post\n    set -e\n")[1]
    assert recipe.apt_packages == recipe.pip_packages == ()
    assert recipe.run_commands == (RUN_PREFIX + post.split("\n%labels")[0].rstrip("\n") + "\n",)
    assert dict(recipe.labels) == {"Author": "research-computing@example.edu"}


def test_files_environment_labels_and_runscript(defs: Path) -> None:
    recipe = imported(defs / "app.def")
    assert recipe.files == (
        ("app/", "/opt/app/"),
        ("configs/default.yaml", "/etc/trainer/config.yaml"),
        ("requirements.txt", "/opt/app/"),
    )
    assert dict(recipe.env) == {
        "LC_ALL": "C.UTF-8",
        "TRAINER_CONFIG": "/etc/trainer/config.yaml",
        "HF_HOME": "/scratch/hf-cache",
        "WANDB_MODE": "offline",
    }
    # The top exports repeat %environment (which %post can't see): [env] does that.
    assert recipe.run_commands == (
        RUN_PREFIX + "    pip install --no-cache-dir -r /opt/app/requirements.txt\n"
        "    python -m compileall -q /opt/app\n",
    )
    assert recipe.entrypoint == "python /opt/app/train.py --config /etc/trainer/config.yaml"
    assert dict(recipe.labels)["org.opencontainers.image.title"] == "Trainer"


@pytest.mark.parametrize(
    "source", ["../build/common/common.sif", "common.sif", "/home/me/out/common/common.simg"]
)
def test_localimage_of_an_imgforge_artifact_becomes_its_recipe(defs: Path, source: str) -> None:
    (defs / "common.toml").write_text(f'base = "{NGC}"\n')
    path = defs / "extension.def"
    path.write_text(path.read_text().replace("../build/common/common.sif", source))
    recipe = imported(path)
    assert (recipe.base, recipe.pip_packages) == ("recipe:common", ("ninja==1.11.1.1",))
    assert recipe.run_commands == (
        RUN_PREFIX + "    cd /opt\n"
        "    mkdir -p ext && cd ext\n"
        "    echo 'built in' \"$(pwd)\" > BUILD_INFO\n",
    )


def test_the_written_recipe_names_its_source_and_explains_run_and_runscript(defs: Path) -> None:
    imported(defs / "ngc-pytorch.def")
    text = (defs / "ngc-pytorch.toml").read_text()
    assert "# Imported by imgforge" in text and "from ngc-pytorch.def." in text
    assert "# [run] is %post after its apt/pip lines, run as Apptainer runs it:\n" in text
    assert "# [runscript] entrypoint runs after the base image's ENTRYPOINT" in text
    assert "commands = [\n    '''\ncd /\nset -ex\n" in text  # multi-line, byte for byte


def test_post_may_set_an_environment_variable_first_to_another_value(tmp_path: Path) -> None:
    """Nothing in %post runs before its own export, so nothing sees [env]'s value; the
    export stays (and keeps [apt] from taking the apt lines after it)."""
    post = "    export LC_ALL=C\n    apt-get update\n    locale\n"
    (tmp_path / "x.def").write_text(f"{HEADER}%environment\n    LC_ALL=C.UTF-8\n%post\n{post}")
    recipe = imported(tmp_path / "x.def")
    assert dict(recipe.env) == {"LC_ALL": "C.UTF-8"}
    assert recipe.run_commands == (RUN_PREFIX + post,)


@pytest.mark.parametrize("agent", ["docker", "docker-daemon"])
def test_an_image_bootstrap_gives_the_image(tmp_path: Path, agent: str) -> None:
    (tmp_path / "x.def").write_text(f"Bootstrap: {agent}\nFrom: {NGC}  # pinned\n")
    assert imported(tmp_path / "x.def").base == NGC


# Which importer: by content, or a .def suffix; the default name.


def test_content_decides_between_dockerfile_and_def(tmp_path: Path) -> None:
    (tmp_path / "Singularity").write_text(f"# old-style name\n\n{HEADER}")
    (tmp_path / "Containerfile").write_text("FROM ubuntu:22.04\nRUN echo hi\n")
    assert imported(tmp_path / "Singularity", "--name", "from-def").base == "ubuntu:22.04"
    recipe = imported(tmp_path / "Containerfile", "--name", "from-docker")
    assert recipe.run_commands == ("echo hi",)  # the Dockerfile importer's translation


def test_a_def_is_named_after_its_file_a_dockerfile_after_its_directory(tmp_path: Path) -> None:
    (tmp_path / "My_Tools.def").write_text(HEADER)
    assert imported(tmp_path / "My_Tools.def").name == "my-tools"
    (tmp_path / "Singularity").write_text(HEADER)
    assert imported(tmp_path / "Singularity").name == tmp_path.name.lower().replace("_", "-")


# Refused: exit 2, one line, everything at once, nothing written.

REFUSED = {
    "conda.def": [
        "line 8: %environment sets LC_ALL, which %post does not see but a recipe's build "
        "steps would (export it at the top of %post too)",
        "line 9: export PATH=/opt/conda/envs/analysis/bin:$PATH (not a plain NAME=value "
        "assignment)",
        "line 10: source /opt/conda/etc/profile.d/conda.sh (not a plain NAME=value assignment)",
        "line 11: conda activate analysis (not a plain NAME=value assignment)",
    ],
    "services.def": [
        "line 1: Bootstrap: library (a recipe's base must be a Docker image or another recipe)",
        "line 4: %setup (runs on the build host)",
        "line 9: %post uses APPTAINER_ENVIRONMENT (Apptainer's build variables)",
        "line 12: %environment sets NGINX_PORT, which %post does not see but a recipe's build "
        "steps would (export it at the top of %post too)",
        "line 14: %startscript (instances)",
        "line 17: %test (a recipe has no test)",
        "line 20: %help (a recipe has no help text)",
        "line 23: %apprun dashboard (SCIF apps)",
        "line 26: %applabels dashboard (SCIF apps)",
    ],
    "multistage.def": [
        "line 3: Stage: build (multi-stage builds)",
        "line 8: a second Bootstrap (multi-stage builds)",
        "line 12: %files from build (files from another stage)",
    ],
    "custom-base.def": [
        "line 2: From: /scratch/images/cuda-dev.sif (not an imgforge recipe's NAME/NAME.sif, "
        "and a recipe's base must be a Docker image or another recipe)",
    ],
    "templated.def": [
        "line 2: From: nvcr.io/nvidia/pytorch:{{ NGC_TAG }} (not a Docker image reference)",
        "line 2: {{ NGC_TAG }} (build arguments)",
        "line 4: %arguments (build arguments)",
        "line 8: {{ EINOPS }} (build arguments)",
        "line 10: %runscript of 2 commands (a recipe runs one)",
        "line 11: {{ NGC_TAG }} (build arguments)",
    ],
}


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_refusals_list_everything_in_one_line(
    defs: Path, name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["import", str(defs / name), "--name", "x"]) == 2
    reasons = "; ".join(REFUSED[name])
    expected = f"imgforge: error: {defs / name}: cannot be expressed as a recipe: {reasons}"
    assert error_line(capsys) == expected
    assert not (defs / "x.toml").exists()


POST = "%post\n    echo hi\n"
CASES = {
    "no header": ("%post\n    true\n", "no Bootstrap header; no From header"),
    "library": ("Bootstrap: library\nFrom: ubuntu:22.04\n", "line 1: Bootstrap: library"),
    "yum": ("Bootstrap: yum\nFrom: x\n", "line 1: Bootstrap: yum"),
    "not a ref": ("Bootstrap: docker\nFrom: Ubuntu:22.04\n", "line 2: From: Ubuntu:22.04 (not"),
    "other header": (f"{HEADER}IncludeCmd: yes\n", "line 3: IncludeCmd: yes (a header"),
    "post -c": (f"{HEADER}%post -c /bin/bash\n    true\n", "line 3: %post -c /bin/bash (arg"),
    "two posts": (f"{HEADER}{POST}{POST}", "line 5: a second %post section"),
    "indented": (f"{HEADER}  %post\n    true\n", "line 3: %post (an indented section header)"),
    "unknown": (f"{HEADER}%postinstall\n", "line 3: %postinstall (not a section Apptainer"),
    "$0": (f"{HEADER}%post\n    cd $(dirname $0)\n", "line 4: %post uses $0 (it differs"),
    "env unset": (f"{HEADER}%environment\n    unset X\n", "line 4: unset X (not a plain"),
    "env quote": (f"{HEADER}%environment\n    A='x\n", "line 4: A='x (not a plain"),
    "env tilde": (f"{HEADER}%environment\n    A=~/x\n", "line 4: A=~/x (not a plain"),
    "label key": (f"{HEADER}%labels\n    a:b c\n", "line 4: label a:b (not a label key"),
    "own label": (f"{HEADER}%labels\n    org.imgforge.recipe x\n", "label org.imgforge.recipe"),
    "spython": (f"{HEADER}%labels\n    note from bootstrap: x\n", "line 4: a line of %labels"),
    "no $@": (f"{HEADER}%runscript\n    exec python x.py\n", "line 4: %runscript exec python"),
    "$@ unquoted": (f"{HEADER}%runscript\n    exec x $@\n", "line 4: %runscript exec x $@"),
    "python": (f"{HEADER}%runscript\n    #!/usr/bin/python3\n", "(not a sh script)"),
    "blank": (f"{HEADER}%runscript\n\n%labels\n", "line 3: %runscript of 0 commands"),
    "abs file": (f"{HEADER}%files\n    /etc/hosts /x\n", "from inside its own directory"),
    "glob": (f"{HEADER}%files\n    *.py /opt/\n", "not a plain path"),
    "missing": (f"{HEADER}%files\n    nope.txt\n", "does not exist beside the .def"),
    "dir no /": (f"{HEADER}%files\n    d /opt/d\n", "line 4: %files d /opt/d (a directory"),
    "twice": (f"{HEADER}%files\n    f /a\n    f /b\n", "line 5: %files f /b (the same source"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_each_refusal_names_its_line_and_reason(
    tmp_path: Path, name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    text, expected = CASES[name]
    (tmp_path / "d").mkdir()
    (tmp_path / "f").write_text("f\n")
    (tmp_path / "x.def").write_text(text)
    assert main(["import", str(tmp_path / "x.def")]) == 2
    line = error_line(capsys)
    assert line.startswith(f"imgforge: error: {tmp_path / 'x.def'}: cannot be expressed")
    assert expected in line
    assert not (tmp_path / "x.toml").exists()


def test_symbolic_links_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "link").symlink_to("/etc/hostname")
    (tmp_path / "x.def").write_text(f"{HEADER}%files\n    d /opt/\n")
    assert main(["import", str(tmp_path / "x.def")]) == 2
    assert "a symbolic link, which Apptainer copies as what it points to" in error_line(capsys)


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("missing.def", None, "cannot read file: No such file or directory"),
        ("dir.def", "dir", "the file is a directory"),
        ("latin1.def", b"Bootstrap: docker\nFrom: caf\xe9\n", "not valid UTF-8"),
        ("binary.def", b"\x7fELF\x02\x01\x01\x00\x00", "not a text file (it contains NUL bytes)"),
        ("Dockerfile", b"FROM ubuntu\n\x00", "not a text file (it contains NUL bytes)"),
    ],
)
def test_unreadable_input_is_one_line_and_exit_2(
    tmp_path: Path,
    name: str,
    content: bytes | str | None,
    reason: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / name
    if content == "dir":
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    assert main(["import", str(path), "--name", "x"]) == 2
    assert error_line(capsys) == f"imgforge: error: {path}: {reason}"


# Equivalence: the imported recipe, rendered by imgforge, says what the .def said.


def render_imported(
    path: Path, render_dir: Callable[..., Rendered], bases: dict[str, ImageConfig]
) -> tuple[Recipe, dict[str, str]]:
    recipe = imported(path)
    return recipe, render_dir(path.parent, bases)[recipe.name]


@pytest.mark.parametrize("name", ["ngc-pytorch.def", "app.def", "hpc-apex.def"])
def test_rendered_def_matches_the_original(
    defs: Path, name: str, render_dir: Callable[..., Rendered], ngc_config: ImageConfig
) -> None:
    original = read_def((defs / name).read_text())
    recipe, texts = render_imported(defs / name, render_dir, {NGC: ngc_config})
    rendered = read_def(texts["def"])
    assert env_of(rendered).items() >= env_of(original).items()
    assert labels_of(rendered).items() >= labels_of(original).items()
    assert targets_in_rendered(rendered) == targets_in_original(original, defs)
    if original.cmd is not None:
        # The .def's command follows the base's ENTRYPOINT, as docker run runs it, and the
        # arguments follow it, as in the original %runscript.
        words = runscript_of(original)
        assert words[-1] == "$@"
        expected = ([*ngc_config.entrypoint, *words[:-1]], [])
        assert parse_runscript(texts["def"]) == expected
    assert_same_post(original, rendered, recipe)


def assert_same_post(original: Any, rendered: Any, recipe: Recipe) -> None:
    """The rendered %post runs the original's statements: the ones [apt]/[pip] took, then
    the rest in one ``/bin/sh -c`` script that starts with ``cd /`` and ``set -ex``."""
    steps = statements(original.install)
    # Leading ``set -e`` (Apptainer passes -ex) and exports of [env]'s own values, which
    # every recipe step sees, are the recipe's doing.
    while steps and (steps[0] == "set -e" or exports_env(steps[0], recipe)):
        steps.pop(0)
    taken = (4 if recipe.apt_packages else 0) + (1 if recipe.pip_packages else 0)
    commands = sh_c_steps(rendered)
    if recipe.apt_packages:
        words = shlex.split(next(c for c in commands if "apt-get install" in c))
        start = words.index("--no-install-recommends") + 1
        assert words[start : words.index("&&", start)] == list(recipe.apt_packages)
        assert shlex.split(steps[1])[-len(recipe.apt_packages) :] == list(recipe.apt_packages)
    if recipe.pip_packages:
        pip = next(c for c in commands if c.startswith("python3 -m pip"))
        assert shlex.split(pip)[4:] == ["--no-cache-dir", *recipe.pip_packages]
        assert shlex.split(steps[taken - 1])[5:] == list(recipe.pip_packages)
    if not recipe.run_commands:
        assert steps[taken:] == []
        return
    script = run_script(rendered).split("\n")
    assert script[:2] == ["cd /", "set -ex"]
    assert statements(script[2:]) == steps[taken:]


def exports_env(line: str, recipe: Recipe) -> bool:
    words = shlex.split(line, comments=True)
    pairs = [word.partition("=")[::2] for word in words[1:]]
    return words[0] == "export" and set(pairs) <= set(recipe.env)


def test_rendered_localimage_def_bootstraps_from_the_parent_artifact(
    defs: Path, render_dir: Callable[..., Rendered]
) -> None:
    (defs / "common.toml").write_text(f'base = "{NGC}"\n')
    recipe, texts = render_imported(defs / "extension.def", render_dir, {NGC: SMALL_BASE})
    assert "Bootstrap: localimage\nFrom: build/common/common.sif\n" in texts["def"]
    assert_same_post(read_def((defs / "extension.def").read_text()), read_def(texts["def"]), recipe)


def test_dockerfile_runs_the_post_script_as_one_sh_c(
    defs: Path, render_dir: Callable[..., Rendered]
) -> None:
    recipe, texts = render_imported(defs / "ngc-pytorch.def", render_dir, {NGC: SMALL_BASE})
    runs = [line for line in texts["dockerfile"].split("\n") if line.startswith("RUN [")]
    # apt, pip, then the %post script: each one sh -c -- of its text.
    assert [json.loads(line[4:])[:3] for line in runs] == [["/bin/sh", "-c", "--"]] * 3
    assert json.loads(runs[-1][4:])[3] == recipe.run_commands[0]


# Properties: generated contents round-trip exactly.

# Names a recipe may set (not those a shell or Apptainer owns).
ENV_NAMES = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,12}", fullmatch=True).filter(carried)
# Any text a recipe value may hold: no control characters (but tab), so no line breaks.
TEXT = st.text(st.characters(blacklist_categories=("Cs", "Cc")) | st.just("\t"), max_size=24)
LABEL_KEYS = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,16}", fullmatch=True).filter(
    lambda key: LABEL_KEY_RE.fullmatch(key) is not None and not key.startswith("org.imgforge.")
)


def plain(value: str) -> bool:
    """Nothing another part of the importer refuses on purpose (templating, spython)."""
    return "{{" not in value and "bootstrap:" not in value.lower()


@NO_DEADLINE
@given(
    env=st.dictionaries(ENV_NAMES, TEXT.filter(plain), max_size=5),
    labels=st.dictionaries(LABEL_KEYS, TEXT.map(str.strip).filter(plain), max_size=5),
    exported=st.booleans(),
)
def test_env_and_labels_round_trip_exactly(
    tmp_path_factory: pytest.TempPathFactory,
    render_dir: Callable[..., Rendered],
    env: dict[str, str],
    labels: dict[str, str],
    exported: bool,
) -> None:
    directory = tmp_path_factory.mktemp("props")
    prefix = "export " if exported else ""
    text = HEADER + "%environment\n"
    text += "".join(f"    {prefix}{name}={sh_quote(value)}\n" for name, value in env.items())
    text += "%labels\n" + "".join(f"    {key} {value}\n" for key, value in labels.items())
    (directory / "p.def").write_text(text)
    recipe, texts = render_imported(directory / "p.def", render_dir, {"ubuntu:22.04": SMALL_BASE})
    assert dict(recipe.env) == env and dict(recipe.labels) == labels
    rendered, original = read_def(texts["def"]), read_def(text)
    assert env_of(original) == env and labels_of(original) == labels
    assert env_of(rendered).items() >= env.items()
    assert labels_of(rendered).items() >= labels.items()


# A "~" (Debian versions have them) after "=" is a tilde expansion to bash, so the
# importer keeps such lines in [run], where the shell reads them as the .def's did.
APT = st.from_regex(APT_RE, fullmatch=True).filter(lambda name: "~" not in name)
PIP = st.from_regex(r"[a-z][a-z0-9_-]{0,8}[a-z0-9](==[0-9]{1,2}\.[0-9]{1,2})?", fullmatch=True)
QUOTES = st.sampled_from(["{}", "'{}'", '"{}"'])


@NO_DEADLINE
@given(
    apt=st.lists(APT, min_size=1, max_size=4, unique=True),
    pip=st.lists(st.tuples(PIP, QUOTES), min_size=1, max_size=4),
    tail=st.lists(st.sampled_from(["echo done", "mkdir -p /opt/x", "cd /opt && ls"]), max_size=2),
)
def test_apt_pip_and_run_round_trip_exactly(
    tmp_path_factory: pytest.TempPathFactory,
    render_dir: Callable[..., Rendered],
    apt: list[str],
    pip: list[tuple[str, str]],
    tail: list[str],
) -> None:
    directory = tmp_path_factory.mktemp("props")
    post = [
        "apt-get update",
        "DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "
        + " ".join(apt),
        "apt-get clean",
        "rm -rf /var/lib/apt/lists/*",
        "python3 -m pip install --no-cache-dir " + " ".join(q.format(p) for p, q in pip),
        *tail,
    ]
    text = HEADER + "%post\n" + "".join(f"    {line}\n" for line in post)
    (directory / "p.def").write_text(text)
    recipe, texts = render_imported(directory / "p.def", render_dir, {"ubuntu:22.04": SMALL_BASE})
    assert recipe.apt_packages == tuple(apt)
    assert recipe.pip_packages == tuple(p for p, _ in pip)
    expected = RUN_PREFIX + "".join(f"    {line}\n" for line in tail) if tail else None
    assert recipe.run_commands == ((expected,) if expected else ())
    assert_same_post(read_def(text), read_def(texts["def"]), recipe)


# Running %post both ways: Apptainer's ``/bin/sh -ex /.post.script`` in /, and the recipe's
# ``/bin/sh -c COMMAND`` in another WORKDIR, print the same and exit the same.

BLOCKS = [
    "pwd",
    "cd /usr",
    "cd /etc",
    "echo 'a  b' \"$HOME\"",
    "X=1",
    'echo "x=${X:-unset}"',
    "ls -d lib*",
    "if [ -d /etc ]; then\n    echo here in $(pwd)\nfi",
    "for i in 1 2; do\n  echo $i\ndone",
    'greet() {\n  echo hello "$1"\n}\ngreet you',
    "cat <<EOF\n  indented $PWD\n\nEOF",
    "cat <<-'EOF'\n\tliteral $PWD\n\tEOF",
    "echo one \\\n  two",
    "false || echo recovered",
    "true && false || echo chained",
    "case $(pwd) in\n  /) echo root ;;\n  *) echo elsewhere ;;\nesac",
    "# a comment",
    "",
    "false",
    "exit 3",
]


def run(argv: list[str], cwd: Path) -> tuple[int, str, str]:
    env = {"PATH": "/usr/bin:/bin", "HOME": "/root"}
    result = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=30)
    return result.returncode, result.stdout, result.stderr


@NO_DEADLINE
@given(blocks=st.lists(st.sampled_from(BLOCKS), min_size=1, max_size=8), indent=st.booleans())
def test_post_runs_the_same_as_apptainer_runs_it(
    tmp_path_factory: pytest.TempPathFactory, blocks: list[str], indent: bool
) -> None:
    directory = tmp_path_factory.mktemp("post")
    body = "\n".join(blocks).split("\n")
    body = [f"    {line}" if indent and not line.startswith("EOF") else line for line in body]
    assume(any(line.strip() and not line.strip().startswith("#") for line in body))
    (directory / "p.def").write_text(HEADER + "%post\n" + "".join(f"{b}\n" for b in body))
    recipe = imported(directory / "p.def")
    (directory / ".post.script").write_text("".join(f"{line}\n" for line in body))
    workdir = directory / "workdir"
    workdir.mkdir()
    apptainer = run(["/bin/sh", "-ex", str(directory / ".post.script")], Path("/"))
    assert run(["/bin/sh", "-c", *recipe.run_commands], workdir) == apptainer


# The word reader agrees with real shells.

ANY = st.characters(blacklist_categories=("Cs", "Cc"))
SEGMENTS = st.one_of(
    st.text(st.sampled_from("abz09_@%+=:,./-"), min_size=1, max_size=4),
    st.text(ANY.filter(lambda c: c != "'"), max_size=4).map(lambda t: f"'{t}'"),
    st.text(ANY, max_size=4).map(
        lambda t: '"' + "".join("\\" + c if c in '$`"\\' else c for c in t) + '"'
    ),
    st.sampled_from(["\\ ", "\\'", '\\"', "\\$", "\\\\", "\\#", "\\*", '"a\\b"', "é"]),
    st.sampled_from(["$HOME", "*", "~", "a;b", "`x`", '"$x"', "'open", "end\\"]),  # refused
)
WORDS = st.lists(st.lists(SEGMENTS, min_size=1, max_size=3).map("".join), max_size=4)
LINES = st.tuples(WORDS, st.sampled_from(["", " # a comment", "\t#x"])).map(
    lambda parts: " ".join(parts[0]) + parts[1]
)


@settings(max_examples=150, deadline=None)
@given(line=LINES)
def test_literal_words_are_what_sh_and_bash_make_of_the_line(line: str) -> None:
    words = literal_words(line)
    if words is None:
        return  # refused: the importer keeps or refuses such lines, it never reads them
    for shell in ("/bin/sh", "/bin/bash"):
        out = subprocess.run(
            [shell, "-c", f"printf '%s\\0' {line}"], capture_output=True, timeout=30, check=True
        ).stdout.decode()
        assert [w.value for w in words] == (out.split("\0")[:-1] if words else [])


# What a tester found by attacking the importer (each once wrong, now refused or exact).


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda p: p.symlink_to("/dev/zero"), "the file is a character device"),
        (lambda p: os.mkfifo(p), "the file is a FIFO"),
        (lambda p: p.write_text(HEADER + "#" * (1 << 20)), "the file is larger than 1048576 bytes"),
    ],
    ids=["dev-zero", "fifo", "huge"],
)
def test_input_is_read_with_a_bound_and_never_blocks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], make: Any, reason: str
) -> None:
    path = tmp_path / "x.def"
    make(path)
    assert main(["import", str(path)]) == 2
    assert error_line(capsys) == f"imgforge: error: {path}: {reason}"


@pytest.mark.parametrize(
    ("files", "reason"),
    [
        ("app/. /opt/app3/", "a source with . or .. in its path"),
        ("app/sub/.. /opt/x/", "a source with . or .. in its path"),
    ],
)
def test_files_sources_that_copy_contents_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], files: str, reason: str
) -> None:
    (tmp_path / "app" / "sub").mkdir(parents=True)
    (tmp_path / "app" / "a.py").write_text("1\n")
    path = tmp_path / "c.def"
    path.write_text(HEADER + f"%files\n    {files}\n")
    assert main(["import", str(path)]) == 2
    assert reason in error_line(capsys)


def test_files_beside_a_dockerignore_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "secret.txt").write_text("s\n")
    (tmp_path / ".dockerignore").write_text("app/secret.txt\n")
    path = tmp_path / "i.def"
    path.write_text(HEADER + "%files\n    app /opt/\n")
    assert main(["import", str(path)]) == 2
    assert "%files beside a .dockerignore" in error_line(capsys)


@pytest.mark.parametrize(
    "line", ['exec -a myname python3 "$@"', 'exec -- python3 "$@"', 'command python3 "$@"']
)
def test_runscript_options_and_builtins_are_not_commands(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], line: str
) -> None:
    path = tmp_path / "r.def"
    path.write_text(HEADER + f"%runscript\n    {line}\n")
    assert main(["import", str(path)]) == 2
    assert 'not [exec] COMMAND "$@" with literal words' in error_line(capsys)


def test_owned_environment_names_are_all_listed_with_their_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "e.def"
    path.write_text(HEADER + "%environment\n    export HOME=/x\n    PWD=/y\n    OK=1\n")
    assert main(["import", str(path)]) == 2
    line = error_line(capsys)
    assert "line 4: %environment sets HOME (" in line and "line 5: %environment sets PWD (" in line
    assert not list(tmp_path.glob("*.json")) and not list(tmp_path.glob("*.toml"))


def test_a_recipe_written_elsewhere_that_does_not_load_is_reported_against_the_def(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "plain.txt").write_text("x\n")
    path = tmp_path / "f.def"
    path.write_text(HEADER + "%files\n    plain.txt /opt/plain.txt\n")
    (tmp_path / "out").mkdir()
    assert main(["import", str(path), "-o", str(tmp_path / "out" / "f.toml")]) == 2
    line = error_line(capsys)
    assert line.startswith(f"imgforge: error: {path}: the recipe it becomes does not load (")
    assert line.endswith("write it beside the source")
    assert list((tmp_path / "out").iterdir()) == []


@pytest.mark.parametrize(
    ("def_text", "sibling", "reason"),
    [
        (
            "Bootstrap: localimage\nFrom: build/base/base.sif\n",
            None,
            "no recipe named 'base'",
        ),
        (HEADER + "%post\n" + "    echo x\n" * 9000, None, "Docker reads lines of at most"),
        (HEADER, 'name = "dup"\nbase = "ubuntu:22.04"\n', "dup"),
    ],
    ids=["missing-parent", "huge-post", "duplicate-name"],
)
def test_a_recipe_that_would_not_render_is_not_written(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    def_text: str,
    sibling: str | None,
    reason: str,
) -> None:
    """What `imgforge render` would refuse, import refuses: nothing is left behind that
    breaks the directory."""
    if sibling is not None:
        (tmp_path / "other.toml").write_text(sibling)
    path = tmp_path / "dup.def"
    path.write_text(def_text)
    before = sorted(p.name for p in tmp_path.iterdir())
    assert main(["import", str(path)]) == 2
    line = error_line(capsys)
    assert line.startswith(f"imgforge: error: {path}: the recipe it becomes does not render (")
    assert reason in line
    assert sorted(p.name for p in tmp_path.iterdir()) == before
