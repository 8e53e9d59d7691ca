"""The sealed build context, against the real engine and the real docker CLI.

* A recipe's files can never replace the Dockerfile imgforge rendered.
* The files ``.dockerignore`` lets into imgforge's context are exactly those that
  ``docker build`` (the docker CLI, legacy builder) sends for the same directory and the
  same ``.dockerignore``, for hostile ignore files.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
import uuid
from pathlib import Path

import docker
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reliability_support import MINI, build_argv, export_tar, tar_members, write

from imgforge.cli import main
from imgforge.engine.context import DOCKERFILE, build_context
from imgforge.errors import RecipeError
from imgforge.patterns import PATH_RE
from imgforge.recipes.ignore import IGNORE_FILE
from imgforge.recipes.model import load
from imgforge.recipes.tree import load_ignore, walk_source

SECRET = f"STOLEN-{uuid.uuid4().hex}"


def image_files(client: docker.DockerClient, image: str, under: str) -> set[str]:
    """Regular files below ``under`` in ``image`` (``docker export`` of a container)."""
    names = {m.name.lstrip("./") for m in tar_members(export_tar(client, image)) if m.isfile()}
    prefix = under.strip("/") + "/" if under.strip("/") else ""
    return {n[len(prefix) :] for n in names if n.startswith(prefix)}


def docker_cli_context(client: docker.DockerClient, directory: Path) -> set[str]:
    """The regular files ``docker build`` sends from ``directory`` (its own .dockerignore
    applied by the docker CLI), as ``COPY . /ctx/`` puts them into an image."""
    tag = f"imgforge-test/ctx:{uuid.uuid4().hex[:12]}"
    env = {**os.environ, "DOCKER_BUILDKIT": "0"}
    subprocess.run(
        ["docker", "build", "-q", "-t", tag, "-f", "-", str(directory)],
        input=b"FROM scratch\nCOPY . /ctx/\n", env=env, check=True, capture_output=True,
    )
    try:
        files = image_files(client, tag, "/ctx")
    finally:
        client.api.remove_image(tag, force=True)
    return {f for f in files if f != ".dockerignore" and not f.startswith(".dockerfile.")}


def imgforge_context(directory: Path) -> set[str]:
    """The regular files imgforge's walk sends for the source ``.``."""
    recipe = directory / "r.toml"
    entries = walk_source(
        directory, ".", owner=recipe, key="files..", ignore=load_ignore(directory)
    )
    return {e.name for e in entries if not e.is_dir and e.name != ".dockerignore"}


TREE = [
    "secret.txt", "s3cret.txt", "notes.md", "a.txt", "d.txt", "myfile", "a*b", "x y",
    "app/main.py", "app/debug.log", "app/data/keep.log", "app/data/deep.log",
    "app/data/table.csv", "app/sub/main.py", "docs/README.md", "docs/inner/x.md",
]
HOSTILE = {
    "classes": b"[a-c]*.txt\ns[^a-m]cret*\n",
    "dotdot": b"app/../secret.txt\n/../notes.md\n../myfile\n",
    "bom": b"\xef\xbb\xbfsecret.txt\nnotes.md\n",
    "bom-crlf": b"\xef\xbb\xbf# c\r\nsecret.txt\r\n  notes.md  \r\n",
    "reinclude": b"**/*.log\n!app/data/keep.log\n",
    "dir-then-file": b"app\n!app/main.py\n",
    "dir-then-glob": b"app\n!**/main.py\n",
    "dir-star-then-dir": b"app/*\n!app/data\napp/data/deep.log\n",
    "suffix-quirk": b"**file\n**/*.csv\n",
    "escapes": b"a\\*b\nx\\ y\n",
    "all-but": b"*\n!app\n!docs/inner\n",
    "negated-class": b"[^a]*\n",
    "leading-slash": b"/docs\n!/docs/README.md\n",
}


@pytest.fixture(scope="module")
def tree_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ctx-tree")
    for name in TREE:
        write(root / name, f"{name}\n")
    return root


# Cases whose answer changed across Docker releases: imgforge follows moby/patternmatcher
# v0.6 (Docker 25 and newer), whose "**name" suffix rule older CLIs (Debian 12's docker.io
# 20.10) lack.
SINCE = {"suffix-quirk": 25}


def docker_cli_major() -> int:
    version = subprocess.run(
        ["docker", "version", "--format", "{{.Client.Version}}"],
        capture_output=True, text=True, check=True, timeout=30,
    ).stdout  # fmt: skip
    return int(version.split(".", 1)[0])


@pytest.mark.integration
@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_dockerignore_sends_what_docker_build_sends(
    tmp_path: Path, tree_root: Path, client: docker.DockerClient, case: str
) -> None:
    if docker_cli_major() < SINCE.get(case, 0):
        pytest.skip(f"docker CLI older than {SINCE[case]} matches this case the old way")
    directory = tmp_path / "recipe"
    shutil.copytree(tree_root, directory)
    write(directory / ".dockerignore", HOSTILE[case])
    assert imgforge_context(directory) == docker_cli_context(client, directory)


NAMES = st.sampled_from(["a", "b", "x.log", "k.txt", "s3", "d"])
PATTERNS = st.sampled_from(
    ["*.log", "!*.log", "a", "!a/k.txt", "**/k.txt", "d/**", "!d/b", "[a-c]", "[^a]*",
     "a/../b", "/s3", "**", "!**/x.log", "?", "d/*", "!d", "# c", " b "]
)


@pytest.mark.integration
@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    paths=st.sets(st.lists(NAMES, min_size=1, max_size=3).map("/".join), min_size=1, max_size=8),
    rules=st.lists(PATTERNS, max_size=6),
    bom=st.booleans(),
)
def test_generated_dockerignore_sends_what_docker_build_sends(
    tmp_path_factory: pytest.TempPathFactory,
    client: docker.DockerClient,
    paths: set[str],
    rules: list[str],
    bom: bool,
) -> None:
    directory = tmp_path_factory.mktemp("gen")
    for path in sorted(paths, key=len):
        target = directory / path
        if any(p.is_file() for p in target.parents) or target.is_dir():
            continue
        write(target, path)
    data = (b"\xef\xbb\xbf" if bom else b"") + "\n".join(rules).encode()
    write(directory / ".dockerignore", data)
    assert imgforge_context(directory) == docker_cli_context(client, directory)


# ------------------------------------------------------------ the Dockerfile is sealed


def test_the_dockerfile_name_is_outside_the_recipe_path_grammar() -> None:
    assert not PATH_RE.fullmatch(DOCKERFILE)
    cut = DOCKERFILE.index(":") + 1
    assert not any(PATH_RE.fullmatch(DOCKERFILE[:n]) for n in range(cut, len(DOCKERFILE) + 1))


def hostile_dockerfile(root: Path) -> str:
    """A Dockerfile that would copy another image's files, at the old context name."""
    text = f"FROM {MINI}\nCOPY --from={MINI} /etc/passwd /{SECRET}\n"
    write(root / ".imgforge" / "Dockerfile", text)
    return text


def test_a_copied_file_at_the_dockerfile_name_is_refused(tmp_path: Path) -> None:
    """A file named like imgforge's Dockerfile can only come from inside a copied
    directory (no recipe path can name it): the context refuses it."""
    write(tmp_path / DOCKERFILE, hostile_dockerfile(tmp_path))
    path = write(tmp_path / "r.toml", f'name = "r"\nbase = "{MINI}"\n[files]\n"." = "/opt/"\n')
    with pytest.raises(RecipeError) as info:
        build_context(load(path), "FROM scratch\n")
    assert str(info.value) == (
        f"{path}: files..: '{DOCKERFILE}' would collide with another entry of the build context"
    )


def test_a_tar_never_lists_a_path_twice(tmp_path: Path) -> None:
    """Overlapping sources (a directory and a file in it, a requirements file inside a
    copied directory) are sent once."""
    write(tmp_path / "app" / "req.txt", "six\n")
    write(tmp_path / "app" / "main.py", "x\n")
    path = write(
        tmp_path / "r.toml",
        f'name = "r"\nbase = "{MINI}"\n[pip]\nrequirements = ["app/req.txt"]\n'
        '[files]\n"app/" = "/opt/app/"\n"app/main.py" = "/opt/main.py"\n"app" = "/opt/b/"\n',
    )
    with tarfile.open(fileobj=build_context(load(path), "FROM scratch\n")) as tar:
        names = tar.getnames()
    assert sorted(names) == sorted(set(names)) == sorted(
        [DOCKERFILE, IGNORE_FILE, "app", "app/main.py", "app/req.txt"]
    )


@pytest.mark.integration
@pytest.mark.parametrize("strategy", ["dockerfile", "commit"])
def test_files_at_the_old_dockerfile_path_are_only_files(
    tmp_path: Path, client: docker.DockerClient, mini_image: str, strategy: str
) -> None:
    """The recipe copies ``.imgforge/Dockerfile`` (a Dockerfile that would copy another
    image's files): the image is what imgforge rendered, that file at its destination."""
    text = hostile_dockerfile(tmp_path)
    path = write(
        tmp_path / "r.toml",
        f'name = "sealed-{strategy}"\nbase = "{MINI}"\n'
        '[files]\n".imgforge/Dockerfile" = "/opt/df"\n".imgforge/" = "/opt/dir/"\n',
    )
    assert main(build_argv(path, tmp_path / "out", "--strategy", strategy)) == 0
    files = image_files(client, f"sealed-{strategy}:latest", "/")
    assert {"opt/df", "opt/dir/Dockerfile"} <= files
    assert SECRET not in str(files)
    client.api.remove_image(f"sealed-{strategy}:latest", force=True)
    assert text  # the file's content reached /opt/df, never the engine as a Dockerfile


@pytest.mark.integration
@pytest.mark.parametrize("own", [None, "# mine\n*.log\n"], ids=["no-dockerignore", "own"])
def test_copying_the_whole_directory_never_copies_imgforges_dockerfile(
    tmp_path: Path, client: docker.DockerClient, mini_image: str, own: str | None
) -> None:
    """``"." = "/opt/app/"``: the image gets the recipe's files, never imgforge's
    Dockerfile; a .dockerignore the recipe has and copies arrives with the Dockerfile's
    line appended (as the docker CLI appends it for a Dockerfile outside the context),
    with its own mode; without one, imgforge's own excludes itself."""
    name = f"rel-dot-{uuid.uuid4().hex[:8]}"
    root = tmp_path / "recipe"
    write(root / "data.txt", "data\n")
    write(root / "skip.log", "log\n")
    if own is not None:
        write(root / ".dockerignore", own)
        os.chmod(root / ".dockerignore", 0o600)
    path = write(root / f"{name}.toml", f'name = "{name}"\nbase = "{MINI}"\n'
                 '[files]\n"." = "/opt/app/"\n')  # fmt: skip
    with tarfile.open(fileobj=build_context(load(path), "FROM scratch\n")) as tar:
        sent = tar.extractfile(IGNORE_FILE).read()  # type: ignore[union-attr]
        mode = tar.getmember(IGNORE_FILE).mode
    expected = (own or IGNORE_FILE).encode() + f"\n{DOCKERFILE}\n".encode()
    assert (sent, mode) == (expected, 0o600 if own else 0o644)
    assert main(build_argv(path, tmp_path / "out", singularity="none")) == 0
    try:
        files = image_files(client, f"{name}:latest", "/opt/app")
    finally:
        client.images.remove(f"{name}:latest", force=True)
    kept = {"data.txt", f"{name}.toml"}
    assert files == (kept | {IGNORE_FILE} if own else kept | {"skip.log"})
