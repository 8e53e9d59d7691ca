"""imgforge.render: exact text per instruction kind in both formats, plus what real tools
(sh, bash, hadolint, spython) make of the rendered files."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from installed import script
from spython.main.parse.parsers import SingularityParser
from support import sourced_env

from imgforge import __version__
from imgforge.recipes.graph import load_all
from imgforge.recipes.image import ImageConfig
from imgforge.recipes.jobs import BaseImage, BuildJob, make_jobs
from imgforge.render import make_environment, render
from imgforge.render.quoting import sh_quote
from imgforge.sif.read import parse_runscript

NGC = "nvcr.io/nvidia/pytorch:24.01-py3"
# What a directory copy runs first in the .def and the commit strategy (quoted once).
REPLACE = sh_quote(
    'r() { for p in "$1"/* "$1"/.[!.]* "$1"/..?*; do t="$0/${p#./}"; if [ -d "$p" ]; then '
    'if [ -L "$t" ] || { [ -e "$t" ] && [ ! -d "$t" ]; }; then rm -f "$t"; fi; r "$p"; '
    'elif [ -e "$p" ] || [ -L "$p" ]; then if [ -L "$t" ] || [ -e "$t" ]; then rm -rf "$t"; '
    "fi; fi; done; }; r ."
)
NGC_FIXTURE = Path(__file__).parents[1] / "data" / "ngc" / "pytorch-24.01-py3.config.json"
SECTIONS = ("files", "post", "environment", "runscript", "labels")
POST_PREAMBLE = (
    "    # The image's environment, as a Docker RUN sees it (Singularity < 3.6 does not"
    " source it),\n"
    "    # and a Docker RUN's umask (apptainer build's own is 0002).\n"
    "    . /.singularity.d/env/10-docker2singularity.sh\n"
    "    umask 022\n"
    "    set -e\n"
)
HASH = "0" * 64
PROVENANCE_LABELS = (
    f'LABEL org.imgforge.base="{NGC}" \\\n'
    '      org.imgforge.recipe="proj" \\\n'
    f'      org.imgforge.recipe.hash="{HASH}" \\\n'
    f'      org.imgforge.version="{__version__}"\n'
)
# A base whose Env holds everything a careless quoting would mangle.
HOSTILE_ENV = (
    "PATH=/usr/local/bin:/usr/bin:/bin",
    "DOLLAR=$HOME ${X:-y} $(id) `id` $$",
    "QUOTES='single' \"double\" '\\''",
    "BACKSLASH=a\\b\\\\c\\n\\",
    "UNICODE=héllo wörld ✓ 日本語 \u00a0nbsp",
    "EMPTY=",
    "EQUALS=a=b==c",
    "SPACES=  lead and trail  ",
    "NEWLINES=line1\n%post\n  %environment\r\nlast",
    "GLOB=* ? [a-z] ~ ; & | > <",
    "BAD-NAME=skipped",
)
HOSTILE = ImageConfig(env=HOSTILE_ENV, cmd=("/bin/bash",), workdir="/work dir")

Texts = dict[str, str]


@pytest.fixture
def project(tmp_path: Path) -> Callable[..., Path]:
    """``project(text, files=())``: a recipe dir with ``proj.toml`` (base NGC) and files."""

    def make(text: str = "", files: tuple[str, ...] = ()) -> Path:
        directory = tmp_path / "recipes"
        directory.mkdir(exist_ok=True)
        for name in files:
            path = directory / name
            path.parent.mkdir(parents=True, exist_ok=True)
            if not name.endswith("/"):
                path.write_text(f"{name}\n")
        (directory / "proj.toml").write_text(f'base = "{NGC}"\n{text}')
        return directory

    return make


@pytest.fixture
def render_ngc(
    render_dir: Callable[..., dict[str, Texts]], ngc_config: ImageConfig
) -> Callable[[Path], Texts]:
    """Render the recipe ``proj`` of a directory on the NGC fixture's config."""
    return lambda directory: render_dir(directory, {NGC: ngc_config})["proj"]


def steps(dockerfile: str) -> str:
    """The Dockerfile between its FROM line and its LABEL instruction."""
    lines = dockerfile.splitlines(keepends=True)
    start = next(i for i, line in enumerate(lines) if line.startswith("FROM "))
    end = next(i for i, line in enumerate(lines) if line.startswith("LABEL "))
    return "".join(lines[start + 1 : end]).strip("\n") + "\n"


def sections(deffile: str) -> Texts:
    """The .def split at its section headers (``%name`` at the start of a line)."""
    parts: Texts = {"header": ""}
    current = "header"
    for line in deffile.splitlines(keepends=True):
        if line.startswith("%") and line[1:].strip() in SECTIONS:
            current = line[1:].strip()
            parts[current] = ""
        else:
            parts[current] += line
    return {name: body.rstrip("\n") + "\n" if body.strip() else "" for name, body in parts.items()}


def post_steps(deffile: str) -> str:
    post = sections(deffile)["post"]
    assert post.startswith(POST_PREAMBLE)
    return post[len(POST_PREAMBLE) :]


def files_lines(deffile: str) -> str:
    """%files without its first line (the env file, the same for every recipe)."""
    first, _, rest = sections(deffile)["files"].partition("\n")
    assert first == "    build/proj/imgforge-env.sh /.singularity.d/env/10-docker2singularity.sh"
    return rest


source = sourced_env


def hadolint(dockerfile: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """The real hadolint, failing on errors only (warnings such as "pin versions" are
    the recipe author's business)."""
    path = tmp_path / "Dockerfile"
    path.write_text(dockerfile, encoding="utf-8")
    return subprocess.run(
        [script("hadolint"), "--no-color", "--failure-threshold", "error", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def run(command: str) -> str:
    """A Dockerfile RUN of ``command``."""
    return "RUN " + json.dumps(["/bin/sh", "-c", "--", command], ensure_ascii=False) + "\n"


def post(command: str, workdir: str = "/workspace") -> str:
    """The .def's %post step of ``command``: the same text, as the same sh argument."""
    return f"    cd {sh_quote(workdir)}\n    /bin/sh -c -- {sh_quote(command)}\n"


def environment_body(deffile: str) -> str:
    return sections(deffile)["environment"]


# A whole file, for the smallest recipe on a small base.


def test_minimal_recipe_whole_files(
    project: Callable[..., Path], render_dir: Callable[..., dict[str, Texts]]
) -> None:
    base = ImageConfig(env=("PATH=/usr/bin:/bin", "LANG=C.UTF-8"), cmd=("bash",))
    texts = render_dir(project(), {NGC: base})["proj"]
    # The .def's %runscript is the SIF's runscript after its #! line and comments.
    runscript_body = texts["sif:runscript"].split("\n", 3)[3]
    assert runscript_body.startswith("OCI_ENTRYPOINT=''\nOCI_CMD='\"bash\"'\n")
    assert texts["dockerfile"] == (
        f"# Generated by imgforge {__version__} from recipe proj. Edit the recipe, not this file.\n"
        "# Build context: the recipe's directory. Every RUN is the exec form of /bin/sh -c --,"
        " with\n"
        "# the same command text that the .def's %post and the commit strategy run.\n"
        f"FROM {NGC}\n"
        "\n" + PROVENANCE_LABELS
    )
    assert texts["def"] == (
        f"# Generated by imgforge {__version__} from recipe proj. Edit the recipe, not this file.\n"
        "# Build from the recipe's directory; paths below are relative to it.\n"
        "Bootstrap: docker\n"
        f"From: {NGC}\n"
        "\n"
        "%files\n"
        "    build/proj/imgforge-env.sh /.singularity.d/env/10-docker2singularity.sh\n"
        "\n"
        "%post\n" + POST_PREAMBLE + "\n"
        "%environment\n"
        "    export LANG='C.UTF-8'\n"
        "\n"
        "%runscript\n" + runscript_body + "%labels\n"
        f"    org.imgforge.base {NGC}\n"
        "    org.imgforge.recipe proj\n"
        f"    org.imgforge.recipe.hash {HASH}\n"
        f"    org.imgforge.version {__version__}\n"
    )
    assert texts["env"] == (
        "#!/bin/sh\n"
        f"# Generated by imgforge {__version__} for proj:latest: the image's full Env in image\n"
        "# order, single-quoted so that sourcing it reproduces every value byte for byte.\n"
        "export PATH='/usr/bin:/bin'\n"
        "export LANG='C.UTF-8'\n"
    )


# One instruction kind at a time, in both formats.


def test_env(project: Callable[..., Path], render_ngc: Callable[[Path], Texts]) -> None:
    texts = render_ngc(
        project('[env]\nZED = "z"\nMYVAR = "a $HOME \\"q\\" \'s\' \\\\ `b` é"\nEMPTY = ""\n')
    )
    assert steps(texts["dockerfile"]) == (
        'ENV EMPTY="" \\\n    MYVAR="a \\$HOME \\"q\\" \'s\' \\\\ `b` é" \\\n    ZED="z"\n'
    )
    environment = environment_body(texts["def"])
    assert "    export EMPTY=''\n" in environment
    assert "    export MYVAR='a $HOME \"q\" '\"'\"'s'\"'\"' \\ `b` é'\n" in environment
    assert "    export ZED='z'\n" in environment
    assert post_steps(texts["def"]) == ""


def test_apt(project: Callable[..., Path], render_ngc: Callable[[Path], Texts]) -> None:
    texts = render_ngc(project('[apt]\npackages = ["ffmpeg", "libgl1", "g++-12", "vim=2:9.0-1"]\n'))
    install = (
        "apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y"
        " --no-install-recommends 'ffmpeg' 'libgl1' 'g++-12' 'vim=2:9.0-1'"
        " && apt-get clean && rm -rf /var/lib/apt/lists/*"
    )
    assert steps(texts["dockerfile"]) == run(install)
    assert post_steps(texts["def"]) == post(install)
    assert files_lines(texts["def"]) == ""


def test_pip_packages(project: Callable[..., Path], render_ngc: Callable[[Path], Texts]) -> None:
    texts = render_ngc(
        project('[pip]\npackages = ["einops", "timm==0.9.16", "x[y]>=1; python_version>\'3\'"]\n')
    )
    install = (
        "python3 -m pip install --no-cache-dir 'einops' 'timm==0.9.16'"
        " 'x[y]>=1; python_version>'\"'\"'3'\"'\"''"
    )
    assert steps(texts["dockerfile"]) == run(install)
    assert post_steps(texts["def"]) == post(install)


def test_pip_index_urls(project: Callable[..., Path], render_ngc: Callable[[Path], Texts]) -> None:
    texts = render_ngc(
        project(
            '[pip]\npackages = ["einops"]\nindex_url = "https://pypi.example.org/simple"\n'
            'extra_index_urls = ["https://a.example.org/simple", "http://b.example.org/s"]\n'
        )
    )
    install = (
        "python3 -m pip install --no-cache-dir --index-url 'https://pypi.example.org/simple'"
        " --extra-index-url 'https://a.example.org/simple'"
        " --extra-index-url 'http://b.example.org/s' 'einops'"
    )
    assert steps(texts["dockerfile"]) == run(install)
    assert post_steps(texts["def"]) == post(install)


def test_pip_requirements(
    project: Callable[..., Path], render_ngc: Callable[[Path], Texts]
) -> None:
    texts = render_ngc(
        project(
            '[pip]\nrequirements = ["requirements.txt", "deps/extra.txt"]\n',
            files=("requirements.txt", "deps/extra.txt"),
        )
    )
    install = (
        "python3 -m pip install --no-cache-dir"
        " -r '/tmp/imgforge-requirements-0.txt' -r '/tmp/imgforge-requirements-1.txt'"
        " && rm -f '/tmp/imgforge-requirements-0.txt' '/tmp/imgforge-requirements-1.txt'"
    )
    assert steps(texts["dockerfile"]) == (
        'COPY ["requirements.txt", "/tmp/imgforge-requirements-0.txt"]\n'
        'COPY ["deps/extra.txt", "/tmp/imgforge-requirements-1.txt"]\n' + run(install)
    )
    assert files_lines(texts["def"]) == (
        "    requirements.txt /tmp/imgforge-requirements-0.txt\n"
        "    deps/extra.txt /tmp/imgforge-requirements-1.txt\n"
    )
    assert post_steps(texts["def"]) == post(install)


def test_files(project: Callable[..., Path], render_ngc: Callable[[Path], Texts]) -> None:
    texts = render_ngc(
        project(
            '[files]\n"app/" = "/opt/app/"\n"tools" = "/opt/tools"\n'
            '"cfg.yaml" = "/etc/proj/"\n"run.sh" = "/usr/local/bin/run-proj"\n"top.txt" = "/x"\n',
            files=("app/main.py", "tools/t.py", "cfg.yaml", "run.sh", "top.txt"),
        )
    )
    assert steps(texts["dockerfile"]) == (
        'COPY ["app/", "/opt/app/"]\n'
        'COPY ["tools", "/opt/tools"]\n'
        'COPY ["cfg.yaml", "/etc/proj/"]\n'
        'COPY ["run.sh", "/usr/local/bin/run-proj"]\n'
        'COPY ["top.txt", "/x"]\n'
    )
    # %files stages each source (its copy rules differ from COPY's) where no destination
    # can be; %post places it the way COPY does: a directory's contents into the
    # destination, a file into a "dir/", or to a path, or into it if the image has a
    # directory there.
    assert files_lines(texts["def"]) == (
        "    app/ /.imgforge:staging/0\n"
        "    tools /.imgforge:staging/1\n"
        "    cfg.yaml /.imgforge:staging/2\n"
        "    run.sh /.imgforge:staging/3\n"
        "    top.txt /.imgforge:staging/4\n"
    )
    assert post_steps(texts["def"]) == (
        "    mkdir -p '/opt/app'\n"
        f"    (cd '/.imgforge:staging/0' && /bin/sh -c {REPLACE}"
        " '/opt/app')\n"
        "    cp -a '/.imgforge:staging/0/.' '/opt/app'\n"
        "    touch '/opt/app'\n"
        "    mkdir -p '/opt/tools'\n"
        f"    (cd '/.imgforge:staging/1' && /bin/sh -c {REPLACE}"
        " '/opt/tools')\n"
        "    cp -a '/.imgforge:staging/1/.' '/opt/tools'\n"
        "    touch '/opt/tools'\n"
        "    mkdir -p '/etc/proj'\n"
        "    cp -a '/.imgforge:staging/2' '/etc/proj/cfg.yaml'\n"
        "    mkdir -p '/usr/local/bin'\n"
        "    if [ -d '/usr/local/bin/run-proj' ]; then"
        " cp -a '/.imgforge:staging/3' '/usr/local/bin/run-proj/run.sh';"
        " else cp -a '/.imgforge:staging/3' '/usr/local/bin/run-proj'; fi\n"
        "    mkdir -p '/'\n"
        "    if [ -d '/x' ]; then cp -a '/.imgforge:staging/4' '/x/top.txt';"
        " else cp -a '/.imgforge:staging/4' '/x'; fi\n"
        "    rm -rf '/.imgforge:staging'\n"
    )


def test_files_destination_ending_in_slash_dot_is_a_directory(
    project: Callable[..., Path], render_ngc: Callable[[Path], Texts]
) -> None:
    """BuildKit reads "/." as a directory and the classic builder as a file path: the
    Dockerfile says "/" so that both builders, the .def and the commit strategy agree."""
    texts = render_ngc(
        project(
            '[files]\n"cfg.yaml" = "/etc/proj/."\n"app" = "/opt/app/."\n',
            files=("cfg.yaml", "app/a"),
        )
    )
    assert steps(texts["dockerfile"]) == (
        'COPY ["cfg.yaml", "/etc/proj/"]\nCOPY ["app", "/opt/app/"]\n'
    )
    assert post_steps(texts["def"]) == (
        "    mkdir -p '/etc/proj'\n"
        "    cp -a '/.imgforge:staging/0' '/etc/proj/cfg.yaml'\n"
        "    mkdir -p '/opt/app'\n"
        f"    (cd '/.imgforge:staging/1' && /bin/sh -c {REPLACE}"
        " '/opt/app')\n"
        "    cp -a '/.imgforge:staging/1/.' '/opt/app'\n"
        "    touch '/opt/app'\n"
        "    rm -rf '/.imgforge:staging'\n"
    )


def test_run_is_always_exec_form_of_sh(
    project: Callable[..., Path], render_ngc: Callable[[Path], Texts]
) -> None:
    """No Dockerfile parser can read a command as a flag, a heredoc, a continuation or
    another instruction; sh gets it after "--", so it is never an option of sh either."""
    commands = [
        "python -m compileall /opt",
        "  echo 'a b' | tr a c  ",
        "set -e\necho a",
        "echo continued \\",
        "printf x\r",
        "cat > /etc/sudoers.d/g <<'EOF'\n%sudo ALL=(ALL) ALL\nEOF",
        "--mount=type=bind,target=/x echo",
        "<<EOF",
        "echo {{ HOME }}",
    ]
    texts = render_ngc(project(f"[run]\ncommands = {json.dumps(commands)}\n"))
    assert steps(texts["dockerfile"]) == "".join(run(c) for c in commands)
    assert post_steps(texts["def"]) == "".join(post(c) for c in commands)
    # No line may start with '%' (a section for Apptainer), no "{{" (a build variable).
    assert "    /bin/sh -c -- 'cat > /etc/sudoers.d/g <<'\"'\"'EOF'\"'\"'\n''%sudo" in texts["def"]
    assert "    /bin/sh -c -- 'echo {''{ HOME }}'\n" in texts["def"]


def test_labels(project: Callable[..., Path], render_ngc: Callable[[Path], Texts]) -> None:
    texts = render_ngc(
        project(
            '[labels]\nmaintainer = "Me <me@example.org>"\nzz = "say \\"$x\\" \\\\ é"\n"a/b" = ""\n'
        )
    )
    dockerfile = texts["dockerfile"]
    assert dockerfile[dockerfile.index("LABEL ") :] == (
        'LABEL a/b="" \\\n'
        '      maintainer="Me <me@example.org>" \\\n'
        f'      org.imgforge.base="{NGC}" \\\n'
        '      org.imgforge.recipe="proj" \\\n'
        f'      org.imgforge.recipe.hash="{HASH}" \\\n'
        f'      org.imgforge.version="{__version__}" \\\n'
        '      zz="say \\"\\$x\\" \\\\ é"\n'
    )
    assert sections(texts["def"])["labels"] == (
        "    a/b \n"
        "    maintainer Me <me@example.org>\n"
        f"    org.imgforge.base {NGC}\n"
        "    org.imgforge.recipe proj\n"
        f"    org.imgforge.recipe.hash {HASH}\n"
        f"    org.imgforge.version {__version__}\n"
        '    zz say "$x" \\ é\n'
    )


def test_runscript_with_command_on_ngc(
    project: Callable[..., Path], render_ngc: Callable[[Path], Texts]
) -> None:
    texts = render_ngc(project("[runscript]\ncommand = \"python /opt/train.py --name 'a b'\"\n"))
    assert texts["dockerfile"].endswith(
        PROVENANCE_LABELS + 'CMD ["python", "/opt/train.py", "--name", "a b"]\n'
    )
    # The NGC entrypoint is kept, as Docker keeps it; run arguments replace the CMD.
    assert parse_runscript(sections(texts["def"])["runscript"]) == (
        ["/opt/nvidia/nvidia_entrypoint.sh"],
        ["python", "/opt/train.py", "--name", "a b"],
    )


def test_runscript_entrypoint_extends_the_base_entrypoint(
    project: Callable[..., Path], render_ngc: Callable[[Path], Texts]
) -> None:
    texts = render_ngc(project('[runscript]\nentrypoint = "python /opt/train.py"\n'))
    assert texts["dockerfile"].endswith(
        PROVENANCE_LABELS
        + 'ENTRYPOINT ["/opt/nvidia/nvidia_entrypoint.sh", "python", "/opt/train.py"]\n'
    )
    assert parse_runscript(sections(texts["def"])["runscript"]) == (
        ["/opt/nvidia/nvidia_entrypoint.sh", "python", "/opt/train.py"],
        [],
    )


def test_runscript_without_command_on_ngc(
    project: Callable[..., Path], render_ngc: Callable[[Path], Texts]
) -> None:
    texts = render_ngc(project())
    assert "CMD" not in texts["dockerfile"] and "ENTRYPOINT" not in texts["dockerfile"]
    runscript = sections(texts["def"])["runscript"]
    assert parse_runscript(runscript) == (["/opt/nvidia/nvidia_entrypoint.sh"], [])
    # Apptainer runs a runscript in its own shell when it has this very line.
    assert '\neval "set ${SINGULARITY_OCI_RUN}"\n' in runscript


@pytest.mark.parametrize(
    "config",
    [
        ImageConfig(entrypoint=("/init", "--"), cmd=("bash", "-l")),
        ImageConfig(cmd=("python3",)),
        ImageConfig(),
    ],
    ids=["entrypoint-and-cmd", "cmd-only", "neither"],
)
def test_runscript_follows_the_base(
    project: Callable[..., Path], render_dir: Callable[..., dict[str, Texts]], config: ImageConfig
) -> None:
    texts = render_dir(project(), {NGC: config})["proj"]
    expected = (list(config.entrypoint), list(config.cmd))
    assert parse_runscript(sections(texts["def"])["runscript"]) == expected
    with_command = render_dir(project('[runscript]\ncommand = "train --fast"\n'), {NGC: config})
    expected = (list(config.entrypoint), ["train", "--fast"])
    assert parse_runscript(sections(with_command["proj"]["def"])["runscript"]) == expected
    assert with_command["proj"]["dockerfile"].endswith('CMD ["train", "--fast"]\n')


def test_recipe_base_bootstraps_from_the_parent_sif(
    tmp_path: Path, render_dir: Callable[..., dict[str, Texts]], ngc_config: ImageConfig
) -> None:
    directory = tmp_path / "recipes"
    directory.mkdir()
    (directory / "common.toml").write_text(
        f'base = "{NGC}"\ntag = "2.0"\n[env]\nPATH = "/opt/common/bin:/usr/bin:/bin"\n'
        '[runscript]\ncommand = "python"\n'
    )
    (directory / "app.toml").write_text('base = "recipe:common"\n[env]\nAPP = "1"\n')
    texts = render_dir(directory, {NGC: ngc_config}, out=tmp_path / "out")
    app = texts["app"]
    assert "\nFROM common:2.0\n" in app["dockerfile"]
    assert 'org.imgforge.base="recipe:common"' in app["dockerfile"]
    assert sections(app["def"])["header"].endswith(
        "Bootstrap: localimage\nFrom: ../out/common/common.sif\n"
    )
    assert sections(app["def"])["files"].startswith(
        "    ../out/app/imgforge-env.sh /.singularity.d/env/10-docker2singularity.sh\n"
    )
    # The child inherits the parent's final env (PATH replaced in place) and its CMD.
    assert "    export PATH=" not in environment_body(app["def"])
    env_lines = app["env"].splitlines()
    assert env_lines[3] == "export PATH='/opt/common/bin:/usr/bin:/bin'"
    assert env_lines[-1] == "export APP='1'"
    assert parse_runscript(sections(app["def"])["runscript"]) == (
        ["/opt/nvidia/nvidia_entrypoint.sh"],
        ["python"],
    )
    assert "CMD" not in app["dockerfile"]


def test_recipe_base_with_simg_format(tmp_path: Path, ngc_config: ImageConfig) -> None:
    directory = tmp_path / "recipes"
    directory.mkdir()
    (directory / "common.toml").write_text(f'base = "{NGC}"\n')
    (directory / "app.toml").write_text('base = "recipe:common"\n')
    graph = load_all(directory)
    jobs = make_jobs(
        graph,
        graph.order(),
        bases={NGC: BaseImage(NGC, NGC, ngc_config)},
        recipe_hashes={"common": HASH, "app": HASH},
        out=directory / "build",
        image_format="simg",
    )
    assert [job.name for job in jobs] == ["common", "app"]
    assert "\nFrom: build/common/common.simg\n" in render(jobs[1], "def")


# The env file: the final env, in image order.


def test_env_file_image_order(
    project: Callable[..., Path],
    render_dir: Callable[..., dict[str, Texts]],
    tmp_path: Path,
) -> None:
    base = ImageConfig(
        env=("PATH=/usr/bin", "9LIVES=x", "A-B=y", "HOME=/root", "LANG=C", "UID=0", "TZ=UTC")
    )
    texts = render_dir(
        project('[env]\nZ_NEW = "z"\nTZ = "Europe/Paris"\nA_NEW = "a"\n'), {NGC: base}
    )["proj"]
    body = texts["env"].split("byte for byte.\n", 1)[1]
    # HOME and UID: the runtime sets them; the image's values are defaults, as Apptainer
    # writes them, so that $HOME stays the user's.
    assert body == (
        "# skipped: '9LIVES' is not a valid variable name ([A-Za-z_][A-Za-z0-9_]*)\n"
        "# skipped: 'A-B' is not a valid variable name ([A-Za-z_][A-Za-z0-9_]*)\n"
        "export PATH='/usr/bin'\n"
        '[ -n "${HOME:-}" ] || export HOME=\'/root\'\n'
        "export LANG='C'\n"
        '[ -n "${UID:-}" ] || export UID=\'0\'\n'
        "export TZ='Europe/Paris'\n"
        "export A_NEW='a'\n"
        "export Z_NEW='z'\n"
    )
    got = source("sh", texts["env"], tmp_path)
    assert got | {"PWD": ""} == {
        "PATH": "/usr/bin",
        "HOME": "/root",
        "UID": "0",
        "LANG": "C",
        "TZ": "Europe/Paris",
        "A_NEW": "a",
        "Z_NEW": "z",
        "PWD": "",
    }
    # Where the runtime has a value, it stays.
    assert source("sh", texts["env"], tmp_path, {"HOME": "/home/user"})["HOME"] == "/home/user"


# The NGC base: every variable preserved, byte for byte.


def test_deterministic(
    project: Callable[..., Path],
    render_ngc: Callable[[Path], Texts],
    jobs_for: Callable[..., list[BuildJob]],
    ngc_config: ImageConfig,
) -> None:
    directory = project(
        '[env]\nB = "2"\nA = "1"\n[labels]\nz = "1"\na = "2"\n[apt]\npackages = ["curl"]\n'
    )
    first = render_ngc(directory)
    assert render_ngc(directory) == first
    (job,) = jobs_for(directory, {NGC: ngc_config})
    environment = make_environment()
    formats = {fmt: text for fmt, text in first.items() if not fmt.startswith("sif:")}
    assert {fmt: render(job, fmt, environment) for fmt in formats} == formats
    assert {fmt: render(job, fmt, environment) for fmt in formats} == formats


def test_environment_holds_every_ngc_variable_sorted(
    project: Callable[..., Path], render_ngc: Callable[[Path], Texts]
) -> None:
    fixture_env = json.loads(NGC_FIXTURE.read_text())["Env"]
    assert len(fixture_env) > 50
    texts = render_ngc(project())
    lines = environment_body(texts["def"]).splitlines()
    names = [line.split("=", 1)[0].removeprefix("    export ") for line in lines]
    assert names == sorted(names)
    # PATH aside: Apptainer completes the env file's PATH before sourcing %environment.
    expected = [
        f"    export {name}={sh_quote(value)}"
        for name, _, value in sorted(entry.partition("=") for entry in fixture_env)
        if name != "PATH"
    ]
    assert lines == expected


@pytest.mark.parametrize("shell", ["sh", "bash"])
def test_sourcing_environment_reproduces_ngc_values(
    project: Callable[..., Path], render_ngc: Callable[[Path], Texts], tmp_path: Path, shell: str
) -> None:
    fixture_env = dict(e.partition("=")[::2] for e in json.loads(NGC_FIXTURE.read_text())["Env"])
    texts = render_ngc(project('[env]\nEXTRA = "x y"\n'))
    seen = source(shell, environment_body(texts["def"]), tmp_path)
    without_path = {name: value for name, value in fixture_env.items() if name != "PATH"}
    assert {name: seen.get(name) for name in without_path} == without_path
    assert seen["EXTRA"] == "x y"
    # The env file gives the same values, in image order.
    seen_file = source(shell, texts["env"], tmp_path)
    assert {name: seen_file.get(name) for name in fixture_env} == fixture_env
    exports = [line.split("=", 1)[0][7:] for line in texts["env"].splitlines() if "export " in line]
    assert exports == [*fixture_env, "EXTRA"]


@pytest.mark.parametrize("shell", ["sh", "bash"])
def test_sourcing_reproduces_hostile_values(
    project: Callable[..., Path],
    render_dir: Callable[..., dict[str, Texts]],
    tmp_path: Path,
    shell: str,
) -> None:
    expected = {
        name: value
        for name, _, value in (entry.partition("=") for entry in HOSTILE_ENV)
        if name != "BAD-NAME"
    }
    expected["RECIPE"] = 'it\'s $HOME "x" \\ `id` ü'
    texts = render_dir(
        project('[env]\nRECIPE = "it\'s $HOME \\"x\\" \\\\ `id` ü"\n'), {NGC: HOSTILE}
    )["proj"]
    for text, path in ((environment_body(texts["def"]), False), (texts["env"], True)):
        seen = source(shell, text, tmp_path)
        want = {k: v for k, v in expected.items() if path or k != "PATH"}
        assert {name: seen.get(name) for name in want} == want
        assert "BAD-NAME" not in seen
    assert "# skipped: 'BAD-NAME' is not a valid variable name" in texts["env"]
    assert post_steps(texts["def"]) == ""
    assert parse_runscript(sections(texts["def"])["runscript"]) == ([], ["/bin/bash"])


def test_hostile_workdir_is_quoted(
    project: Callable[..., Path], render_dir: Callable[..., dict[str, Texts]]
) -> None:
    texts = render_dir(project('[run]\ncommands = ["true"]\n'), {NGC: HOSTILE})["proj"]
    assert post_steps(texts["def"]) == post("true", "/work dir")


# Real tools.

EVERYTHING = (
    'name = "proj"\ntag = "1.0"\n'
    '[apt]\npackages = ["ffmpeg", "libgl1"]\n'
    '[pip]\npackages = ["einops", "timm==0.9.16"]\nrequirements = ["requirements.txt"]\n'
    'index_url = "https://pypi.example.org/simple"\n'
    '[env]\nMYVAR = "a $HOME \\"q\\" \\\\ é"\nOTHER = "o"\n'
    '[files]\n"app/" = "/opt/app/"\n"cfg.yaml" = "/etc/proj/"\n'
    '[run]\ncommands = ["python -m compileall /opt/app", "set -e\\necho multi"]\n'
    '[labels]\nmaintainer = "me@example.org"\n'
    '[runscript]\ncommand = "python /opt/app/train.py"\n'
)
EVERYTHING_FILES = ("requirements.txt", "app/train.py", "cfg.yaml")


@pytest.mark.parametrize("config", ["ngc", "hostile"])
def test_dockerfile_passes_hadolint(
    project: Callable[..., Path],
    render_dir: Callable[..., dict[str, Texts]],
    ngc_config: ImageConfig,
    tmp_path: Path,
    config: str,
) -> None:
    base = ngc_config if config == "ngc" else HOSTILE
    texts = render_dir(project(EVERYTHING, files=EVERYTHING_FILES), {NGC: base})["proj"]
    result = hadolint(texts["dockerfile"], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert " error: " not in result.stdout


def test_def_parses_with_spython(
    project: Callable[..., Path], render_ngc: Callable[[Path], Texts], tmp_path: Path
) -> None:
    texts = render_ngc(project(EVERYTHING, files=EVERYTHING_FILES))
    deffile = tmp_path / "proj.def"
    deffile.write_text(texts["def"], encoding="utf-8")
    recipe = SingularityParser(str(deffile)).recipe["spython-base"]
    # spython accepts only "Bootstrap: docker" (it raises NotImplementedError for the
    # "localimage" bootstrap of recipe: bases), lower-cases the From line, and files a
    # section's first line under comments when it starts with "#".
    assert recipe.fromHeader == NGC
    assert recipe.files == [
        "build/proj/imgforge-env.sh /.singularity.d/env/10-docker2singularity.sh",
        "requirements.txt /tmp/imgforge-requirements-0.txt",
        "app/ /.imgforge:staging/0",
        "cfg.yaml /.imgforge:staging/1",
    ]
    assert recipe.labels == [
        "maintainer me@example.org",
        f"org.imgforge.base {NGC}",
        "org.imgforge.recipe proj",
        f"org.imgforge.recipe.hash {HASH}",
        f"org.imgforge.version {__version__}",
    ]
    fixture_env = json.loads(NGC_FIXTURE.read_text())["Env"]
    # + MYVAR - PATH (the env file sets it) + the one more entry spython counts
    assert len(recipe.environ) == len(fixture_env) + 1
    assert "MYVAR='a $HOME \"q\" \\ é'" in recipe.environ
    assert not any(line.startswith("PATH=") for line in recipe.environ)
    assert "/bin/sh -c -- 'python -m compileall /opt/app'" in recipe.install
    assert recipe.cmd is not None


@pytest.mark.xfail(
    strict=True,
    reason="hadolint's parser (language-docker) does not read \\\\ as an escaped backslash "
    "inside double quotes; Docker's does (buildkit frontend/dockerfile/shell/lex.go, "
    "processDoubleQuote), so this Dockerfile is right and hadolint rejects it",
)
@pytest.mark.parametrize("value", ["C:\\Temp\\", 'a\\"b'], ids=["trailing-backslash", "bs-quote"])
def test_hadolint_misreads_escaped_backslash_before_quote(
    project: Callable[..., Path],
    render_ngc: Callable[[Path], Texts],
    tmp_path: Path,
    value: str,
) -> None:
    texts = render_ngc(project(f"[env]\nV = {json.dumps(value, ensure_ascii=False)}\n"))
    result = hadolint(texts["dockerfile"], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.xfail(
    strict=True,
    raises=NotImplementedError,
    reason="spython 0.3 parses only 'Bootstrap: docker' .def files ('Only docker is "
    "supported.'); recipe: bases render 'Bootstrap: localimage'",
)
def test_spython_reads_localimage_def(
    tmp_path: Path, render_dir: Callable[..., dict[str, Texts]], ngc_config: ImageConfig
) -> None:
    directory = tmp_path / "recipes"
    directory.mkdir()
    (directory / "common.toml").write_text(f'base = "{NGC}"\n')
    (directory / "app.toml").write_text('base = "recipe:common"\n')
    deffile = tmp_path / "app.def"
    deffile.write_text(render_dir(directory, {NGC: ngc_config})["app"]["def"], encoding="utf-8")
    recipe = SingularityParser(str(deffile)).recipe["spython-base"]
    assert recipe.fromHeader == "build/common/common.sif"
