"""Injected faults: a failing step, a missing base, no engine, no or a failing squashfs
tool, a full output disk, a corrupted manifest. Each ends with the exit code README.md
gives (under "Commands"), one clear message, no container, temporary file or partial
artifact, the previous artifacts byte-identical, and a following normal run that works."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
from reliability_support import (
    assert_same_artifacts,
    build_argv,
    image_id,
    manifest_of,
    no_containers_left,
    one_error_line,
    run_main,
    snapshot,
    temp_files,
    toml_string,
    write,
)

pytestmark = pytest.mark.integration

NAME = "rel-fault"


def recipe_text(base: str, *, value: str = "one", commands: tuple[str, ...] = ()) -> str:
    run = ", ".join(toml_string(c) for c in ("echo built > /opt/built", *commands))
    return (
        f'name = "{NAME}"\nbase = {toml_string(base)}\n[env]\nVERSION = {toml_string(value)}\n'
        f"[run]\ncommands = [{run}]\n"
    )


class Project:
    """A recipe built once on the tiny image with a native SIF: the previous good state."""

    def __init__(self, root: Path, base: str, capsys: pytest.CaptureFixture[str]) -> None:
        self.recipe = root / "recipes" / f"{NAME}.toml"
        self.out = root / "out"
        self.directory = self.out / NAME
        self.base = base
        self.capsys = capsys

    def write(self, **kwargs: Any) -> None:
        write(self.recipe, recipe_text(kwargs.pop("base", self.base), **kwargs))

    def build(self, *extra: str, singularity: str = "native") -> tuple[int, str, str]:
        return run_main(
            build_argv(self.recipe, self.out, *extra, singularity=singularity), self.capsys
        )

    def good(self, *extra: str, singularity: str = "native") -> tuple[dict[str, bytes], str]:
        code, _, err = self.build(*extra, singularity=singularity)
        assert code == 0, err
        tagged = image_id(docker.from_env(), f"{NAME}:latest")
        assert tagged is not None
        return snapshot(self.directory), tagged

    def unchanged(self, before: dict[str, bytes], tagged: str) -> None:
        assert_same_artifacts(before, self.directory)
        assert image_id(docker.from_env(), f"{NAME}:latest") == tagged

    def attempted_image(self) -> str | None:
        """The image the failed attempt built, from its build.log, if it got that far."""
        log = (self.directory / "build.log").read_text()
        found = re.findall(r"Successfully built ([0-9a-f]+)", log)
        return image_id(docker.from_env(), found[-1]) if found else None

    def recovers(self, *extra: str, singularity: str = "native") -> None:
        """A normal run after the fault: a real build (the recipe changes again)."""
        self.write(value=f"recovered {uuid.uuid4().hex}")
        code, _, err = self.build(*extra, singularity=singularity)
        assert code == 0, err
        manifest = manifest_of(self.directory)
        assert manifest["docker_image_id"] == image_id(docker.from_env(), f"{NAME}:latest")
        assert not temp_files(self.out)


@pytest.fixture
def built(project: Path, mini_image: str, capsys: pytest.CaptureFixture[str]) -> Project:
    state = Project(project, mini_image, capsys)
    state.write()
    return state


# ------------------------------------------------------------------ build step fails


@pytest.mark.parametrize("strategy", ["dockerfile", "commit"])
def test_a_failing_step_names_recipe_and_instruction(
    built: Project, client: docker.DockerClient, strategy: str
) -> None:
    before, tagged = built.good("--strategy", strategy)
    marker = uuid.uuid4().hex[:12]
    failing = f"test -e /nonexistent-{marker}"
    built.write(value="two", commands=("echo step two", failing, "echo never"))
    code, _, err = built.build("--strategy", strategy)
    assert code == 1
    line = one_error_line(err)
    assert str(built.recipe) in line and f"{NAME}:latest" in line, line
    assert failing in line, line
    built.unchanged(before, tagged)
    log = (built.directory / "build.log").read_text()  # the failed attempt's log
    assert "step two" in log and failing in log.split("step two", 1)[1]
    no_containers_left(client, marker=marker)
    built.recovers("--strategy", strategy)


# --------------------------------------------------------------------- missing base


@pytest.mark.parametrize(
    "base",
    ["imgforge-reliability/no-such-base:never", "localhost:1/imgforge/no-such-base:1"],
    ids=["unknown-name", "unreachable-registry"],
)
def test_a_base_image_that_does_not_exist(built: Project, base: str) -> None:
    before, tagged = built.good()
    built.write(base=base)
    code, _, err = built.build()
    assert code == 1
    line = one_error_line(err)
    assert base in line and str(built.recipe) in line, line
    built.unchanged(before, tagged)
    built.recovers()


# ---------------------------------------------------------------------- no engine


def test_no_engine_reachable_at_start_is_exit_3(
    built: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    before, tagged = built.good()
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    for change in (False, True):  # the no-op fast path, then a recipe that must build
        if change:
            built.write(value="two")
        code, _, err = built.build()
        assert code == 3, err
        assert "no Docker engine reachable" in one_error_line(err)
    monkeypatch.delenv("DOCKER_HOST")
    built.unchanged(before, tagged)
    built.recovers()


# ----------------------------------------------------------------- squashfs tool


@pytest.fixture
def no_tar2sqfs_path(tmp_path: Path) -> str:
    """A PATH with every tool of /usr/bin and /bin except tar2sqfs (and apptainer)."""
    directory = tmp_path / "bin-without-tar2sqfs"
    directory.mkdir()
    for source in (Path("/usr/bin"), Path("/bin")):
        for tool in source.iterdir():
            if tool.name not in ("tar2sqfs", "apptainer", "singularity"):
                target = directory / tool.name
                if not target.exists():
                    target.symlink_to(tool)
    return str(directory)


@pytest.mark.parametrize("backend", ["native", "auto"])
def test_squashfs_tool_missing_is_exit_3_only_where_it_is_needed(
    built: Project, backend: str, no_tar2sqfs_path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """imgforge packs gzip, zstd and xz itself; lz4 and lzo need tar2sqfs."""
    before, tagged = built.good()
    built.write(value="two")
    monkeypatch.setenv("PATH", no_tar2sqfs_path)
    assert shutil.which("tar2sqfs") is None
    code, _, err = built.build("--compression", "lz4", singularity=backend)
    assert code == 3
    assert "tar2sqfs" in one_error_line(err)
    built.unchanged(before, tagged)
    code, _, err = built.build(singularity=backend)
    assert code == 0, err
    monkeypatch.undo()


FAKE_TAR2SQFS = {
    "at-once": "#!/bin/sh\necho 'tar2sqfs: simulated failure' >&2\nexit 1\n",
    "mid-stream": (
        "#!/bin/sh\n"
        'case "$1" in --version) echo "tar2sqfs (fake) 0"; exit 0;; esac\n'
        "head -c 3000000 >/dev/null\n"
        "echo 'tar2sqfs: simulated failure after 3 MB' >&2\nexit 1\n"
    ),
}


@pytest.mark.parametrize("when", sorted(FAKE_TAR2SQFS))
def test_a_failing_squashfs_tool_is_exit_1(
    built: Project,
    client: docker.DockerClient,
    tmp_path: Path,
    when: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    before, tagged = built.good()
    fake = write(tmp_path / "fakebin" / "tar2sqfs", FAKE_TAR2SQFS[when])
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}:{Path('/usr/bin')}:{Path('/bin')}")
    built.write(value="two")
    code, _, err = built.build("--compression", "lz4")
    assert code == 1
    line = one_error_line(err)
    assert "tar2sqfs failed" in line and "simulated failure" in line, line
    assert str(built.recipe) in line or f"{NAME}:latest" in line, line
    built.unchanged(before, tagged)
    attempted = built.attempted_image()
    assert attempted is not None and attempted != tagged
    no_containers_left(client, images=[attempted])
    monkeypatch.undo()
    built.recovers()


# -------------------------------------------------------------------- disk full


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MB tmpfs as the output directory (unmounted afterwards)."""
    if shutil.which("mount") is None:
        pytest.skip("no mount(8)")
    mountpoint = tmp_path / "small-out"
    mountpoint.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mountpoint)],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=False)


def test_output_disk_full_while_packing(
    built: Project, small_disk: Path, client: docker.DockerClient
) -> None:
    built.out = small_disk
    built.directory = small_disk / NAME
    before, tagged = built.good(singularity="none")  # small artifacts: they fit
    built.write(value="two")
    code, _, err = built.build()  # the SIF (~2 MB) does not
    assert code == 1
    line = one_error_line(err)
    assert str(built.recipe) in line and "no space left on device" in line.lower(), line
    built.unchanged(before, tagged)
    attempted = built.attempted_image()
    assert attempted is not None
    no_containers_left(client, images=[attempted])
    subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)
    built.recovers()


# -------------------------------------------------------------- corrupted manifest


def _edit(manifest: Path, change: Any) -> None:
    if isinstance(change, bytes):
        manifest.write_bytes(change)
        return
    data = json.loads(manifest.read_text())
    manifest.write_text(json.dumps(change(data)))


def _fingerprint(data: dict[str, Any]) -> dict[str, Any]:
    data["fingerprint"]["recipe"] = "0" * 64
    return data


CORRUPTIONS: dict[str, Any] = {
    "garbage": b"\x00\xff{{ not json at all",
    "truncated": b'{"recipe": "rel-fault", "fingerpri',
    "empty": b"",
    "json-list": b'["a", "list"]\n',
    "json-string": b'"manifest"\n',
    "json-null": b"null\n",
    "fingerprint-changed": _fingerprint,
    "fingerprint-a-string": lambda d: {**d, "fingerprint": "sha256:abc"},
    "fingerprint-a-list": lambda d: {**d, "fingerprint": ["recipe"]},
    "sif-a-string": lambda d: {**d, "sif": "rel-fault.sif"},
    "sif-a-list": lambda d: {**d, "sif": [1, 2]},
    "inputs-a-list": lambda d: {**d, "inputs": []},
    "inputs-files-a-string": lambda d: {**d, "inputs": {**d["inputs"], "files": "x"}},
    "base-a-string": lambda d: {**d, "base": "x"},
    "image-id-a-number": lambda d: {**d, "docker_image_id": 42},
    # Edited with the checksum removed too: no longer detectable as an edit, but still
    # no traceback (a rebuild, or up to date where the damaged part is not needed).
    "no-checksum-fingerprint-a-string": lambda d: _unsealed(d, fingerprint="x"),
    "no-checksum-sif-a-string": lambda d: _unsealed(d, sif="x"),
    "no-checksum-sif-a-list": lambda d: _unsealed(d, sif=[]),
    "no-checksum-inputs-a-string": lambda d: _unsealed(d, inputs="x"),
    "no-checksum-base-a-list": lambda d: _unsealed(d, base=[]),
}


def _unsealed(data: dict[str, Any], **changes: Any) -> dict[str, Any]:
    data = {**data, **changes}
    data.pop("checksum", None)
    return data


@pytest.mark.parametrize("corruption", sorted(CORRUPTIONS))
def test_a_corrupted_manifest_rebuilds_the_recipe(
    built: Project, corruption: str, capsys: pytest.CaptureFixture[str]
) -> None:
    built.good()
    manifest = built.directory / "manifest.json"
    _edit(manifest, CORRUPTIONS[corruption])
    for command in ("plan", "verify"):
        target = str(built.recipe) if command == "plan" else NAME
        code, out, err = run_main([command, target, "--out", str(built.out)], capsys)
        assert "Traceback" not in out + err
        assert code in (0, 1, 2), (command, code, err)
        if code:
            one_error_line(err)
    code, out, err = built.build()
    assert code == 0, err
    assert "Traceback" not in out + err
    if not corruption.startswith("no-checksum"):
        assert f"{NAME}:latest: building" in out, out
        assert manifest_of(built.directory)["fingerprint"]["recipe"] != "0" * 64
    code, out, err = built.build()
    assert code == 0 and "up to date 1" in out, out + err
    assert not temp_files(built.out)


# ------------------------------------------------------------------- a bug in imgforge


def test_an_unexpected_exception_is_one_line_with_the_traceback_in_the_log(
    built: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A broken installation (a template missing from the package) or a bug: the
    operation, the exception's type and message, and where the traceback is; exit 1."""
    import jinja2

    import imgforge.render.job

    before, tagged = built.good()
    built.write(value="two")

    def missing(*args: object, **values: object) -> None:
        raise jinja2.TemplateNotFound("sif/actions/exec.j2")

    monkeypatch.setattr(imgforge.render.job, "render_sif_files", missing)
    code, _, err = built.build()
    assert code == 1
    log = built.directory / "build.log"
    assert one_error_line(err) == (
        f"imgforge: error: {built.recipe}: {NAME}:latest: building: unexpected "
        f"TemplateNotFound: sif/actions/exec.j2 (traceback in {log})"
    )
    assert "Traceback (most recent call last)" in log.read_text()
    assert "in missing" in log.read_text()
    monkeypatch.undo()
    built.unchanged(before, tagged)
    built.recovers()
