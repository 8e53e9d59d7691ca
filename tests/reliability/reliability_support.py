"""Helpers shared by the reliability tests: recipes, snapshots, processes, containers."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import docker
from hypothesis import HealthCheck, settings
from support import toml_string as toml_string  # re-exported for the reliability tests

from imgforge.cli import main

# The reliability suite's hypothesis properties: 300 examples, no example database
# (each run draws afresh), no deadline (real shells and parsers run per example).
PROPERTIES = settings(
    max_examples=300,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

REPO = Path(__file__).resolve().parents[2]
STANDIN = "imgforge-standin/ngc-pytorch:24.01-py3"
# A few-MB image made from the stand-in (its Env, dash, coreutils, libc): SIFs of it pack
# in about a second, so most SIF faults are tested on it; SIGINT during packing uses the
# stand-in itself, which packs for long enough to be interrupted.
MINI = "imgforge-reliability/mini:1"
# Files the build rewrites by design on every attempt, or that are not artifacts.
NOT_ARTIFACTS = {"build.log", ".imgforge.lock"}


# ---------------------------------------------------------------------------- TOML


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value) if isinstance(value, int) or value == value else "nan"
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        items = ", ".join(f"{toml_string(str(k))} = {toml_value(v)}" for k, v in value.items())
        return "{ " + items + " }" if items else "{}"
    raise TypeError(f"no TOML for {type(value).__name__}")


def toml_dumps(doc: Mapping[str, Any]) -> str:
    """A TOML document: one top-level ``"key" = value`` line per key (tables inline)."""
    return "".join(f"{toml_string(str(k))} = {toml_value(v)}\n" for k, v in doc.items())


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


# ----------------------------------------------------------------- artifact checks


def snapshot(directory: Path) -> dict[str, bytes]:
    """Every artifact file under ``directory`` (relative name -> bytes)."""
    if not directory.exists():
        return {}
    return {
        str(p.relative_to(directory)): p.read_bytes()
        for p in sorted(directory.rglob("*"))
        if p.is_file() and p.name not in NOT_ARTIFACTS
    }


def is_temporary(name: str) -> bool:
    return (name.startswith(".") and name.endswith(".tmp")) or ".tmp" in name


def temp_files(*directories: Path) -> list[str]:
    """Temporary files (``.*.tmp`` or containing ``.tmp``) left under the directories."""
    found = []
    for directory in directories:
        if directory.exists():
            found += [str(p) for p in directory.rglob("*") if is_temporary(p.name)]
    return found


def assert_same_artifacts(before: Mapping[str, bytes], directory: Path) -> None:
    after = snapshot(directory)
    assert sorted(after) == sorted(before), "artifact set changed"
    for name, data in before.items():
        assert after[name] == data, f"{name} changed"
    assert not temp_files(directory.parent), temp_files(directory.parent)


def one_error_line(err: str) -> str:
    """The single ``imgforge: error:`` line of ``err`` (no traceback, nothing else)."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err, err
    assert len(lines) == 1, err
    return lines[0]


def manifest_of(directory: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((directory / "manifest.json").read_text())
    return data


# ------------------------------------------------------------------ running imgforge


def build_argv(recipe: Path, out: Path, *extra: str, singularity: str = "none") -> list[str]:
    return [
        "build",
        str(recipe),
        "--out",
        str(out),
        "--network",
        "host",
        "--singularity",
        singularity,
        *extra,
    ]


def run_main(argv: Sequence[str], capsys: Any) -> tuple[int, str, str]:
    """``imgforge.cli.main`` in this process: (exit code, stdout, stderr)."""
    capsys.readouterr()
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def child_env(**changes: str | None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("CI", None)
    for key, value in changes.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def spawn(
    argv: Sequence[str], *, cwd: Path | None = None, **env: str | None
) -> subprocess.Popen[str]:
    """``python -m imgforge ARGV`` as a child process (signals need a process of its own)."""
    return subprocess.Popen(
        [sys.executable, "-m", "imgforge", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,
        env=child_env(**env),
    )


def finish(proc: subprocess.Popen[str], timeout: float = 300) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"imgforge did not exit in {timeout}s:\n{out}\n{err}") from None
    return proc.returncode, out, err


def wait_for(
    what: str, predicate: Callable[[], Any], timeout: float = 120, step: float = 0.1
) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


# ------------------------------------------------------------------------ containers


def containers(
    client: docker.DockerClient, *, marker: str | None = None, images: Iterable[str] = ()
) -> list[str]:
    """Containers (any state) whose command or name holds ``marker`` or whose image is one
    of ``images``: only this test's, since other suites share the engine."""
    wanted = {i for i in images if i}
    found = []
    for info in client.api.containers(all=True):
        command = str(info.get("Command", ""))
        names = " ".join(info.get("Names") or [])
        image = {info.get("ImageID", ""), info.get("Image", "")}
        if (marker and (marker in command or marker in names)) or wanted & image:
            found.append(f"{info['Id'][:12]} {names} {info.get('State')} {command[:80]}")
    return found


def no_containers_left(
    client: docker.DockerClient,
    *,
    marker: str | None = None,
    images: Iterable[str] = (),
    timeout: float = 60,
) -> None:
    """The engine removes an abandoned build container asynchronously: wait a bounded time."""
    images = list(images)
    deadline = time.monotonic() + timeout
    left = containers(client, marker=marker, images=images)
    while left and time.monotonic() < deadline:
        time.sleep(0.5)
        left = containers(client, marker=marker, images=images)
    assert not left, left


def running_container(client: docker.DockerClient, marker: str) -> bool:
    return any(
        marker in str(info.get("Command", "")) and info.get("State") == "running"
        for info in client.api.containers()
    )


def image_id(client: docker.DockerClient, ref: str) -> str | None:
    try:
        return str(client.api.inspect_image(ref)["Id"])
    except docker.errors.ImageNotFound:
        return None


def export_tar(client: docker.DockerClient, ref: str) -> bytes:
    """``docker export`` of a new container of ``ref`` (removed again): the image's tree."""
    container = client.api.create_container(ref, command=["true"], entrypoint=[])
    try:
        return b"".join(client.api.export(container["Id"]))
    finally:
        client.api.remove_container(container["Id"], force=True)


def tar_members(data: bytes) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return tar.getmembers()
