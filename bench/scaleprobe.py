"""Run one command and watch it: wall time, peak RSS of its process tree, peak disk use.

Every ``PERIOD`` seconds a thread reads /proc for the RSS of the command's process and all
its descendants, summed, and the allocated bytes of every file under the watched
directories (the command's working directory and a TMPDIR of its own, given to it in its
environment). The peak of that sum over its value at the start is the disk the command used
at its worst; minus the artifact it leaves, the temporary disk it needed. Free space is not
used: others on a shared machine move it. Work done by dockerd on the command's behalf
(``docker export``) is in neither process tree, ours nor the baseline's.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from harness import resolved

PERIOD = 0.15
PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True)
class Measured:
    """What one watched command did."""

    seconds: float
    peak_rss: int
    peak_disk: int
    returncode: int
    stdout: str
    stderr: str


def children_of() -> dict[int, list[int]]:
    """Parent pid -> child pids, from /proc/PID/stat of every process."""
    tree: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry.name}/stat").read_text()
        except OSError:
            continue
        parent = int(stat.rpartition(")")[2].split()[1])
        tree.setdefault(parent, []).append(int(entry.name))
    return tree


def tree_rss(root: int) -> int:
    """Resident bytes of ``root`` and its descendants (0 for a process already gone)."""
    tree, total, todo = children_of(), 0, [root]
    while todo:
        pid = todo.pop()
        todo += tree.get(pid, [])
        try:
            pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
        except (OSError, IndexError, ValueError):
            continue
        total += pages * PAGE
    return total


def allocated(directories: Sequence[Path]) -> int:
    """Bytes allocated to the files under ``directories`` (files may vanish meanwhile)."""
    total = 0
    for directory in directories:
        for root, _, files in os.walk(directory):
            for name in files:
                try:
                    total += os.lstat(os.path.join(root, name)).st_blocks * 512
                except OSError:
                    continue
    return total


class Watch:
    """The sampling thread: peaks of tree RSS and of disk used since it started."""

    def __init__(self, pid: int, directories: Sequence[Path]) -> None:
        self.pid, self.directories = pid, list(directories)
        self.start = allocated(self.directories)
        self.peak_rss = self.peak_disk = 0
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.loop, daemon=True)

    def sample(self) -> None:
        self.peak_rss = max(self.peak_rss, tree_rss(self.pid))
        self.peak_disk = max(self.peak_disk, allocated(self.directories) - self.start)

    def loop(self) -> None:
        while not self.done.is_set():
            self.sample()
            self.done.wait(PERIOD)

    def __enter__(self) -> Watch:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.done.set()
        self.thread.join()


def measure(
    argv: Sequence[str], *, cwd: Path, shell: bool = False, env: Mapping[str, str] | None = None
) -> Measured:
    """Run ``argv`` (a bash script when ``shell``; with ``env`` added to the environment)
    to completion under a Watch of ``cwd`` and of a fresh TMPDIR (removed after)."""
    command: str | list[str] = argv[0] if shell else resolved(argv)
    tmp = Path(tempfile.mkdtemp(prefix="tmp-", dir=cwd))
    try:
        return watched(command, cwd=cwd, env={**os.environ, **(env or {}), "TMPDIR": str(tmp)})
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def watched(command: str | list[str], *, cwd: Path, env: Mapping[str, str]) -> Measured:
    """Run ``command`` in ``env`` under a Watch of ``cwd``."""
    shell = isinstance(command, str)
    started = time.perf_counter()
    with (
        subprocess.Popen(
            command,
            cwd=cwd,
            shell=shell,
            executable="/bin/bash" if shell else None,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
            env=env,
        ) as process,
        Watch(process.pid, [cwd]) as watcher,
    ):
        stdout, stderr = process.communicate()
    seconds = time.perf_counter() - started
    return Measured(
        seconds, watcher.peak_rss, watcher.peak_disk, process.returncode, stdout, stderr
    )
