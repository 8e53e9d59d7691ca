"""--sqsh on a real engine: the enroot image holds the same tree as the steps of
``enroot import dockerd://`` make of the same image (docker export, tar without /dev and
/.dockerenv, chmod u+rX, mksquashfs -all-root), it is recorded and incremental, and what
enroot can't carry is refused before anything is built. The real enroot's own checks are in
tests/enroot."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from imgforge.cli import main

pytestmark = pytest.mark.integration

STANDIN = "imgforge-standin/ngc-pytorch:24.01-py3"
NAME = "itest-sqsh"
RECIPE = f"""\
name = "{NAME}"
base = "{STANDIN}"
[env]
SQSH_NOTE = "kept as is: $HOME, \\"half, it's"
[labels]
"org.example.note" = "two words"
[runscript]
command = "env -0"
"""


def listing(image: Path) -> list[str]:
    """``unsquashfs -lln`` without times, and without directory sizes (a squashfs-internal
    figure that differs between writers)."""
    lines = subprocess.run(
        ["unsquashfs", "-lln", str(image)], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    out = []
    for line in lines:
        fields = line.split(None, 5)
        if len(fields) < 6:
            continue
        mode, owner, size, _, _, path = fields
        out.append(f"{mode} {owner} {'' if mode.startswith('d') else size} {path}")
    return sorted(out)


def import_like_enroot(image: str, work: Path, sqsh: Path) -> Path:
    """What `enroot import dockerd://IMAGE` does to the exported tree (enroot 4.1.2
    docker::daemon), with imgforge's /etc files copied in, packed by mksquashfs."""
    rootfs = work / "rootfs"
    rootfs.mkdir()
    container = docker.from_env().containers.create(image)
    try:
        subprocess.run(
            f"docker export {container.id} | tar -C {rootfs} --warning=no-timestamp --anchored "
            "--exclude='dev/*' --exclude='.dockerenv' -px",
            shell=True,
            check=True,
        )
    finally:
        container.remove()
    subprocess.run(["chmod", "-f", "-R", "u+rX", str(rootfs)], check=False)
    subprocess.run(
        ["find", str(rootfs), "-maxdepth", "15", "-type", "d", "!", "-perm", "-u=w",
         "-exec", "chmod", "-f", "u+w", "{}", "+"],
        check=False,
    )  # fmt: skip
    for name in ("environment", "rc", "rc.local", "fstab"):
        data = subprocess.run(
            ["unsquashfs", "-cat", str(sqsh), f"etc/{name}"], capture_output=True, check=True
        ).stdout
        (rootfs / "etc" / name).write_bytes(data)
    (rootfs / "workspace").mkdir(exist_ok=True)
    reference = work / "reference.sqsh"
    subprocess.run(
        ["mksquashfs", str(rootfs), str(reference), "-all-root", "-noappend", "-quiet",
         "-no-progress"],
        check=True, capture_output=True,
    )  # fmt: skip
    return reference


@pytest.fixture(scope="module")
def built(standin_image: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("sqsh")
    (root / f"{NAME}.toml").write_text(RECIPE)
    out = root / "out"
    argv = ["build", str(root / f"{NAME}.toml"), "--out", str(out), "--sqsh"]
    assert main([*argv, "--singularity", "none"]) == 0
    return out / NAME


def test_the_sqsh_is_the_tree_enroots_import_makes(built: Path, tmp_path: Path) -> None:
    sqsh = built / f"{NAME}.sqsh"
    reference = import_like_enroot(f"{NAME}:latest", tmp_path, sqsh)
    assert listing(sqsh) == listing(reference)
    assert (sqsh.stat().st_mode & 0o777) == 0o644


def test_enroots_files_hold_the_image_config(built: Path) -> None:
    sqsh = built / f"{NAME}.sqsh"
    inspect = docker.from_env().api.inspect_image(f"{NAME}:latest")["Config"]

    def cat(name: str) -> str:
        return subprocess.run(
            ["unsquashfs", "-cat", str(sqsh), name], capture_output=True, text=True, check=True
        ).stdout

    assert cat("etc/environment").splitlines() == inspect["Env"]
    rc = cat("etc/rc")
    assert "# org.example.note two words\n" in rc
    assert 'cd "/workspace" && unset OLDPWD || exit 1\n' in rc
    assert "    exec '/opt/nvidia/nvidia_entrypoint.sh' 'env' '-0'\n" in rc
    assert cat("etc/fstab") == ""


def test_the_sqsh_is_recorded_and_kept_while_up_to_date(
    built: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = json.loads((built / "manifest.json").read_text())
    record = manifest["sqsh"]
    sqsh = built / f"{NAME}.sqsh"
    assert record["path"] == sqsh.name and record["format"] == "sqsh"
    assert record["size"] == sqsh.stat().st_size
    assert record["compression"] == "gzip"
    recipe = built.parent.parent / f"{NAME}.toml"
    argv = ["build", str(recipe), "--out", str(built.parent), "--sqsh", "--singularity", "none"]
    capsys.readouterr()
    assert main(argv) == 0
    assert "up to date 1" in capsys.readouterr().out
    sqsh.unlink()
    assert main(argv) == 0
    assert "built 1" in capsys.readouterr().out
    assert sqsh.is_file()


def test_what_enroot_cant_carry_is_refused_before_the_build(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], standin_image: str
) -> None:
    recipe = tmp_path / "itest-sqsh-refused.toml"
    recipe.write_text(f'base = "{STANDIN}"\n[env]\nCACHE = "${{HOME}}/.cache"\n')
    argv = ["build", str(recipe), "--out", str(tmp_path / "out"), "--singularity", "none"]
    assert main([*argv, "--sqsh"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (
        f"imgforge: error: {recipe}: env.CACHE: --sqsh: enroot replaces ${{HOME}} with the host's "
        "value when the container starts"
    )
    assert not (tmp_path / "out" / "itest-sqsh-refused").exists()
    recipe.write_text(f'base = "{STANDIN}"\n')
    assert main([*argv, "--sqsh", "--compression", "lz4"]) == 2
    assert "`enroot create` runs; use lzo" in capsys.readouterr().err


def test_outputs_in_the_recipe_choose_the_files(tmp_path: Path, standin_image: str) -> None:
    recipe = tmp_path / "itest-sqsh-outputs.toml"
    recipe.write_text(
        f'base = "{STANDIN}"\n[env]\nX = "1"\n[build]\noutputs = ["docker", "sqsh"]\n'
    )
    assert main(["build", str(recipe), "--out", str(tmp_path / "out"), "--compression", "lzo"]) == 0
    made = tmp_path / "out" / "itest-sqsh-outputs"
    assert (made / "itest-sqsh-outputs.sqsh").is_file()
    assert not (made / "itest-sqsh-outputs.sif").exists()
    manifest = json.loads((made / "manifest.json").read_text())
    assert manifest["sif"] is None and manifest["sqsh"]["compression"] == "lzo"
    found = subprocess.run(
        ["unsquashfs", "-s", str(made / "itest-sqsh-outputs.sqsh")],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert "Compression lzo" in found


@pytest.fixture(autouse=True, scope="module")
def _cleanup() -> Iterator[None]:
    yield None
    client = docker.from_env()
    for image in (f"{NAME}:latest", "itest-sqsh-outputs:latest"):
        with contextlib.suppress(docker.errors.ImageNotFound):
            client.images.remove(image, force=True)


def test_tools_are_here() -> None:
    assert shutil.which("unsquashfs") and shutil.which("mksquashfs")


def test_volumes_leave_no_engine_volume_and_a_dotted_workdir_is_made(
    tmp_path: Path, standin_image: str
) -> None:
    """A base with a VOLUME (each export's container gets an anonymous volume, removed with
    it) and a WORKDIR with `..` (made as `mkdir -p` makes it)."""
    client = docker.from_env()
    base = "itest-sqsh-volume:1"
    dockerfile = f'FROM {STANDIN}\nVOLUME ["/vdata"]\nWORKDIR /wa/../wb/\n'
    client.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=base, rm=True)
    recipe = tmp_path / "itest-sqsh-volume.toml"
    recipe.write_text(f'base = "{base}"\n')
    volumes = {v.name for v in client.volumes.list()}
    try:
        argv = ["build", str(recipe), "--out", str(tmp_path / "out"), "--sqsh"]
        assert main([*argv, "--singularity", "native"]) == 0
    finally:
        for image in (base, "itest-sqsh-volume:latest"):
            with contextlib.suppress(docker.errors.ImageNotFound):
                client.images.remove(image, force=True)
    assert {v.name for v in client.volumes.list()} == volumes
    sqsh = tmp_path / "out" / "itest-sqsh-volume" / "itest-sqsh-volume.sqsh"
    names = {line.split(None, 5)[-1] for line in listing(sqsh)}
    assert "squashfs-root/wb" in names and "squashfs-root/wa" in names


def test_a_rebuild_without_sqsh_removes_the_old_one(tmp_path: Path, standin_image: str) -> None:
    recipe = tmp_path / "itest-sqsh-stale.toml"
    out = tmp_path / "out"
    argv = ["build", str(recipe), "--out", str(out), "--singularity", "none"]
    sqsh = out / "itest-sqsh-stale" / "itest-sqsh-stale.sqsh"
    try:
        recipe.write_text(f'base = "{STANDIN}"\n[env]\nV = "1"\n')
        assert main([*argv, "--sqsh"]) == 0 and sqsh.is_file()
        recipe.write_text(f'base = "{STANDIN}"\n[env]\nV = "2"\n')
        assert main(argv) == 0
    finally:
        with contextlib.suppress(docker.errors.ImageNotFound):
            docker.from_env().images.remove("itest-sqsh-stale:latest", force=True)
    assert not sqsh.exists()
    assert "sqsh" not in json.loads((out / "itest-sqsh-stale" / "manifest.json").read_text())
