"""imgforge verify without an engine: the comparisons, the runscript reader, finding the
pair to compare, and the shallow check of a small SIF made here with tar2sqfs."""

from __future__ import annotations

import dataclasses
import io
import json
import shutil
import subprocess
import tarfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from manifests import manifest, sif_record

from imgforge.build import record
from imgforge.commands.verify import locate
from imgforge.errors import UsageError
from imgforge.recipes.image import ImageConfig
from imgforge.recipes.jobs import BuildJob
from imgforge.render import expected_sif, make_environment, render_sif_files
from imgforge.render.job import sif_files
from imgforge.sif import check
from imgforge.sif.assemble import write_sif
from imgforge.sif.backend import SifRequest
from imgforge.sif.check import compare_maps
from imgforge.sif.deep import compare_trees, tree
from imgforge.sif.read import SifImage, parse_runscript
from imgforge.sif.transfer import transfer_tar

NGC = "nvcr.io/nvidia/pytorch:24.01-py3"


def verify_file(path: Path, config: ImageConfig) -> list[str]:
    """The read-back check of ``path``, expecting what imgforge writes for ``config``."""
    return check.verify_file(path, config, expected_sif(config))

# --- compare_maps --------------------------------------------------------------------------


def test_compare_maps_equal_is_empty() -> None:
    assert compare_maps("env", {"A": "1", "B": ""}, {"B": "", "A": "1"}) == []
    assert compare_maps("env", {}, {}) == []


def test_compare_maps_names_every_differing_key_in_order() -> None:
    problems = compare_maps(
        "env",
        {"PATH": "/bin", "B": "x", "EMPTY": "", "Z": "1"},
        {"PATH": "/bin", "B": "y", "A": "new", "Z": "1"},
    )
    assert problems == [
        "env A: image (unset), SIF 'new'",
        "env B: image 'x', SIF 'y'",
        "env EMPTY: image '', SIF (unset)",
    ]


def test_compare_maps_shows_hostile_values_unambiguously() -> None:
    (problem,) = compare_maps("label", {"k": "a'b\n"}, {"k": "a'b"})
    assert problem == 'label k: image "a\'b\\n", SIF "a\'b"'


# --- the runscript reader ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "#!/bin/sh\nexec '/ep.sh' 'python' \"$@\"\n",  # imgforge before 0.3: not Docker-style
        "",
        "OCI_ENTRYPOINT='\"a\"'\n",  # no OCI_CMD
        "OCI_ENTRYPOINT='\"a\"'\nOCI_CMD=''\nOCI_CMD=''\n",  # twice
        "OCI_ENTRYPOINT='a'\nOCI_CMD=''\n",  # not a double-quoted word
        "OCI_ENTRYPOINT='\"a\"\"b\"'\nOCI_CMD=''\n",  # words without a space between
    ],
)
def test_parse_runscript_refuses_other_shapes(text: str) -> None:
    assert parse_runscript(text) is None


@pytest.fixture
def ngc_job(
    tmp_path: Path, jobs_for: Callable[..., list[BuildJob]], ngc_config: ImageConfig
) -> Callable[[str], BuildJob]:
    """``ngc_job(toml)``: the BuildJob of a recipe ``proj`` on the NGC fixture's config."""

    def make(text: str) -> BuildJob:
        directory = tmp_path / "recipes"
        directory.mkdir(exist_ok=True)
        (directory / "proj.toml").write_text(f'base = "{NGC}"\n{text}')
        (job,) = jobs_for(directory, {NGC: ngc_config})
        return job

    return make


@pytest.mark.parametrize(
    ("recipe", "entrypoint", "cmd"),
    [
        ("", ["/opt/nvidia/nvidia_entrypoint.sh"], []),
        (
            '[runscript]\ncommand = "python -c \'print(1)\' \\"$HOME\\""\n',
            ["/opt/nvidia/nvidia_entrypoint.sh"],
            ["python", "-c", "print(1)", "$HOME"],
        ),
        (
            '[runscript]\nentrypoint = "python train.py"\n',
            ["/opt/nvidia/nvidia_entrypoint.sh", "python", "train.py"],
            [],
        ),
        (
            '[runscript]\nentrypoint = "python"\ncommand = "-V"\n',
            ["/opt/nvidia/nvidia_entrypoint.sh", "python"],
            ["-V"],
        ),
    ],
)
def test_rendered_runscript_reads_back_as_the_image_config(
    ngc_job: Callable[[str], BuildJob], recipe: str, entrypoint: list[str], cmd: list[str]
) -> None:
    job = ngc_job(recipe)
    assert (list(job.config.entrypoint), list(job.config.cmd)) == (entrypoint, cmd)
    assert parse_runscript(render_sif_files(job)["runscript"]) == (entrypoint, cmd)


# --- tree / compare_trees ---------------------------------------------------------------------

Member = tuple[str, bytes, bytes | str, int]


def tar_stream(*members: Member) -> io.BytesIO:
    """An in-memory tar of (name, type, data or link target, mode)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, kind, payload, mode in members:
            info = tarfile.TarInfo(name)
            info.type, info.mode = kind, mode
            if kind == tarfile.REGTYPE:
                assert isinstance(payload, bytes)
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
            else:
                info.linkname = str(payload)
                tar.addfile(info)
    buffer.seek(0)
    return buffer


def file(name: str, data: bytes, mode: int = 0o755) -> Member:
    return (name, tarfile.REGTYPE, data, mode)


def hardlink(name: str, target: str) -> Member:
    return (name, tarfile.LNKTYPE, target, 0o755)


def directory(name: str, mode: int = 0o755) -> Member:
    return (name, tarfile.DIRTYPE, "", mode)


def symlink(name: str, target: str) -> Member:
    return (name, tarfile.SYMTYPE, target, 0o777)


def test_tree_records_type_mode_owner_size_link_and_digest() -> None:
    entries = tree(
        tar_stream(directory("./usr/"), file("./usr/a", b"abc", 0o4755), symlink("usr/l", "a"))
    )
    assert entries["usr"][:5] == ("5", "0o755", "0", "0", "0")
    assert entries["usr/a"] == (
        "0", "0o4755", "0", "0", "3", "",
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
    )  # fmt: skip
    assert entries["usr/l"] == ("2", "0o777", "0", "0", "0", "a", "")


def test_hard_links_compare_by_their_target_whichever_name_comes_first() -> None:
    """docker export and sqfs2tar may pick different names of one inode as the file."""
    image = tree(tar_stream(file("bin/busybox", b"BB"), hardlink("bin/sh", "bin/busybox")))
    sif = tree(tar_stream(file("bin/sh", b"BB"), hardlink("bin/busybox", "bin/sh")))
    assert image == sif
    assert compare_trees(image, sif) == []


def test_a_hard_link_to_other_content_is_a_difference() -> None:
    image = tree(tar_stream(file("a", b"one"), hardlink("b", "a")))
    sif = tree(tar_stream(file("a", b"one"), file("b", b"two")))
    (problem,) = compare_trees(image, sif)
    assert problem.startswith("path /b: ") and "sha256" in problem


def test_a_hard_link_to_a_missing_file_is_reported() -> None:
    entries = tree(tar_stream(hardlink("b", "gone")))
    assert entries["b"][0] == "hardlink to missing" and entries["b"][5] == "gone"
    # A difference, not a crash (the placeholder has every field).
    (problem,) = compare_trees(tree(tar_stream(file("b", b""))), entries)
    assert problem.startswith("path /b: type 0 != hardlink to missing, ")
    assert "link  != gone" in problem


def test_compare_trees_names_the_path_and_the_fields() -> None:
    image = tree(
        tar_stream(file("same", b"x"), file("mode", b"x", 0o644), file("data", b"old"),
                   file("gone", b""), symlink("link", "a"))
    )  # fmt: skip
    sif = tree(
        tar_stream(file("same", b"x"), file("mode", b"x", 0o755), file("data", b"new"),
                   file("extra", b""), symlink("link", "b"))
    )  # fmt: skip
    problems = compare_trees(image, sif)
    assert problems[0] == "path /data: sha256 " + image["data"][6] + " != " + sif["data"][6]
    assert problems[1:] == [
        "path /extra: only in the SIF",
        "path /gone: only in the image",
        "path /link: link a != b",
        "path /mode: mode 0o644 != 0o755",
    ]


def test_tree_skips_imgforge_entries_init_layer_leftovers_and_given_names() -> None:
    entries = tree(
        tar_stream(
            directory(".singularity.d"), file(".singularity.d/runscript", b"x"),
            file(".singularity.d/runscript.help", b"h"),
            symlink("singularity", ".singularity.d/runscript"), file("etc/hosts", b""),
            file(".dockerenv", b""), file("etc/hostname", b""), file("dev/console", b""),
            symlink("etc/mtab", "/proc/mounts"), directory("proc"), directory("tmp"),
            file("keep", b""),
        ),
        skip=["proc", "singularity"],
    )  # fmt: skip
    assert sorted(entries) == [".singularity.d", ".singularity.d/runscript.help", "keep", "tmp"]


# --- locate -------------------------------------------------------------------------------------


def test_locate_by_name_and_by_path(tmp_path: Path) -> None:
    out = tmp_path / "build"
    (out / "proj").mkdir(parents=True)
    image = out / "proj" / "proj.sif"
    image.write_bytes(b"")
    recorded = manifest(
        docker_image_id="sha256:built", sif=sif_record(docker_image_id="sha256:sif")
    )
    record.write(out / "proj" / "manifest.json", recorded)
    assert locate("proj", out=out, image=None) == (image, "sha256:sif")
    assert locate("proj", out=out, image="other:1") == (image, "other:1")
    assert locate(str(image), out=tmp_path / "elsewhere", image=None) == (image, "sha256:sif")


def test_locate_explains_what_is_missing(tmp_path: Path) -> None:
    out = tmp_path / "build"
    with pytest.raises(UsageError, match="no SIF recorded"):
        locate("proj", out=out, image=None)
    with pytest.raises(UsageError, match="no such file"):
        locate(str(tmp_path / "gone.sif"), out=out, image="x:1")
    lonely = tmp_path / "lonely.sif"
    lonely.write_bytes(b"")
    with pytest.raises(UsageError, match="--image"):
        locate(str(lonely), out=out, image=None)


# --- shallow verify of a SIF made here --------------------------------------------------------

needs_tools = pytest.mark.skipif(
    not (shutil.which("tar2sqfs") and shutil.which("unsquashfs")),
    reason="needs tar2sqfs (squashfs-tools-ng) and unsquashfs (squashfs-tools)",
)

HOSTILE_RECIPE = """
[env]
QUOTES = "it's \\"q\\""
DOLLAR = "$HOME ${X} $(id) `id`"
EMPTY = ""
UNICODE = "héllo ✓"
[labels]
team = "sif ✓"
[runscript]
command = "python -m train"
"""


def make_sif(
    job: BuildJob,
    path: Path,
    edit: Callable[[dict[str, str]], None] = print,
    *,
    described: dict[str, str] | None = None,
) -> Path:
    """A SIF holding only imgforge's layout for ``job`` (``edit`` may change its files),
    with the build labels a build writes; its objects describe ``described`` (default:
    the files in it)."""
    files = sif_files(job, job.config, 1700000000, make_environment())
    original = dict(files)
    edit(files)
    base = io.BytesIO()
    with tarfile.open(fileobj=base, mode="w") as tar:
        info = tarfile.TarInfo("bin")
        info.type = tarfile.DIRTYPE
        tar.addfile(info)
    base.seek(0)
    layout = io.BytesIO()
    transfer_tar(base, layout, files, mtime=1700000000)
    squashfs = path.with_suffix(".sqfs")
    subprocess.run(
        ["tar2sqfs", "--quiet", "--force", "-c", "gzip", str(squashfs)],
        input=layout.getvalue(),
        check=True,
    )
    request = SifRequest(
        name=job.recipe.image, image_id="sha256:" + "0" * 64, config=job.config,
        files=files if described is None else {**original, **described},
        deffile=files["Singularity"], convert_deffile="", archive=path.with_suffix(".tar"),
        target=path, source_date_epoch=1700000000,
    )  # fmt: skip
    write_sif(request, squashfs, path)
    return path


@needs_tools
def test_verify_file_accepts_a_faithful_sif(
    ngc_job: Callable[[str], BuildJob], tmp_path: Path
) -> None:
    job = ngc_job(HOSTILE_RECIPE)
    assert verify_file(make_sif(job, tmp_path / "good.sif"), job.config) == []


@needs_tools
@pytest.mark.parametrize("script", ["env/10-docker2singularity.sh", "env/90-environment.sh"])
def test_verify_file_checks_each_env_script_on_its_own(
    ngc_job: Callable[[str], BuildJob], tmp_path: Path, script: str
) -> None:
    """90-environment.sh is sourced after the 10- file, but a value changed in either one
    is a difference: %post of a localimage build sources only the 10- file."""
    job = ngc_job(HOSTILE_RECIPE)

    def tamper(files: dict[str, str]) -> None:
        assert files[script].count("export EMPTY=''\n") == 1
        files[script] = files[script].replace("export EMPTY=''\n", "export EMPTY='x'\n")

    problems = verify_file(make_sif(job, tmp_path / "bad.sif", tamper), job.config)
    assert problems == [f"env EMPTY: image '', SIF 'x' (in /.singularity.d/{script})"]


@needs_tools
def test_verify_file_names_a_dropped_variable_and_an_unparsable_script(
    ngc_job: Callable[[str], BuildJob], tmp_path: Path
) -> None:
    job = ngc_job(HOSTILE_RECIPE)

    def tamper(files: dict[str, str]) -> None:
        lines = files["env/90-environment.sh"].splitlines(keepends=True)
        files["env/90-environment.sh"] = "".join(
            line for line in lines if not line.startswith("export CUDA_VERSION=")
        )
        files["env/10-docker2singularity.sh"] += "export X=$(touch /tmp/pwned)\n"

    problems = verify_file(make_sif(job, tmp_path / "bad.sif", tamper), job.config)
    assert len(problems) == 2
    assert problems[0].startswith("file /.singularity.d/env/10-docker2singularity.sh: line ")
    assert "$(touch /tmp/pwned)" in problems[0]
    assert problems[1].startswith("env CUDA_VERSION: image '")
    assert problems[1].endswith(", SIF (unset) (in /.singularity.d/env/90-environment.sh)")


@needs_tools
def test_verify_file_names_a_changed_label_and_runscript(
    ngc_job: Callable[[str], BuildJob], tmp_path: Path
) -> None:
    job = ngc_job(HOSTILE_RECIPE)

    def tamper(files: dict[str, str]) -> None:
        files["labels.json"] = files["labels.json"].replace('"sif ✓"', '"other"')
        files["runscript"] = files["runscript"].replace('"train"', '"evil"')

    problems = verify_file(make_sif(job, tmp_path / "bad.sif", tamper), job.config)
    assert problems == [
        "runscript: image has ENTRYPOINT ['/opt/nvidia/nvidia_entrypoint.sh'], "
        "CMD ['python', '-m', 'train']; SIF has ENTRYPOINT "
        "['/opt/nvidia/nvidia_entrypoint.sh'], CMD ['python', '-m', 'evil']",
        "label team: image 'sif ✓', SIF 'other'",
    ]


@needs_tools
def test_verify_file_reports_a_broken_file_as_one_problem(
    ngc_job: Callable[[str], BuildJob], tmp_path: Path
) -> None:
    job = ngc_job(HOSTILE_RECIPE)
    path = make_sif(job, tmp_path / "good.sif")
    data = bytearray(path.read_bytes())
    offset = data.index(b"hsqs", 32176)
    data[offset : offset + 4] = b"\0\0\0\0"
    path.write_bytes(bytes(data))
    assert verify_file(path, job.config) == [
        f"format: no squashfs superblock at partition offset {offset}"
    ]
    assert verify_file(tmp_path / "missing.sif", job.config)[0].startswith("format: ")


@needs_tools
def test_a_faithful_sif_carries_the_build_labels_and_the_docker_daemon_definition(
    ngc_job: Callable[[str], BuildJob], tmp_path: Path
) -> None:
    job = ngc_job(HOSTILE_RECIPE)
    image = SifImage.open(make_sif(job, tmp_path / "good.sif"))
    labels = json.loads(image.read_file("/.singularity.d/labels.json") or b"")
    assert labels["team"] == "sif ✓" and labels["org.label-schema.schema-version"] == "1.0"
    assert labels["org.label-schema.usage.singularity.deffile.bootstrap"] == "docker-daemon"
    assert labels["org.label-schema.usage.singularity.deffile.from"] == job.recipe.image
    assert labels["org.label-schema.build-arch"] == "amd64"
    assert "org.label-schema.usage.apptainer.version" not in labels
    definition = f"bootstrap: docker-daemon\nfrom: {job.recipe.image}\n\n"
    assert image.object_text("Deffile") == definition
    assert image.read_file("/.singularity.d/Singularity") == definition.encode()


@needs_tools
def test_verify_file_lets_build_labels_win_over_the_images(
    ngc_job: Callable[[str], BuildJob], tmp_path: Path
) -> None:
    """As in Apptainer, a build label replaces an image label of the same name (a base
    built by Apptainer has them all); other deffile labels are the image's own."""
    job = ngc_job("")
    labels = {
        **dict(job.config.labels),
        "org.label-schema.schema-version": "0.9",
        "org.label-schema.build-arch": "arm64",
        "org.label-schema.usage.singularity.deffile.osversion": "bookworm",
    }
    config = dataclasses.replace(job.config, labels=tuple(sorted(labels.items())))
    job = dataclasses.replace(job, config=config)
    assert verify_file(make_sif(job, tmp_path / "good.sif"), job.config) == []


@needs_tools
def test_verify_file_names_an_added_label_and_a_definition_unlike_its_labels(
    ngc_job: Callable[[str], BuildJob], tmp_path: Path
) -> None:
    job = ngc_job(HOSTILE_RECIPE)

    def tamper(files: dict[str, str]) -> None:
        labels = json.loads(files["labels.json"])
        labels["org.example.extra"] = "x"
        files["labels.json"] = json.dumps(labels)
        files["Singularity"] = files["Singularity"].replace("docker-daemon", "docker")

    path = make_sif(job, tmp_path / "bad.sif", tamper)
    assert verify_file(path, job.config) == [
        "label org.example.extra: image (unset), SIF 'x'",
        "label org.label-schema.usage.singularity.deffile.bootstrap: 'docker-daemon', "
        "but the SIF's definition says 'docker'",
    ]


@needs_tools
def test_the_sif_objects_are_in_apptainers_order_with_inspect_metadata(
    ngc_job: Callable[[str], BuildJob], tmp_path: Path
) -> None:
    job = ngc_job(HOSTILE_RECIPE)
    image = SifImage.open(make_sif(job, tmp_path / "good.sif"))
    assert image.container is not None
    assert [(d.kind, d.name, d.id) for d in image.container.descriptors] == [
        ("Deffile", "", 1),
        ("GenericJSON", "inspect-metadata.json", 2),
        ("GenericJSON", "oci-config.json", 3),
        ("Partition", "", 4),
    ]
    document = json.loads(image.object_text("GenericJSON", "inspect-metadata.json") or "")
    attributes = document["data"]["attributes"]
    assert document["type"] == "container"
    labels = json.loads(image.read_file("/.singularity.d/labels.json") or b"")
    assert attributes["labels"] == labels
    assert attributes["deffile"] + "\n\n" == image.object_text("Deffile")
    runscript = (image.read_file("/.singularity.d/runscript") or b"").decode()
    assert attributes["runscript"] == runscript.rstrip("\n")
    assert sorted(attributes["environment"]) == [
        "/.singularity.d/env/10-docker2singularity.sh",
        "/.singularity.d/env/90-environment.sh",
    ]
    for path, text in attributes["environment"].items():
        assert text == (image.read_file(path) or b"").decode().rstrip("\n")


@needs_tools
def test_verify_file_compares_the_whole_oci_config(
    ngc_job: Callable[[str], BuildJob], tmp_path: Path
) -> None:
    job = ngc_job(HOSTILE_RECIPE)
    path = make_sif(job, tmp_path / "good.sif")
    changed = replace(job.config, volumes=("/data",), stop_signal="SIGINT", workdir="/w")
    assert verify_file(path, changed) == [
        'oci-config.json StopSignal: image "SIGINT", SIF null',
        'oci-config.json Volumes: image {"/data": {}}, SIF null',
        'oci-config.json WorkingDir: image "/w", SIF "/workspace"',
    ]


@needs_tools
def test_verify_file_names_inspect_metadata_unlike_the_files(
    ngc_job: Callable[[str], BuildJob], tmp_path: Path
) -> None:
    job = ngc_job(HOSTILE_RECIPE)
    described = {"runscript": "#!/bin/sh\nexec other\n", "env/90-environment.sh": "#!/bin/sh\n"}
    path = make_sif(job, tmp_path / "bad.sif", described=described)
    assert verify_file(path, job.config) == [
        "inspect-metadata.json environment: differs from the SIF's files",
        "inspect-metadata.json runscript: differs from the SIF's files",
    ]


@needs_tools
def test_verify_file_names_a_runscript_whose_no_eval_branch_differs(
    ngc_job: Callable[[str], BuildJob], tmp_path: Path
) -> None:
    """The OCI_ENTRYPOINT/OCI_CMD lines are right, but `apptainer run --no-eval` would run
    other words."""
    job = ngc_job(HOSTILE_RECIPE)

    def tamper(files: dict[str, str]) -> None:
        assert "set -- 'train' \"$@\"" in files["runscript"]
        files["runscript"] = files["runscript"].replace("set -- 'train'", "set -- 'evil'")

    problems = verify_file(make_sif(job, tmp_path / "bad.sif", tamper), job.config)
    assert problems == [
        "runscript: not the Docker-style runscript of the image's ENTRYPOINT and CMD"
    ]


@needs_tools
@pytest.mark.parametrize("path", ["env/99-base.sh", "actions/test", "startscript"])
def test_verify_file_names_a_changed_fixed_metadata_file(
    ngc_job: Callable[[str], BuildJob], tmp_path: Path, path: str
) -> None:
    """Scripts that are the same in every imgforge SIF: a change is named, whatever runs it
    (the runtime sources 99-base.sh, `apptainer test` runs actions/test)."""
    job = ngc_job(HOSTILE_RECIPE)

    def tamper(files: dict[str, str]) -> None:
        files[path] += "export SNEAKY=1\n"

    problems = verify_file(make_sif(job, tmp_path / "bad.sif", tamper), job.config)
    assert f"file /.singularity.d/{path}: not the one imgforge writes" in problems
