"""The native SIF backend for real: one image with hostile env values, built on the NGC
stand-in, read back with tools that are not imgforge's (sqfs2tar, unsquashfs, chroot + sh,
PyPI "sif") and checked against the Docker image."""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import io
import json
import os
import shutil
import stat
import subprocess
import tarfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import docker
import docker.errors
import pytest

import imgforge
from imgforge.cli import main
from imgforge.recipes.image import ImageConfig, split_env
from imgforge.sif import format as sif
from imgforge.sif.assemble import write_sif
from imgforge.sif.backend import SifRequest
from imgforge.sif.layout import WRITTEN
from imgforge.sif.metadata import build_date
from imgforge.sif.read import SQUASHFS_MAGIC, SifImage

pytestmark = pytest.mark.integration

STANDIN_REF = "imgforge-standin/ngc-pytorch:24.01-py3"
BANNER = "== PyTorch (imgforge stand-in) =="
NAME = "itest-sifnative"
IMAGE = f"{NAME}:latest"
EPOCH = 1700000000
LIBS = "/.singularity.d/libs"
# Values no pre-1.5 converter keeps (its `${NAME:-%q}` form escaped them twice,
# apptainer#3328; docs/APPTAINER.md, "Environment"), all valid in a recipe.
HOSTILE = {
    "HOSTILE_HOME": "$HOME",
    "HOSTILE_BRACE": "${X}",
    "HOSTILE_QUOTES": "it's \"double\" and 'single'",
    "HOSTILE_BACKSLASH": "C:\\dir\\ and \\\\ two and trailing \\",
    "HOSTILE_BACKTICK": "`id`",
    "HOSTILE_SUBST": "$(id) and $((1+1))",
    "HOSTILE_UNICODE": "héllo wörld ✓ 日本語",
    "HOSTILE_SPACES": "   ",
    "HOSTILE_EMPTY": "",
}
LABEL = ("org.example.team", "sif tests ✓")
DATA_FILE = "/opt/sifdata/hello.txt"
# The image's ENTRYPOINT (the NGC one, then this) prints one env value and then every
# argument between bars.
COMMAND = '/bin/sh -c \'printf "%s|" "$HOSTILE_SUBST" "$@"; echo\' imgforge-run'
CHROOT = shutil.which("chroot") or "/usr/sbin/chroot"
SOURCE_ENV = 'for script in /.singularity.d/env/*.sh; do . "$script"; done; '

# Docker's init layer (the paths it creates for every container) and their parents:
# the first six are dropped from the SIF, the others have the creation time as mtime.
INIT_LAYER_LEFTOVERS = {
    ".dockerenv", "dev/console", "etc/hostname", "etc/mtab", "dev/pts", "dev/shm"
}  # fmt: skip
CREATED_BY_ENGINE = {"dev", "etc"}

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="chroot needs root")


def toml_string(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)  # a JSON string is a TOML basic string


def recipe_text() -> str:
    env = "".join(f"{key} = {toml_string(value)}\n" for key, value in HOSTILE.items())
    return (
        f'name = "{NAME}"\nbase = "{STANDIN_REF}"\n\n[env]\n{env}\n'
        f'[files]\n"data/hello.txt" = "/opt/sifdata/"\n\n'
        f"[labels]\n{toml_string(LABEL[0])} = {toml_string(LABEL[1])}\n\n"
        f"[runscript]\nentrypoint = {toml_string(COMMAND)}\n"
    )


def build(recipe: Path, out: Path, *extra: str) -> int:
    return main(
        ["build", str(recipe), "--out", str(out), "--network", "host",
         "--singularity", "native", *extra]
    )  # fmt: skip


@dataclass(frozen=True)
class Built:
    recipe: Path
    out: Path
    sif: Path
    inspect: dict[str, Any]

    @property
    def config(self) -> ImageConfig:
        return ImageConfig.from_inspect(self.inspect)

    @property
    def env(self) -> dict[str, str]:
        return dict(split_env(entry) for entry in self.inspect["Config"]["Env"])


@pytest.fixture(scope="module")
def client(standin_image: str) -> docker.DockerClient:
    return docker.from_env(timeout=600)


@pytest.fixture(scope="module")
def built(client: docker.DockerClient, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    """The one image of this module: hostile env, a [files] entry, a runscript command."""
    root = tmp_path_factory.mktemp("sif")
    recipe = root / "recipes" / f"{NAME}.toml"
    (root / "recipes" / "data").mkdir(parents=True)
    (root / "recipes" / "data" / "hello.txt").write_text("hello sif\n")
    recipe.write_text(recipe_text())
    out = root / "build"
    try:
        assert build(recipe, out) == 0
        yield Built(recipe, out, out / NAME / f"{NAME}.sif", client.api.inspect_image(IMAGE))
    finally:
        with contextlib.suppress(docker.errors.ImageNotFound):
            client.images.remove(IMAGE, force=True)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def rootfs(built: Built, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The SIF's squashfs extracted with unsquashfs (as root: owners and modes kept)."""
    image = SifImage.open(built.sif)
    directory = tmp_path_factory.mktemp("rootfs") / "root"
    subprocess.run(
        ["unsquashfs", "-q", "-n", "-o", str(image.offset), "-d", str(directory), str(built.sif)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def scratch(tmp_path: Path) -> Iterator[Path]:
    """A per-test directory removed afterwards: SIF copies are large."""
    yield tmp_path
    shutil.rmtree(tmp_path, ignore_errors=True)


# --- helpers that do not use imgforge's own readers -------------------------------------------

Listing = dict[str, tuple[Any, ...]]


def listing(stream: IO[bytes]) -> Listing:
    """name -> (type, mode, uid, gid, mtime, symlink target, device, sha256) of a tar
    stream; a hard link reads as the entry it links to."""
    entries: Listing = {}
    links: dict[str, str] = {}
    with tarfile.open(fileobj=stream, mode="r|") as tar:
        for member in tar:
            name = member.name.removeprefix("./").rstrip("/")
            if member.islnk():
                links[name] = member.linkname.removeprefix("./")
                continue
            digest = ""
            if member.isreg():
                handle = tar.extractfile(member)
                assert handle is not None
                digest = hashlib.sha256(handle.read()).hexdigest()
            device = (member.devmajor, member.devminor) if member.isdev() else None
            entries[name] = (
                member.type, member.mode & 0o7777, member.uid, member.gid, int(member.mtime),
                member.linkname if member.issym() else "", device, digest,
            )  # fmt: skip
    for name, target in links.items():
        entries[name] = entries[target]
    return entries


def partition_file(path: Path, directory: Path) -> Path:
    """The PrimSys partition of the SIF at ``path``, found with plain struct reads."""
    with path.open("rb") as handle:
        header = handle.read(128)
        total, offset = int.from_bytes(header[88:96], "little"), 4096
        for slot in range(total):
            handle.seek(offset + slot * 585)
            record = handle.read(585)
            kind, used = int.from_bytes(record[0:4], "little"), record[4]
            parttype = int.from_bytes(record[201 + 4 : 201 + 8], "little")
            if used and kind == 0x4004 and parttype == 2:
                start = int.from_bytes(record[17:25], "little")
                size = int.from_bytes(record[25:33], "little")
                break
        else:
            raise AssertionError(f"{path}: no PrimSys partition")
        handle.seek(start)
        target = directory / f"{path.stem}.sqfs"
        target.write_bytes(handle.read(size))
    return target


def squashfs_listing(path: Path, directory: Path) -> Listing:
    part = partition_file(path, directory)
    with subprocess.Popen(["sqfs2tar", "--no-xattr", str(part)], stdout=subprocess.PIPE) as proc:
        assert proc.stdout is not None
        entries = listing(proc.stdout)
    assert proc.returncode == 0
    part.unlink()
    return entries


def export_listing(client: docker.DockerClient, image: str, directory: Path) -> Listing:
    container = client.containers.create(image, command=["/none"], network_mode="none")
    try:
        archive = directory / "export.tar"
        with archive.open("wb") as handle:
            for chunk in container.export():
                handle.write(chunk)
    finally:
        container.remove(force=True)
    with archive.open("rb") as handle:
        entries = listing(handle)
    archive.unlink()
    return entries


def chroot_sh(root: Path, script: str, *args: str) -> subprocess.CompletedProcess[bytes]:
    """``/bin/sh -c script`` inside ``root`` with an empty environment."""
    return subprocess.run(
        [CHROOT, str(root), "/bin/sh", "-c", script, "sh", *args],
        env={},
        capture_output=True,
        timeout=120,
    )


def env_dump(output: bytes) -> dict[str, str]:
    return dict(split_env(entry) for entry in output.decode().split("\0") if entry)


def repack(built: Built, target: Path, edit: Callable[[str, bytes], bytes]) -> Path:
    """A copy of the SIF whose squashfs went through sqfs2tar -> ``edit`` -> tar2sqfs,
    re-assembled with write_sif as make.py does (same Deffile, config and arch)."""
    original = SifImage.open(built.sif)
    part = partition_file(built.sif, target.parent)
    squashfs = target.with_suffix(".sqfs")
    changed = 0
    with (
        subprocess.Popen(["sqfs2tar", str(part)], stdout=subprocess.PIPE) as source,
        subprocess.Popen(
            # gzip level 1: 6x faster than level 9 here. (Not lz4: unsquashfs 4.5.1 cannot
            # read tar2sqfs 1.2's lz4 images, "failed to read id table block".)
            ["tar2sqfs", "--quiet", "--force", "-c", "gzip", "-X", "level=1", str(squashfs)],
            stdin=subprocess.PIPE,
        ) as sink,
    ):
        assert source.stdout is not None and sink.stdin is not None
        with (
            tarfile.open(fileobj=source.stdout, mode="r|") as tin,
            tarfile.open(fileobj=sink.stdin, mode="w|", format=tarfile.PAX_FORMAT) as tout,
        ):
            for member in tin:
                if not member.isreg():
                    tout.addfile(member)
                    continue
                handle = tin.extractfile(member)
                assert handle is not None
                before = handle.read()
                data = edit(member.name.removeprefix("./"), before)
                changed += data != before
                member.size = len(data)
                tout.addfile(member, io.BytesIO(data))
        sink.stdin.close()
    assert source.returncode == 0 and sink.returncode == 0
    assert changed == 1  # the edit found its file
    deffile = original.object_text("Deffile")
    assert deffile is not None
    # imgforge's files as they were: inspect-metadata.json describes the untampered SIF.
    files = {
        path: (original.read_file(f"/.singularity.d/{path}") or b"").decode() for path in WRITTEN
    }
    request = SifRequest(
        name=IMAGE, image_id=built.inspect["Id"], config=built.config, files=files,
        deffile=deffile, convert_deffile="", archive=target.with_suffix(".tar"),
        target=target,
    )  # fmt: skip
    write_sif(request, squashfs, target)
    part.unlink()
    squashfs.unlink()
    return target


def replace_in(path: str, old: bytes, new: bytes) -> Callable[[str, bytes], bytes]:
    """An edit for :func:`repack` that replaces ``old`` once in the file at ``path``."""

    def edit(name: str, data: bytes) -> bytes:
        if name != path.lstrip("/"):
            return data
        assert data.count(old) == 1, (path, old)
        return data.replace(old, new)

    return edit


def verify(*args: str | Path) -> int:
    return main(["verify", *map(str, args)])


# --- a. the file system ---------------------------------------------------------------------


def test_verify_deep_passes(built: Built, capsys: pytest.CaptureFixture[str]) -> None:
    assert verify(NAME, "--out", built.out, "--deep") == 0
    said = capsys.readouterr().out.strip()
    assert said.startswith(f"{built.sif} matches {built.inspect['Id']} (deep): ")
    assert said.endswith("static checks (no apptainer on PATH)") or "ran it with" in said


def test_squashfs_holds_the_docker_export(
    built: Built, client: docker.DockerClient, scratch: Path
) -> None:
    """sqfs2tar of the partition against ``docker export``: every path with its type, mode,
    owner, mtime, link target, device and content; only imgforge's layout differs."""
    in_sif = squashfs_listing(built.sif, scratch)
    exported = export_listing(client, IMAGE, scratch)
    assert len(exported) > 5000
    layout = {
        name for name in in_sif
        if name == ".singularity.d" or name.startswith(".singularity.d/")
        or name in {"singularity", ".run", ".exec", ".shell", ".test", "environment"}
    }  # fmt: skip
    added = set(in_sif) - set(exported) - layout
    assert added <= {"dev", "etc", "home", "proc", "root", "sys", "tmp", "var", "var/tmp"}
    # What Docker's init layer adds to every container is not the image's.
    assert set(exported) >= INIT_LAYER_LEFTOVERS
    assert exported["etc/mtab"][5] == "/proc/mounts"
    assert not INIT_LAYER_LEFTOVERS & set(in_sif)
    bind_files = {"etc/hosts", "etc/resolv.conf"}
    kept = set(exported) - bind_files - CREATED_BY_ENGINE - INIT_LAYER_LEFTOVERS
    assert {n: in_sif.get(n) for n in kept} == {n: exported[n] for n in kept}
    # What the engine makes at `docker create` has that moment as mtime: one export's
    # differs from another's, all else must not.
    for name in CREATED_BY_ENGINE & set(exported):
        assert in_sif[name][:4] + in_sif[name][5:] == exported[name][:4] + exported[name][5:]
    for name in bind_files:
        kind, mode, uid, gid, *_, digest = in_sif[name]
        assert (kind, mode, uid, gid, digest) == (
            tarfile.REGTYPE, 0o644, 0, 0, hashlib.sha256(b"").hexdigest()
        ), name  # fmt: skip
    assert in_sif[DATA_FILE.lstrip("/")][-1] == hashlib.sha256(b"hello sif\n").hexdigest()
    for name in [".singularity.d/runscript", ".singularity.d/env/10-docker2singularity.sh",
                 ".singularity.d/env/99-base.sh"]:  # fmt: skip
        assert in_sif[name][:4] == (tarfile.REGTYPE, 0o755, 0, 0), name
    assert in_sif[".singularity.d/labels.json"][:4] == (tarfile.REGTYPE, 0o644, 0, 0)
    assert in_sif[".singularity.d/libs"][0] == tarfile.DIRTYPE
    assert in_sif["singularity"][5] == ".singularity.d/runscript"


def test_sif_objects(built: Built) -> None:
    image = SifImage.open(built.sif)
    assert image.container is not None
    header, descriptors = image.container.header, image.container.descriptors
    assert (header.launch, header.arch_name) == (sif.LAUNCH_SCRIPT.decode(), "amd64")
    assert header.id.version == 4  # random without SOURCE_DATE_EPOCH
    assert header.data_offset + header.data_size == built.sif.stat().st_size
    # Apptainer's order: Deffile, the JSON objects by name, the partition.
    assert [(d.kind, d.name) for d in descriptors] == [
        ("Deffile", ""), ("GenericJSON", "inspect-metadata.json"),
        ("GenericJSON", "oci-config.json"), ("Partition", ""),
    ]  # fmt: skip
    # Header and descriptors carry the build time, which the build-date label also says.
    labels = json.loads(image.read_file("/.singularity.d/labels.json") or b"")
    assert {header.created, header.modified} == {d.created for d in descriptors}
    assert labels["org.label-schema.build-date"] == build_date(header.created)
    assert image.offset % 4096 == 0
    assert descriptors[3].partition == ("Squashfs", "PrimSys", "amd64")
    # What `apptainer build X.sif docker-daemon:NAME:TAG` embeds; the recipe's .def stays
    # an artifact of its own.
    deffile = image.object_text("Deffile")
    assert deffile == f"bootstrap: docker-daemon\nfrom: {IMAGE}\n\n"
    assert deffile.encode() == image.read_file("/.singularity.d/Singularity")
    assert (built.out / NAME / f"{NAME}.def").read_text().startswith("# Generated by imgforge")
    oci = json.loads(image.object_text("GenericJSON", "oci-config.json") or "")
    config = built.inspect["Config"]
    assert oci["Env"] == config["Env"]
    assert oci["Entrypoint"] == config["Entrypoint"] and oci.get("Cmd") == config["Cmd"]
    assert oci["WorkingDir"] == config["WorkingDir"] and oci["Labels"] == config["Labels"]


def test_sif_is_executable_like_apptainers(built: Built) -> None:
    """0755 under the usual umask 022: `./NAME.sif` starts the launch line's interpreter
    (where run-singularity is not installed: "not found", never "Permission denied"; where
    it is, tests/apptainer runs it)."""
    assert stat.S_IMODE(built.sif.stat().st_mode) == 0o755
    if shutil.which("run-singularity") is None:
        result = subprocess.run([str(built.sif)], capture_output=True)
        assert result.returncode == 127, result.stderr
        assert b"run-singularity" in result.stderr


def test_labels_are_the_images_with_apptainers_build_labels(built: Built) -> None:
    image = SifImage.open(built.sif)
    labels = json.loads(image.read_file("/.singularity.d/labels.json") or b"")
    build = {k: v for k, v in labels.items() if k not in built.inspect["Config"]["Labels"]}
    assert {k: labels[k] for k in built.inspect["Config"]["Labels"]} == built.inspect["Config"][
        "Labels"
    ]
    assert build.pop("org.label-schema.build-date")
    assert build == {
        "org.label-schema.schema-version": "1.0",
        "org.label-schema.build-arch": "amd64",
        "org.label-schema.usage.imgforge.version": imgforge.__version__,
        "org.label-schema.usage.singularity.deffile.bootstrap": "docker-daemon",
        "org.label-schema.usage.singularity.deffile.from": IMAGE,
    }


def test_inspect_metadata_is_what_apptainer_inspect_reads_from_the_files(
    built: Built, rootfs: Path
) -> None:
    """Each attribute is the file in the image, as inspect's shell loop prints it."""
    image = SifImage.open(built.sif)
    document = json.loads(image.object_text("GenericJSON", "inspect-metadata.json") or "")
    attributes = document.pop("data")["attributes"]
    assert document == {"type": "container"}
    meta = rootfs / ".singularity.d"

    def text(path: Path) -> str:
        return path.read_text().rstrip("\n")

    assert attributes == {
        "labels": json.loads((meta / "labels.json").read_text()),
        "deffile": text(meta / "Singularity"),
        "runscript": text(meta / "runscript"),
        "startscript": text(meta / "startscript"),
        "environment": {
            f"/.singularity.d/env/{name}": text(meta / "env" / name)
            for name in ("10-docker2singularity.sh", "90-environment.sh")
        },
    }


# --- b, c. the environment and the runscript, run ----------------------------------------------


@needs_root
def test_sourcing_the_env_scripts_gives_exactly_the_image_env(built: Built, rootfs: Path) -> None:
    shell_only = chroot_sh(rootfs, "env -0")
    assert shell_only.returncode == 0, shell_only.stderr
    result = chroot_sh(rootfs, SOURCE_ENV + "env -0")
    assert result.returncode == 0, result.stderr
    assert result.stderr == b""
    image_env = built.env
    assert len(image_env) > 60 and "CUDA_VERSION" in image_env and "NCCL_VERSION" in image_env
    assert {key: image_env[key] for key in HOSTILE} == HOSTILE
    expected = {**env_dump(shell_only.stdout), **image_env}
    # What 99-base.sh adds, exactly as Apptainer's does: the --nv library dir and PS1.
    expected["LD_LIBRARY_PATH"] = (
        f"{image_env['LD_LIBRARY_PATH']}:{LIBS}" if image_env.get("LD_LIBRARY_PATH") else LIBS
    )
    # PS1 is the shell's own when it has one (dash: "# " for root), else "Apptainer> ".
    got = env_dump(result.stdout)
    assert got.pop("PS1")
    assert got == expected


@needs_root
def test_each_env_script_alone_gives_the_image_env(built: Built, rootfs: Path) -> None:
    """10-docker2singularity.sh (what %post of a localimage build sources) and
    90-environment.sh each hold the whole Env on their own."""
    shell_only = env_dump(chroot_sh(rootfs, "env -0").stdout)
    for script in ["10-docker2singularity.sh", "90-environment.sh"]:
        result = chroot_sh(rootfs, f". /.singularity.d/env/{script}; env -0")
        assert result.returncode == 0, result.stderr
        # 90-environment.sh leaves PATH as the runtime completed it after the 10- file.
        image_env = {k: v for k, v in built.env.items() if k != "PATH" or script[0] == "1"}
        assert env_dump(result.stdout) == {**shell_only, **image_env}, script


@needs_root
def test_runscript_runs_the_entrypoint_then_the_command_with_the_arguments(
    rootfs: Path,
) -> None:
    arguments = ("two  words $HOME", "it's", "")
    no_eval = "export SINGULARITY_NO_EVAL=1; "
    result = chroot_sh(rootfs, no_eval + SOURCE_ENV + 'exec /.singularity.d/runscript "$@"',
                       *arguments)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert BANNER in result.stderr.decode()  # the NGC entrypoint ran first
    assert result.stdout.decode() == "$(id) and $((1+1))|two  words $HOME|it's||\n"
    # Apptainer's default: the shell evaluates the arguments (HOME is unset here).
    evaluated = chroot_sh(rootfs, SOURCE_ENV + 'exec /.singularity.d/runscript "$@"', *arguments)
    assert evaluated.stdout.decode() == "$(id) and $((1+1))|two  words |it's||\n"
    plain = chroot_sh(rootfs, SOURCE_ENV + "exec /.singularity.d/runscript")
    assert plain.stdout.decode() == "$(id) and $((1+1))|\n"
    assert BANNER in plain.stderr.decode()


@needs_root
def test_legacy_actions_run_the_runscript(rootfs: Path) -> None:
    """/.singularity.d/actions/run (Singularity 2.x, OCI bundles) sources the env itself."""
    result = subprocess.run(
        [CHROOT, str(rootfs), "/.singularity.d/actions/run", "x"], env={}, capture_output=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode() == "$(id) and $((1+1))|x|\n"


# --- d. verify catches tampering ------------------------------------------------------------


def problems_of(capsys: pytest.CaptureFixture[str]) -> list[str]:
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return captured.out.splitlines()


def test_verify_names_an_env_value_changed_in_10_docker2singularity(
    built: Built, scratch: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tampered = repack(
        built,
        scratch / "env.sif",
        replace_in("/.singularity.d/env/10-docker2singularity.sh",
                   b"export HOSTILE_SUBST='$(id) and $((1+1))'\n",
                   b"export HOSTILE_SUBST='$(id)'\n"),
    )  # fmt: skip
    capsys.readouterr()
    assert verify(tampered, "--image", built.inspect["Id"]) == 1
    assert problems_of(capsys) == [
        "env HOSTILE_SUBST: image '$(id) and $((1+1))', SIF '$(id)' "
        "(in /.singularity.d/env/10-docker2singularity.sh)",
        "inspect-metadata.json environment: differs from the SIF's files",
    ]


def test_verify_names_a_label_changed_in_labels_json(
    built: Built, scratch: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = json.dumps(LABEL[1], ensure_ascii=False).encode()
    tampered = repack(
        built, scratch / "label.sif",
        replace_in("/.singularity.d/labels.json", b": " + old, b': "tampered"'),
    )  # fmt: skip
    capsys.readouterr()
    assert verify(tampered, "--image", built.inspect["Id"]) == 1
    assert problems_of(capsys) == [
        f"label {LABEL[0]}: image {LABEL[1]!r}, SIF 'tampered'",
        "inspect-metadata.json labels: differs from the SIF's files",
    ]


def test_verify_deep_names_a_file_whose_content_changed(
    built: Built, scratch: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tampered = repack(
        built, scratch / "file.sif", replace_in(DATA_FILE, b"hello sif\n", b"hello SIF\n")
    )
    capsys.readouterr()
    # The same size: only --deep reads file contents.
    assert verify(tampered, "--image", built.inspect["Id"]) == 0
    capsys.readouterr()
    assert verify(tampered, "--image", built.inspect["Id"], "--deep") == 1
    old, new = (hashlib.sha256(text).hexdigest() for text in (b"hello sif\n", b"hello SIF\n"))
    assert problems_of(capsys) == [f"path {DATA_FILE}: sha256 {old} != {new}"]


def test_verify_rejects_a_corrupted_squashfs_magic(
    built: Built, scratch: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    offset = SifImage.open(built.sif).offset
    broken = scratch / "magic.sif"
    shutil.copyfile(built.sif, broken)
    with broken.open("r+b") as handle:
        handle.seek(offset)
        assert handle.read(4) == SQUASHFS_MAGIC
        handle.seek(offset)
        handle.write(b"hsqX")
    capsys.readouterr()
    assert verify(broken, "--image", built.inspect["Id"]) == 1
    assert problems_of(capsys) == [f"format: no squashfs superblock at partition offset {offset}"]


# --- g. the manifest record ---------------------------------------------------------------------


def test_manifest_records_the_sif_and_plan_notices_it_missing(
    built: Built, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = json.loads((built.out / NAME / "manifest.json").read_text())
    record = manifest["sif"]
    assert record["sha256"] == hashlib.sha256(built.sif.read_bytes()).hexdigest()
    assert record["size"] == built.sif.stat().st_size
    assert (record["backend"], record["compression"], record["format"]) == (
        "native", "gzip", "sif"
    )  # fmt: skip
    assert record["path"] == built.sif.name
    assert record["docker_image_id"] == manifest["docker_image_id"] == built.inspect["Id"]
    assert record["tool_version"].startswith("imgforge-squashfs ")
    assert record["squashfs_size"] < record["size"]
    assert set(record["cache"]) >= {"hits", "misses", "hit_bytes", "miss_bytes", "saved_seconds"}

    def plan() -> str:
        capsys.readouterr()
        code = main(["plan", str(built.recipe), "--out", str(built.out), "--singularity", "native"])
        assert code == 0
        return capsys.readouterr().out

    assert f"{IMAGE}  up to date" in plan()
    away = built.sif.with_name("away.tmp")
    os.replace(built.sif, away)
    try:
        assert f"{IMAGE}  rebuild: {NAME}.sif is missing" in plan()
    finally:
        os.replace(away, built.sif)
    assert f"{IMAGE}  up to date" in plan()


# --- e. reproducible output -------------------------------------------------------------------


def test_source_date_epoch_makes_byte_identical_sifs(
    built: Built, scratch: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", str(EPOCH))
    out = scratch / "out"
    target = out / NAME / f"{NAME}.sif"
    assert build(built.recipe, out, "--force") == 0
    first = scratch / "first.sif"
    os.replace(target, first)
    assert build(built.recipe, out, "--force") == 0
    if first.read_bytes() != target.read_bytes():  # say which inodes differ
        before, after = squashfs_listing(first, scratch), squashfs_listing(target, scratch)
        differing = sorted(n for n in before.keys() | after.keys() if before.get(n) != after.get(n))
        pytest.fail(f"two SOURCE_DATE_EPOCH builds differ; entries: {differing[:20]}")
    container = SifImage.open(target).container
    assert container is not None
    header = container.header
    assert header.id == uuid.UUID(int=0)
    assert header.created == header.modified == sif.ZERO_TIME
    # No inode is newer than SOURCE_DATE_EPOCH (the engine stamps /.dockerenv, /etc ... now).
    entries = squashfs_listing(target, scratch)
    assert max(entry[4] for entry in entries.values()) == EPOCH


# --- f. the legacy format ---------------------------------------------------------------------


def test_simg_is_the_launch_line_then_a_squashfs(
    built: Built, scratch: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = scratch / "out"
    assert build(built.recipe, out, "--format", "simg") == 0
    simg = out / NAME / f"{NAME}.simg"
    assert not (out / NAME / f"{NAME}.sif").exists()
    data = simg.read_bytes()
    assert data.startswith(b"#!/usr/bin/env run-singularity\nhsqs")
    assert stat.S_IMODE(simg.stat().st_mode) == 0o755
    image = SifImage.open(simg)
    assert (image.container, image.offset, image.size) == (None, 31, len(data) - 31)
    env_file = "/.singularity.d/env/10-docker2singularity.sh"
    cat = subprocess.run(
        ["unsquashfs", "-o", "31", "-cat", str(simg), env_file], capture_output=True, check=True
    ).stdout
    assert cat == SifImage.open(built.sif).read_file(env_file)
    quote = "'\"'\"'"
    line = f"export HOSTILE_QUOTES='it{quote}s \"double\" and {quote}single{quote}'\n"
    assert line in cat.decode()
    capsys.readouterr()
    assert verify(simg) == 0
    manifest = json.loads((out / NAME / "manifest.json").read_text())
    assert (manifest["sif"]["format"], manifest["sif"]["path"]) == ("simg", f"{NAME}.simg")


# --- h. an independent reader -------------------------------------------------------------------


def test_pypi_sif_reads_our_header_and_first_descriptors(built: Built) -> None:
    """PyPI "sif" (singularityhub, 2019) parses the header and the first three descriptor
    slots with its own struct formats. It assumes the Singularity 3.0 order Deffile,
    Partition, Signature; imgforge writes Apptainer's Deffile, inspect-metadata.json,
    oci-config.json, Partition, so what it calls "partition" and "signature" are our two
    JSON objects. It decodes the UUID with bytes_le."""
    reader = importlib.import_module("sif")  # declared in the test extra: never a skip
    parsed = reader.SIFHeader(str(built.sif))
    ours = SifImage.open(built.sif)
    assert ours.container is not None
    header = ours.container.header
    meta = parsed.meta
    assert (meta["version"], meta["arch"]) == ("01", "02")
    assert meta["uuid"] == str(uuid.UUID(bytes_le=header.id.bytes))
    assert (meta["ctime"], meta["mtime"]) == (header.created, header.modified)
    assert (meta["dtotal"], meta["dfree"], meta["descroff"], meta["descrlen"]) == (
        48, 44, 4096, 48 * 585
    )  # fmt: skip
    assert (meta["dataoff"], meta["datalen"]) == (32176, built.sif.stat().st_size - 32176)
    deffile = parsed.desc["deffile"]
    assert (deffile["Datatype"], deffile["ID"], deffile["Groupid"]) == (0x4001, 1, 0xF0000001)
    assert (deffile["Fileoff"], deffile["content"]) == (32176, ours.object_text("Deffile"))
    inspect, config = parsed.desc["partition"], parsed.desc["signature"]
    assert (inspect["Datatype"], inspect["ID"], inspect["name"]) == (
        0x4006, 2, "inspect-metadata.json"
    )  # fmt: skip
    assert (config["Datatype"], config["ID"], config["Used"]) == (0x4006, 3, True)
    assert (config["Groupid"], config["Link"]) == (0xF0000001, 0)
    partition = ours.container.descriptors[3]
    assert (partition.offset, partition.size) == (ours.offset, ours.size)
    assert partition.offset % 4096 == 0
    assert partition.offset + partition.size == built.sif.stat().st_size


# --- i. an image with its own /.singularity.d ---------------------------------------------------

OWN = "itest-sifown"
OWN_COMMANDS = [
    "mkdir -p /.singularity.d/env /.singularity.d/bootstrap_history",
    "printf 'Bootstrap: docker\\nFrom: ubuntu\\n' > /.singularity.d/Singularity",
    "printf 'older\\n' > /.singularity.d/bootstrap_history/Singularity0",
    "printf 'Usage: nothing to see\\n\\n' > /.singularity.d/runscript.help",
    "printf 'export OWN_VALUE=1\\n' > /.singularity.d/env/91-environment.sh",
    "printf '#!/bin/sh\\necho stale\\n' > /.singularity.d/runscript",
    'printf \'{"old": "label"}\' > /.singularity.d/labels.json',
]


@pytest.fixture(scope="module")
def own(client: docker.DockerClient, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A SIF of an image that already has /.singularity.d content (as an image converted
    from a Singularity image has)."""
    root = tmp_path_factory.mktemp("own")
    recipe = root / f"{OWN}.toml"
    commands = ", ".join(toml_string(command) for command in OWN_COMMANDS)
    recipe.write_text(f'name = "{OWN}"\nbase = "{STANDIN_REF}"\n[run]\ncommands = [{commands}]\n')
    try:
        assert build(recipe, root / "build") == 0
        yield root / "build" / OWN / f"{OWN}.sif"
    finally:
        with contextlib.suppress(docker.errors.ImageNotFound):
            client.images.remove(f"{OWN}:latest", force=True)
        shutil.rmtree(root, ignore_errors=True)


def test_the_images_own_metadata_is_kept_as_apptainer_keeps_it(own: Path) -> None:
    image = SifImage.open(own)
    history = "/.singularity.d/bootstrap_history"
    # Its definition moves to bootstrap_history/ApptainerN (N: entries already there).
    assert image.read_file(f"{history}/Apptainer1") == b"Bootstrap: docker\nFrom: ubuntu\n"
    assert image.read_file(f"{history}/Singularity0") == b"older\n"
    assert image.read_file("/.singularity.d/Singularity") == (
        f"bootstrap: docker-daemon\nfrom: {OWN}:latest\n\n".encode()
    )
    # Files imgforge does not write stay; the ones it writes replace the image's.
    assert image.read_file("/.singularity.d/runscript.help") == b"Usage: nothing to see\n\n"
    assert image.read_file("/.singularity.d/env/91-environment.sh") == b"export OWN_VALUE=1\n"
    assert b"stale" not in (image.read_file("/.singularity.d/runscript") or b"")
    labels = json.loads(image.read_file("/.singularity.d/labels.json") or b"")
    assert "old" not in labels and labels["org.label-schema.schema-version"] == "1.0"
    # inspect reads the kept files too.
    document = json.loads(image.object_text("GenericJSON", "inspect-metadata.json") or "")
    attributes = document["data"]["attributes"]
    assert attributes["helpfile"] == "Usage: nothing to see"
    assert sorted(attributes["environment"]) == [
        "/.singularity.d/env/10-docker2singularity.sh",
        "/.singularity.d/env/90-environment.sh",
        "/.singularity.d/env/91-environment.sh",
    ]
    assert attributes["environment"]["/.singularity.d/env/91-environment.sh"] == (
        "export OWN_VALUE=1"
    )


def test_verify_deep_expects_the_images_own_metadata(
    own: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert verify(own, "--deep") == 0, capsys.readouterr().out
