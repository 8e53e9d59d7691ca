"""Shared pieces of the benchmark: running and timing commands, results, engine cleanup."""

from __future__ import annotations

import http.client
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

REPO = Path(__file__).resolve().parent.parent
STANDIN = "imgforge-standin/ngc-pytorch:24.01-py3"
PREFIX = "bench"
NETWORK = ["--network", "host"]
T = TypeVar("T")


class BenchError(Exception):
    """A step of the benchmark failed; the scenario is reported as crashed."""


def say(message: str) -> None:
    """Progress message on stderr (the results table goes to stdout)."""
    print(f"bench: {message}", file=sys.stderr, flush=True)


def resolved(argv: Sequence[str | os.PathLike[str]]) -> list[str]:
    """``argv`` with its program found on PATH now: a relative PATH entry (``.venv/bin``)
    would otherwise be looked up from the command's working directory."""
    words = [str(a) for a in argv]
    found = shutil.which(words[0])
    return [os.path.abspath(found) if found else words[0], *words[1:]]


def run(
    argv: Sequence[str | os.PathLike[str]],
    *,
    cwd: Path | None = None,
    check: bool = True,
    shell: bool = False,
) -> subprocess.CompletedProcess[str]:
    """Run a command to completion, capturing its output; raise BenchError on failure."""
    command: str | list[str] = str(argv[0]) if shell else resolved(argv)
    done = subprocess.run(
        command,
        cwd=cwd,
        shell=shell,
        executable="/bin/bash" if shell else None,
        capture_output=True,
        text=True,
        errors="replace",
    )
    if check and done.returncode != 0:
        text = command if isinstance(command, str) else " ".join(command)
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-15:])
        raise BenchError(f"`{text[:300]}` exited {done.returncode}:\n{tail}")
    return done


def timed(
    argv: Sequence[str | os.PathLike[str]], *, cwd: Path | None = None, shell: bool = False
) -> tuple[float, subprocess.CompletedProcess[str]]:
    """Wall-clock seconds of one command (process start included) and its result."""
    started = time.perf_counter()
    done = run(argv, cwd=cwd, shell=shell)
    return time.perf_counter() - started, done


def clock(action: Callable[[], object]) -> float:
    """Wall-clock seconds of one call."""
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def imgforge_cli() -> str:
    """The ``imgforge`` command as a user types it (resolved on PATH), or exit early."""
    found = shutil.which("imgforge")
    if found is None:
        raise BenchError("no `imgforge` on PATH: run `make setup` first")
    return "imgforge"


@dataclass
class Sample:
    """Repeated measurements of one thing (seconds or bytes) and their median."""

    values: list[float] = field(default_factory=list)

    def add(self, value: float) -> None:
        self.values.append(value)

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    def spread(self) -> str:
        """min..max of the repetitions, for the notes."""
        if len(self.values) < 2:
            return "1 rep"
        return f"{len(self.values)} reps, {min(self.values):.3f}..{max(self.values):.3f}"


@dataclass(frozen=True)
class Row:
    """One line of the results table: imgforge's value, the baseline's, and the target."""

    scenario: str
    measure: str
    imgforge: float | None
    baseline: float | None = None
    unit: str = "s"
    target: str = ""
    passed: bool | None = None
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.imgforge is None or not self.baseline:
            return None
        return self.imgforge / self.baseline

    @property
    def result(self) -> str:
        if self.passed is None:
            return "" if self.target == "" else "n/a"
        return "PASS" if self.passed else "FAIL"


def fmt(value: float | None, unit: str) -> str:
    """A value for the table: seconds with 3 decimals, MB with 2."""
    if value is None:
        return "-"
    if unit == "MB":
        return f"{value:.2f} MB"
    return f"{value:.3f} s"


def table(rows: Sequence[Row]) -> str:
    """The rows as a markdown table (ratio = imgforge / baseline)."""
    lines = [
        "| scenario | measure | imgforge | baseline | ratio | target | result | notes |",
        "|---|---|---:|---:|---:|---|---|---|",
    ]
    for row in rows:
        ratio = "-" if row.ratio is None else f"{row.ratio:.2f}"
        cells = [
            row.scenario,
            row.measure,
            fmt(row.imgforge, row.unit),
            fmt(row.baseline, row.unit),
            ratio,
            row.target,
            row.result,
            row.note,
        ]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


class _UnixHTTP(http.client.HTTPConnection):
    """HTTP over the engine's unix socket."""

    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=30)
        self.unix_path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.unix_path)


def engine_get(paths: Sequence[str]) -> None:
    """GET each Engine API path over one kept-alive connection (timing the engine's
    side of a call, without any client library)."""
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if not host.startswith("unix://"):
        raise BenchError("DOCKER_HOST is not a unix socket")
    connection = _UnixHTTP(host.removeprefix("unix://"))
    try:
        for path in paths:
            connection.request("GET", path)
            response = connection.getresponse()
            response.read()
            if response.status != 200:
                raise BenchError(f"GET {path}: the engine answered {response.status}")
    finally:
        connection.close()


class Engine:
    """The Docker engine as the benchmark uses it; remembers what it created."""

    def __init__(self, prefix: str = PREFIX) -> None:
        self.prefix = prefix
        self.image_ids: set[str] = set()
        self.containers: set[str] = set()

    @staticmethod
    def reachable() -> bool:
        done = run(["docker", "version", "--format", "{{.Server.Version}}"], check=False)
        return done.returncode == 0

    def wait(self, seconds: float = 180) -> bool:
        """Wait for the engine to answer (others may restart it); False on timeout."""
        deadline = time.monotonic() + seconds
        while not self.reachable():
            if time.monotonic() > deadline:
                return False
            time.sleep(2)
        return True

    def image_id(self, ref: str) -> str | None:
        done = run(["docker", "image", "inspect", "--format", "{{.Id}}", ref], check=False)
        return done.stdout.strip() if done.returncode == 0 else None

    def image_size(self, ref: str) -> int:
        done = run(["docker", "image", "inspect", "--format", "{{.Size}}", ref])
        return int(done.stdout.strip())

    def track(self) -> None:
        """Remember the IDs of every image named ``PREFIX-*``, so that images untagged by a
        later rebuild are removed too."""
        self.image_ids.update(self._listed("{{.ID}}"))

    def _listed(self, template: str) -> list[str]:
        """One field of every image whose name starts with this run's prefix."""
        argv = ["docker", "images", "--no-trunc", "--format", template]
        return run([*argv, "--filter", f"reference={self.prefix}-*"]).stdout.split()

    def create(self, image: str, name: str) -> str:
        """``docker create`` a container (never started) and remember it."""
        run(["docker", "rm", "-f", name], check=False)
        self.containers.add(name)
        argv = ["docker", "create", "--network", "none", "--name", name, image]
        return run(argv).stdout.strip()

    def remove_container(self, name: str) -> None:
        run(["docker", "rm", "-f", name], check=False)
        self.containers.discard(name)

    def cleanup(self) -> None:
        """Remove the containers and ``PREFIX-*`` images (tags, then tracked IDs); never
        raises, so that the results are still reported when the engine went away."""
        if not self.wait():
            say(f"the engine does not answer: remove the {self.prefix}-* images by hand")
            return
        try:
            for name in sorted(self.containers):
                run(["docker", "rm", "-f", name], check=False)
            self.track()
            names = sorted(set(self._listed("{{.Repository}}:{{.Tag}}")))
            for name in names:  # e.g. an export container left when the engine restarted
                found = run(["docker", "ps", "-aq", "--filter", f"ancestor={name}"], check=False)
                if found.stdout.split():
                    run(["docker", "rm", "-f", *found.stdout.split()], check=False)
            if names:
                run(["docker", "rmi", *names], check=False)
            leftovers = [i for i in sorted(self.image_ids) if self.image_id(i) is not None]
            if leftovers:
                run(["docker", "rmi", *leftovers], check=False)
        except BenchError as exc:
            say(f"cleanup incomplete (remove the {self.prefix}-* images by hand): {exc}")


@dataclass
class Context:
    """What every scenario gets: where to work, how often to repeat, the engine."""

    workdir: Path
    fast_reps: int
    slow_reps: int
    engine: Engine
    cache: dict[str, object] = field(default_factory=dict)
    # The base sizes (GB) the ``scale`` scenario packs (bench/scalebase.py's TAGS).
    sizes: tuple[str, ...] = ("0.2", "1", "6")

    def again(self, action: Callable[[], T]) -> T:
        """``action()``; if it fails, once more when the engine answers (others may
        restart the engine mid-run, which breaks the command that was running)."""
        try:
            return action()
        except Exception as exc:  # noqa: BLE001 - a second failure propagates
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            say(f"retrying once after: {first[:200]}")
            if not self.engine.wait():
                raise
            return action()

    @property
    def prefix(self) -> str:
        """This run's name prefix of images and containers (``bench-XXXX``)."""
        return self.engine.prefix

    def directory(self, name: str) -> Path:
        path = self.workdir / name
        path.mkdir(parents=True, exist_ok=True)
        return path
