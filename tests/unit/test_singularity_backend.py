"""imgforge.sif.apptainer: exact command lines and environments, and ``make()`` run
against a fake apptainer (a shell script that records what it was given)."""

from __future__ import annotations

import stat
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import docker.errors
import pytest
from fakes import ARCHIVE_BYTES, FakeImage

from imgforge.engine.docker import DockerEngine
from imgforge.errors import BuildError, EngineError
from imgforge.log import Lines, discard
from imgforge.recipes.image import ImageConfig
from imgforge.recipes.jobs import BuildJob
from imgforge.render import render
from imgforge.sif import apptainer as singularity
from imgforge.sif import choice as backend
from imgforge.sif.apptainer import (
    SingularityCLI,
    build_argv,
    child_env,
    error_line,
    squashfs_option,
    wants_sudo,
)
from imgforge.sif.backend import SifRequest

IMAGE_ID = "sha256:" + "ab12" * 16
ENV_FILE_TEXT = "#!/bin/sh\nexport PATH='/usr/bin:/bin'\nexport TRICKY='a \"$b\" `c` '\\'' d'\n"
HELP_WITH_SQUASHFS = "      --mksquashfs-args string   additional arguments for mksquashfs"

# A stand-in for apptainer/singularity `build`: it records its argv (one per line) and
# SOURCE_DATE_EPOCH, checks that the .def and the archive it names exist while it runs,
# copies the file that %files puts over 10-docker2singularity.sh, and writes a target.
FAKE_TOOL = r"""#!/bin/sh
rec='@REC@'
if [ "$1" = "--version" ]; then
    echo "@NAME@ version 1.4.1-fake"
    echo "second line"
    echo x >> "$rec/version-calls"
    exit 0
fi
if [ "$1" = "build" ] && [ "$2" = "--help" ]; then
    echo "Usage: @NAME@ build [options] TARGET SPEC"
    echo '@HELP@'
    exit 0
fi
printf '%s\n' "$@" > "$rec/argv"
printf '%s\n' "${SOURCE_DATE_EPOCH-unset}" > "$rec/epoch"
for arg in "$@"; do target=$def; def=$arg; done
[ -f "$def" ] || { echo "FATAL:   no definition file $def" >&2; exit 3; }
cp "$def" "$rec/def"
archive=$(sed -n 's/^From: *//p' "$def")
[ -f "$archive" ] || { echo "FATAL:   no archive $archive" >&2; exit 4; }
cp "$archive" "$rec/archive"
envfile=$(awk '/^%files/ { f = 1; next } /^%/ { f = 0 } f && NF { print $1; exit }' "$def")
cp "$envfile" "$rec/env-file"
echo "INFO:    Starting build..." >&2
echo "Getting image source signatures"
if [ "@FAIL@" = "1" ]; then
    printf 'partial' > "$target"
    echo "FATAL:   While performing build: conveyor failed to get: no space left on device" >&2
    echo "cleanup done"
    exit 255
fi
printf 'SIF' > "$target"
echo "INFO:    Build complete: $target" >&2
"""

ZSTD_ARGS = "-comp zstd -Xcompression-level 3"


def make_tool(
    directory: Path, name: str = "apptainer", *, squashfs_args: bool = True, fail: bool = False
) -> Path:
    """Write a fake ``name`` binary into ``directory`` (recording under ``directory/rec``)."""
    rec = directory / "rec"
    rec.mkdir(parents=True, exist_ok=True)
    text = (
        FAKE_TOOL.replace("@REC@", str(rec))
        .replace("@NAME@", name)
        .replace("@HELP@", HELP_WITH_SQUASHFS if squashfs_args else "  -f, --fakeroot")
        .replace("@FAIL@", "1" if fail else "0")
    )
    path = directory / name
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def recorded(tool: Path, what: str) -> str:
    return (tool.parent / "rec" / what).read_text()


def convert_def(archive: Path, env_file: Path) -> str:
    """A conversion .def in the shape of render/templates/convert.def.j2."""
    return (
        "Bootstrap: docker-archive\n"
        f"From: {archive}\n\n"
        "%files\n"
        f"    {env_file} /.singularity.d/env/10-docker2singularity.sh\n\n"
        "%post\n"
        "    . /.singularity.d/env/10-docker2singularity.sh\n\n"
        "%runscript\n"
        '    exec /bin/sh "$@"\n'
    )


@pytest.fixture
def non_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(singularity.os, "geteuid", lambda: 1000)


@pytest.fixture
def as_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(singularity.os, "geteuid", lambda: 0)


@pytest.fixture(autouse=True)
def no_sudo_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(singularity.SUDO_ENV, raising=False)
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)


@pytest.fixture
def out(tmp_path: Path) -> Path:
    """The recipe's build directory, where the temporary target lives."""
    directory = tmp_path / "build" / "demo"
    directory.mkdir(parents=True)
    (directory / "imgforge-env.sh").write_text(ENV_FILE_TEXT)
    return directory


@pytest.fixture
def request_(out: Path) -> SifRequest:
    archive = out / ".demo.archive.tar"
    return SifRequest(
        name="demo",
        image_id=IMAGE_ID,
        config=ImageConfig(env=("PATH=/usr/bin:/bin",)),
        files={},
        deffile="Bootstrap: docker\nFrom: debian\n",
        convert_deffile=convert_def(archive, out / "imgforge-env.sh"),
        archive=archive,
        target=out / ".demo.sif.tmp-1234",
    )


def leftovers(directory: Path) -> list[str]:
    """Files in ``directory`` other than the env file (and the target, if it is kept)."""
    return sorted(p.name for p in directory.iterdir() if p.name != "imgforge-env.sh")


# --- pure parts: argv and environment ------------------------------------------------


D = Path("/b/demo/.demo.x.convert.def")
T = Path("/b/demo/.demo.sif.tmp")


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        (
            {"fakeroot": True, "sudo": False},
            ["/opt/bin/apptainer", "build", "--force", "--fakeroot", str(T), str(D)],
        ),
        (
            {"fakeroot": False, "sudo": False},
            ["/opt/bin/apptainer", "build", "--force", str(T), str(D)],
        ),
        (
            {"fakeroot": False, "sudo": True},
            ["sudo", "/opt/bin/apptainer", "build", "--force", str(T), str(D)],
        ),
        (
            {"fakeroot": False, "sudo": True, "keep_env": ("SOURCE_DATE_EPOCH",)},
            [
                "sudo",
                "--preserve-env=SOURCE_DATE_EPOCH",
                "/opt/bin/apptainer",
                "build",
                "--force",
                str(T),
                str(D),
            ],
        ),
        (
            {"fakeroot": True, "sudo": False, "keep_env": ("SOURCE_DATE_EPOCH",)},
            ["/opt/bin/apptainer", "build", "--force", "--fakeroot", str(T), str(D)],
        ),
        (
            {"fakeroot": True, "sudo": False, "mksquashfs_args": ZSTD_ARGS},
            [
                "/opt/bin/apptainer",
                "build",
                "--force",
                "--fakeroot",
                "--mksquashfs-args",
                ZSTD_ARGS,
                str(T),
                str(D),
            ],
        ),
    ],
    ids=["fakeroot", "root", "sudo", "sudo-keeps-epoch", "epoch-needs-no-sudo-flag", "squashfs"],
)
def test_build_argv(kwargs: dict[str, object], expected: list[str]) -> None:
    assert build_argv("/opt/bin/apptainer", deffile=D, target=T, **kwargs) == expected


def test_child_env_adds_source_date_epoch_and_copies() -> None:
    base = {"PATH": "/usr/bin", "HOME": "/home/u"}
    assert child_env(base, 1700000000) == {**base, "SOURCE_DATE_EPOCH": "1700000000"}
    plain = child_env(base, None)
    assert plain == base and plain is not base
    assert child_env({**base, "SOURCE_DATE_EPOCH": "5"}, None)["SOURCE_DATE_EPOCH"] == "5"
    assert base == {"PATH": "/usr/bin", "HOME": "/home/u"}


@pytest.mark.parametrize(
    ("value", "expected"), [("1", True), ("", False), ("0", False), ("yes", False)]
)
def test_sudo_only_when_asked_with_1(value: str, expected: bool) -> None:
    assert wants_sudo({singularity.SUDO_ENV: value}) is expected
    assert wants_sudo({}) is False


def test_squashfs_option() -> None:
    assert squashfs_option("gzip") == "-comp gzip"
    assert squashfs_option("zstd") == "-comp zstd -Xcompression-level 3"
    assert squashfs_option("gzip:9") == "-comp gzip"
    assert squashfs_option("gzip:4") == "-comp gzip -Xcompression-level 4"
    with pytest.raises(BuildError, match=r"unknown squashfs compression 'gzip -noI'"):
        squashfs_option("gzip -noI")


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (
            ["INFO:    Starting", "FATAL:   While   performing build: x", "cleanup"],
            "FATAL: While performing build: x",
        ),
        (["ERROR: first", "FATAL: second", "", "  "], "FATAL: second"),
        (["some output", "last words  "], "last words"),
        ([], "no output"),
        (["", " "], "no output"),
    ],
)
def test_error_line(lines: list[str], expected: str) -> None:
    assert error_line(lines) == expected


# --- command(): what make() runs, per user, tool and options ----------------------------


@pytest.mark.parametrize("name", ["apptainer", "singularity"])
def test_command_non_root_uses_fakeroot(
    name: str, tmp_path: Path, request_: SifRequest, non_root: None
) -> None:
    tool = make_tool(tmp_path, name, squashfs_args=name == "apptainer")
    argv, env = SingularityCLI(name, str(tool)).command(request_, D, environ={"HOME": "/h"})
    squashfs = ["--mksquashfs-args", "-comp gzip"] if name == "apptainer" else []
    assert argv == [
        str(tool),
        "build",
        "--force",
        "--fakeroot",
        *squashfs,
        str(request_.target),
        str(D),
    ]
    assert env == {"HOME": "/h"}


@pytest.mark.parametrize("name", ["apptainer", "singularity"])
def test_command_as_root(name: str, tmp_path: Path, request_: SifRequest, as_root: None) -> None:
    tool = make_tool(tmp_path, name, squashfs_args=name == "apptainer")
    sudo_env = {singularity.SUDO_ENV: "1"}  # pointless as root: ignored
    argv, env = SingularityCLI(name, str(tool)).command(request_, D, environ=sudo_env)
    squashfs = ["--mksquashfs-args", "-comp gzip"] if name == "apptainer" else []
    assert argv == [str(tool), "build", "--force", *squashfs, str(request_.target), str(D)]
    assert env == sudo_env


def test_command_sudo_opt_in(tmp_path: Path, request_: SifRequest, non_root: None) -> None:
    tool = make_tool(tmp_path, "singularity", squashfs_args=False)
    cli = SingularityCLI("singularity", str(tool))
    environ = {singularity.SUDO_ENV: "1", "PATH": "/usr/bin"}
    argv, env = cli.command(request_, D, environ=environ)
    assert argv == ["sudo", str(tool), "build", "--force", str(request_.target), str(D)]
    assert env == environ
    epoch = replace(request_, source_date_epoch=1234567890)
    argv, env = cli.command(epoch, D, environ=environ)
    assert argv == [
        "sudo", "--preserve-env=SOURCE_DATE_EPOCH",
        str(tool), "build", "--force", str(request_.target), str(D),
    ]  # fmt: skip
    assert env == {**environ, "SOURCE_DATE_EPOCH": "1234567890"}


def test_command_source_date_epoch_and_compression(
    tmp_path: Path, request_: SifRequest, non_root: None
) -> None:
    tool = make_tool(tmp_path, "apptainer")
    request = replace(request_, source_date_epoch=0, compression="zstd")
    argv, env = SingularityCLI("apptainer", str(tool)).command(request, D, environ={})
    assert argv == [
        str(tool), "build", "--force", "--fakeroot", "--mksquashfs-args", ZSTD_ARGS,
        str(request.target), str(D),
    ]  # fmt: skip
    assert env == {"SOURCE_DATE_EPOCH": "0"}


def test_version_is_the_first_line_and_cached(tmp_path: Path) -> None:
    tool = make_tool(tmp_path, "apptainer")
    cli = SingularityCLI("apptainer", str(tool))
    assert cli.name == "apptainer"
    assert cli.version() == "apptainer version 1.4.1-fake"
    assert cli.version() == "apptainer version 1.4.1-fake"
    assert recorded(tool, "version-calls") == "x\n"


def test_version_of_a_broken_binary_is_an_environment_error(tmp_path: Path) -> None:
    cli = SingularityCLI("apptainer", str(tmp_path / "gone"))
    with pytest.raises(EngineError, match=r"gone --version failed") as info:
        cli.version()
    assert info.value.exit_code == 3
    assert cli.supports_mksquashfs_args() is False


# --- make(): the whole conversion with a fake tool ------------------------------------


def test_make_builds_from_the_archive_and_cleans_up(
    tmp_path: Path, out: Path, request_: SifRequest, non_root: None
) -> None:
    tool = make_tool(tmp_path / "bin", "apptainer")
    source = FakeImage(IMAGE_ID)
    lines = Lines()
    request = replace(request_, source_date_epoch=1700000000)
    SingularityCLI("apptainer", str(tool)).make(request, source=source, log=lines)

    assert source.archived == [request.archive]
    argv = recorded(tool, "argv").splitlines()
    assert argv[:5] == ["build", "--force", "--fakeroot", "--mksquashfs-args", "-comp gzip"]
    assert argv[5] == str(request.target)
    deffile = Path(argv[6])
    assert deffile.parent == out and deffile.name.startswith(".demo.")
    assert deffile.suffix == ".def"
    # At call time the .def held the request's text, and the archive and env file existed.
    assert recorded(tool, "def") == request.convert_deffile
    assert recorded(tool, "archive").encode() == ARCHIVE_BYTES
    assert recorded(tool, "env-file") == ENV_FILE_TEXT
    assert recorded(tool, "epoch") == "1700000000\n"
    # Afterwards only the target is left; the tool's output (both streams) went to log.
    assert request.target.read_bytes() == b"SIF"
    assert leftovers(out) == [request.target.name]
    assert lines[0].startswith(f"$ {tool} build --force --fakeroot --mksquashfs-args '-comp gzip' ")
    assert "INFO:    Starting build..." in lines
    assert "Getting image source signatures" in lines
    assert lines[-1] == f"INFO:    Build complete: {request.target}"


def test_make_without_epoch_leaves_the_variable_unset(
    tmp_path: Path, request_: SifRequest, as_root: None
) -> None:
    tool = make_tool(tmp_path / "bin", "singularity", squashfs_args=False)
    source = FakeImage(IMAGE_ID)
    SingularityCLI("singularity", str(tool)).make(request_, source=source, log=discard)
    assert recorded(tool, "epoch") == "unset\n"
    *argv, deffile = recorded(tool, "argv").splitlines()
    assert argv == ["build", "--force", str(request_.target)]
    assert deffile.endswith(".convert.def")


def test_make_failure_names_the_image_and_the_tools_error(
    tmp_path: Path, out: Path, request_: SifRequest, non_root: None
) -> None:
    tool = make_tool(tmp_path / "bin", "apptainer", fail=True)
    lines = Lines()
    with pytest.raises(BuildError) as info:
        source = FakeImage(IMAGE_ID)
        SingularityCLI("apptainer", str(tool)).make(request_, source=source, log=lines)
    assert str(info.value) == (
        "demo: apptainer build of image sha256:ab12ab12ab12 failed (exit 255): "
        "FATAL: While performing build: conveyor failed to get: no space left on device"
    )
    assert "\n" not in str(info.value)
    assert info.value.exit_code == 1
    assert lines[-1] == "cleanup done"
    # The archive, the .def and the partial target are gone.
    assert leftovers(out) == []


def test_make_failure_of_docker_save_cleans_up(
    tmp_path: Path, out: Path, request_: SifRequest, non_root: None
) -> None:
    tool = make_tool(tmp_path / "bin", "apptainer")
    source = FakeImage(IMAGE_ID, error="No such image: sha256:ab12")
    with pytest.raises(
        BuildError, match=r"^demo: docker save of image sha256:ab12\S* to .* failed: No such image"
    ):
        SingularityCLI("apptainer", str(tool)).make(request_, source=source, log=discard)
    assert not (tool.parent / "rec" / "argv").exists()
    assert leftovers(out) == []


def test_make_with_a_vanished_binary_is_a_build_error(
    tmp_path: Path, out: Path, request_: SifRequest, non_root: None
) -> None:
    tool = make_tool(tmp_path / "bin", "apptainer")
    cli = SingularityCLI("apptainer", str(tool))
    assert cli.supports_mksquashfs_args()
    tool.unlink()
    with pytest.raises(
        BuildError, match=r"^demo: apptainer build of .* \(exit 127\): ERROR: cannot run"
    ):
        cli.make(request_, source=FakeImage(IMAGE_ID), log=discard)
    assert leftovers(out) == []


def test_make_refuses_simg(tmp_path: Path, out: Path, request_: SifRequest, non_root: None) -> None:
    tool = make_tool(tmp_path / "bin", "apptainer")
    source = FakeImage(IMAGE_ID)
    request = replace(request_, image_format="simg", target=out / ".demo.simg.tmp")
    with pytest.raises(BuildError) as info:
        SingularityCLI("apptainer", str(tool)).make(request, source=source, log=discard)
    assert str(info.value) == (
        "demo: apptainer cannot write the legacy .simg format; "
        "use --singularity native with --format simg, or --format sif"
    )
    assert source.archived == []
    assert leftovers(out) == []


def test_make_notes_when_compression_cannot_be_passed(
    tmp_path: Path, request_: SifRequest, non_root: None
) -> None:
    tool = make_tool(tmp_path / "bin", "singularity", squashfs_args=False)
    lines = Lines()
    request = replace(request_, compression="xz")
    source = FakeImage(IMAGE_ID)
    SingularityCLI("singularity", str(tool)).make(request, source=source, log=lines)
    assert "--mksquashfs-args" not in recorded(tool, "argv")
    assert (
        lines[0]
        == "singularity has no --mksquashfs-args: the SIF keeps its default gzip compression"
    )


def test_make_with_the_rendered_convert_def(
    tmp_path: Path,
    out: Path,
    request_: SifRequest,
    non_root: None,
    jobs_for: Callable[..., list[BuildJob]],
    ngc_config: ImageConfig,
) -> None:
    """The real convert.def.j2 output: the tool finds the archive and the env file it names."""
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    (recipes / "demo.toml").write_text('base = "nvcr.io/nvidia/pytorch:24.01-py3"\n')
    job = jobs_for(
        recipes, {"nvcr.io/nvidia/pytorch:24.01-py3": ngc_config}, out=tmp_path / "build"
    )[0]
    text = render(job, "convert", archive=request_.archive, env_file_path=out / "imgforge-env.sh")
    request = replace(request_, convert_deffile=text)
    tool = make_tool(tmp_path / "bin", "apptainer")
    source = FakeImage(IMAGE_ID)
    SingularityCLI("apptainer", str(tool)).make(request, source=source, log=discard)
    assert recorded(tool, "archive").encode() == ARCHIVE_BYTES
    assert recorded(tool, "env-file") == ENV_FILE_TEXT
    assert leftovers(out) == [request.target.name]


# --- DockerEngine.save: the archive the .def bootstraps from ----------------------------


class FakeSaveApi:
    """``APIClient.get_image``: a stream of chunks, failing up front or part-way."""

    def __init__(self, *, refuse: bool = False, break_after: int | None = None) -> None:
        self.refuse = refuse
        self.break_after = break_after

    def get_image(self, image: str) -> Iterator[bytes]:
        if self.refuse:
            raise docker.errors.ImageNotFound(f"No such image: {image}")
        return self._chunks()

    def _chunks(self) -> Iterator[bytes]:
        for index, chunk in enumerate([b"layer-1 ", b"layer-2 ", b"manifest.json"]):
            if index == self.break_after:
                raise ConnectionResetError("Connection reset by peer")
            yield chunk


def test_docker_save_streams_the_archive(tmp_path: Path) -> None:
    path = tmp_path / "a.tar"
    DockerEngine(FakeSaveApi()).save(IMAGE_ID, path)
    assert path.read_bytes() == b"layer-1 layer-2 manifest.json"


@pytest.mark.parametrize(
    ("api", "reason"),
    [
        (FakeSaveApi(refuse=True), f"No such image: {IMAGE_ID}"),
        (FakeSaveApi(break_after=1), "Connection reset by peer"),
    ],
    ids=["refused", "cut-off"],
)
def test_docker_save_failure_is_a_build_error_and_leaves_no_file(
    tmp_path: Path, api: FakeSaveApi, reason: str
) -> None:
    path = tmp_path / "a.tar"
    with pytest.raises(BuildError) as info:
        DockerEngine(api).save(IMAGE_ID, path)
    assert str(info.value) == f"docker save of image {IMAGE_ID} to {path} failed: {reason}"
    assert not path.exists()


# --- choose(): which backend --singularity picks ----------------------------------------


@pytest.fixture
def path_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty directory that is the whole PATH."""
    directory = tmp_path / "path"
    directory.mkdir()
    monkeypatch.setenv("PATH", str(directory))
    return directory


def test_choose_auto_prefers_apptainer(path_dir: Path) -> None:
    make_tool(path_dir, "singularity")
    make_tool(path_dir, "apptainer")
    chosen = backend.choose("auto")
    assert isinstance(chosen, SingularityCLI)
    assert (chosen.name, chosen.path) == ("apptainer", str(path_dir / "apptainer"))


def test_choose_auto_falls_back_to_singularity(path_dir: Path) -> None:
    make_tool(path_dir, "singularity")
    chosen = backend.choose("auto")
    assert isinstance(chosen, SingularityCLI)
    assert (chosen.name, chosen.path) == ("singularity", str(path_dir / "singularity"))


@pytest.mark.parametrize("name", ["apptainer", "singularity"])
def test_choose_explicit(name: str, path_dir: Path) -> None:
    make_tool(path_dir, "apptainer")
    make_tool(path_dir, "singularity")
    chosen = backend.choose(name)
    assert isinstance(chosen, SingularityCLI)
    assert (chosen.name, chosen.path) == (name, str(path_dir / name))


@pytest.mark.parametrize(
    ("requested", "present"), [("apptainer", "singularity"), ("singularity", "apptainer")]
)
def test_choose_explicit_missing_binary_is_exit_3(
    requested: str, present: str, path_dir: Path
) -> None:
    make_tool(path_dir, present)
    with pytest.raises(EngineError) as info:
        backend.choose(requested)
    assert str(info.value) == f"--singularity {requested}: no {requested} binary on PATH"
    assert info.value.exit_code == 3


def test_choose_none(path_dir: Path) -> None:
    make_tool(path_dir, "apptainer")
    assert backend.choose("none") is None
