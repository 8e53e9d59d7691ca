"""[files] means the same in all three build paths: the Dockerfile's COPY (built by the
engine), the commit strategy's script, and the .def's %post (run here the way Apptainer
runs it: %files staged first, then the %post body in a container of the base). Real
builds; each image's tree of the copied paths, from ``docker export``, must be the same."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import docker
import pytest
from reliability_support import build_argv, run_main, toml_dumps, write

from imgforge.engine.context import staging_context
from imgforge.recipes.model import load
from imgforge.sif import definition as deffile

pytestmark = pytest.mark.integration

# Destinations of every kind COPY distinguishes: a new file path, a directory ("/" and
# "/." at the end), a directory the base already has (/etc, /usr/bin), the root, a
# directory merged into one an earlier entry made, a file over a file, nested sources.
FILES = {
    "f.txt": "/opt/a/x",
    "g.txt": "/opt/b/",
    "h.txt": "/opt/c/.",
    "conf/app.conf": "/etc",
    "d": "/opt/y",
    "d/": "/opt/z/.",
    "top.txt": "/",
    "e": "/opt/b",
    "run.sh": "/usr/bin",
    "root/": "/",
    "again.txt": "/opt/a/x",
}
WATCHED = ("opt/", "etc/app.conf", "top.txt", "usr/bin/run.sh", "srv/")


def make_recipe(root: Path, base: str) -> Path:
    recipes = root / "recipes"
    for name, text in {
        "f.txt": "f\n",
        "g.txt": "g\n",
        "h.txt": "h\n",
        "again.txt": "again\n",
        "conf/app.conf": "conf\n",
        "d/top.txt": "d top\n",
        "d/sub/in.txt": "d in\n",
        "e/e.txt": "e\n",
        "top.txt": "root file\n",
        "run.sh": "#!/bin/sh\necho run\n",
        "root/srv/data/r.txt": "r\n",
    }.items():
        write(recipes / name, text)
    (recipes / "run.sh").chmod(0o755)
    (recipes / "d" / "sub").chmod(0o700)
    doc = {"name": "rel-copy", "base": base, "files": FILES}
    return write(recipes / "rel-copy.toml", toml_dumps(doc))


def tree(client: docker.DockerClient, image: str) -> dict[str, tuple[object, ...]]:
    """The watched paths of ``image``: type, mode, owner, size, link and content hash
    (directory times differ by when each path ran, so they are left out)."""
    container = client.api.create_container(image, command=["true"], entrypoint=[])["Id"]
    try:
        stream = io.BytesIO(b"".join(client.api.export(container)))
    finally:
        client.api.remove_container(container, force=True)
    found = {}
    with tarfile.open(fileobj=stream) as tar:
        for member in tar:
            name = member.name.rstrip("/")
            if not any(name == w.rstrip("/") or name.startswith(w) for w in WATCHED):
                continue
            data = tar.extractfile(member) if member.isreg() else None
            digest = hashlib.sha256(data.read()).hexdigest() if data else ""
            mtime = member.mtime if member.isreg() else None
            found[name] = (
                member.type,
                oct(member.mode),
                member.uid,
                member.gid,
                member.size,
                member.linkname,
                digest,
                mtime,
            )
    return found


def run_def_post(
    client: docker.DockerClient, base: str, recipe: Path, deffile_text: str, env_file: Path
) -> str:
    """The .def as Apptainer builds it: %files (the same staging tar), then %post."""
    definition = deffile.parse(deffile_text)
    script = definition.body("post")
    container = client.api.create_container(
        base, entrypoint=["/bin/sh", "-c", script], working_dir="/", network_disabled=True
    )["Id"]
    try:
        client.api.put_archive(container, "/", staging_context(load(recipe)))
        env = io.BytesIO()
        with tarfile.open(fileobj=env, mode="w") as tar:
            data = env_file.read_bytes()
            info = tarfile.TarInfo(".singularity.d/env/10-docker2singularity.sh")
            info.size, info.mode = len(data), 0o755
            tar.addfile(info, io.BytesIO(data))
        env.seek(0)
        client.api.put_archive(container, "/", env)
        client.api.start(container)
        status = client.api.wait(container)["StatusCode"]
        logs = client.api.logs(container).decode(errors="replace")
        assert status == 0, logs
        return str(client.api.commit(container)["Id"])
    finally:
        client.api.remove_container(container, force=True)


def test_files_mean_the_same_in_the_dockerfile_the_commit_strategy_and_the_def(
    project: Path,
    mini_image: str,
    client: docker.DockerClient,
    capsys: pytest.CaptureFixture[str],
) -> None:
    recipe = make_recipe(project, mini_image)
    trees = {}
    for strategy in ("dockerfile", "commit"):
        out = project / f"out-{strategy}"
        code, _, err = run_main(build_argv(recipe, out, "--strategy", strategy), capsys)
        assert code == 0, err
        manifest = json.loads((out / "rel-copy" / "manifest.json").read_text())
        trees[strategy] = tree(client, manifest["docker_image_id"])
    out = project / "out-dockerfile" / "rel-copy"
    committed = run_def_post(
        client, mini_image, recipe, (out / "rel-copy.def").read_text(), out / "imgforge-env.sh"
    )
    try:
        trees["def"] = tree(client, committed)
    finally:
        client.api.remove_image(committed, force=True)
    expected = trees["dockerfile"]
    assert "opt/a/x" in expected and "opt/c/h.txt" in expected and "etc/app.conf" in expected
    assert "usr/bin/run.sh" in expected and "srv/data/r.txt" in expected
    assert "opt/y/sub/in.txt" in expected and "opt/z/top.txt" in expected
    for kind in ("commit", "def"):
        assert trees[kind] == expected, kind
