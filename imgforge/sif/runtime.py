"""The Apptainer/Singularity runtime installed on this machine, when there is one: which
one, which version, its known quirks, and what it shows of a SIF when it runs it."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imgforge.errors import EngineError
from imgforge.recipes.image import split_env

# What a runtime's `--version` prints: "apptainer version 1.5.3", "singularity-ce version
# 4.4.0", "singularity version 3.8.7-1.el8".
_VERSION_RE = re.compile(r"^(apptainer|singularity(?:-ce)?) version (\d+)\.(\d+)\.(\d+)")
TIMEOUT = 300
# The caller's settings of the runtime (APPTAINERENV_* forwarded into the container,
# APPTAINER_ENV_FILE, APPTAINER_NO_EVAL, APPTAINER_BIND, ...): none of them is the SIF's.
# Only where the runtime keeps its files stays.
RUNTIME_SETTINGS = ("APPTAINER", "SINGULARITY")
KEPT_SETTINGS = frozenset(
    {"APPTAINER_CACHEDIR", "APPTAINER_TMPDIR", "SINGULARITY_CACHEDIR", "SINGULARITY_TMPDIR"}
)


@dataclass(frozen=True)
class Runtime:
    """One runtime binary: ``flavour`` is apptainer, singularity-ce or singularity."""

    path: str
    flavour: str
    version: tuple[int, int, int]

    @property
    def label(self) -> str:
        return f"{self.flavour} {'.'.join(map(str, self.version))}"

    def exec_env(self, sif: Path) -> dict[str, str]:
        """What a command sees in ``sif`` under ``exec --cleanenv``, every byte (NUL
        separated, so any value survives)."""
        done = self._run("exec", "--cleanenv", str(sif), "env", "-0")
        entries = done.stdout.decode("utf-8", "surrogateescape").split("\0")
        return dict(split_env(entry) for entry in entries if entry)

    def inspect(self, sif: Path) -> dict[str, Any]:
        """``inspect --json --all``'s attributes: labels, environment, runscript, deffile…"""
        done = self._run("inspect", "--json", "--all", str(sif))
        try:
            attributes = json.loads(done.stdout)["data"]["attributes"]
        except (ValueError, KeyError, TypeError) as exc:
            raise EngineError(f"{self.label} inspect {sif}: unexpected output ({exc})") from None
        if not isinstance(attributes, dict):
            raise EngineError(f"{self.label} inspect {sif}: unexpected output")
        return attributes

    def _run(self, *args: str) -> subprocess.CompletedProcess[bytes]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(RUNTIME_SETTINGS) or k in KEPT_SETTINGS
        }
        try:
            done = subprocess.run(
                [self.path, *args],
                capture_output=True,
                timeout=TIMEOUT,
                stdin=subprocess.DEVNULL,
                env=env,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise EngineError(f"{self.label} {args[0]}: {exc}") from None
        if done.returncode != 0:
            last = done.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
            raise EngineError(f"{self.label} {' '.join(args[:2])}: {last[0]}")
        return done


def parse_version(text: str) -> tuple[str, tuple[int, int, int]] | None:
    """(flavour, version) from a runtime's ``--version`` output, or None."""
    match = _VERSION_RE.match(text.strip())
    if match is None:
        return None
    return match[1], (int(match[2]), int(match[3]), int(match[4]))


def find() -> Runtime | None:
    """The runtime on PATH (apptainer first), or None when there is none that answers."""
    for name in ("apptainer", "singularity"):
        path = shutil.which(name)
        if path is None:
            continue
        try:
            done = subprocess.run(
                [path, "--version"], capture_output=True, text=True, timeout=30, errors="replace"
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        parsed = parse_version(done.stdout)
        if parsed is not None:
            return Runtime(path, *parsed)
    return None


DOUBLE_ESCAPES = (
    "its own Docker conversion double-escapes Env values ($, `, \\, \"){}; imgforge's SIFs "
    "and .def builds replace that file"
)
# Known quirks: (flavour, first affected version, first fixed version or None, text). From the
# runtimes' source and trackers (docs/APPTAINER.md lists which versions were run for real).
QUIRKS: tuple[tuple[str, tuple[int, int, int], tuple[int, int, int] | None, str], ...] = (
    ("singularity", (3, 0, 0), (3, 6, 0),
     "env scripts are sourced by /bin/sh without clearing the host environment, and the "
     "Docker-style runscript is run by /bin/sh (arguments evaluated); host values can win"),
    ("singularity", (3, 1, 0), None, DOUBLE_ESCAPES.format("")),
    ("apptainer", (1, 0, 0), (1, 5, 0),
     DOUBLE_ESCAPES.format(" and runs `cmd` in them (apptainer#3328)")),
    ("apptainer", (1, 0, 0), (1, 3, 5),
     "an image Env name that is not a shell name stops the container from starting "
     "(apptainer#2576); imgforge skips such names"),
    ("apptainer", (1, 3, 4), (1, 3, 5),
     "localimage and sandbox builds overwrite the runscript and 90-environment.sh "
     "(apptainer#2561): a recipe:NAME .def build loses its parent's runscript"),
    ("singularity-ce", (3, 6, 0), (4, 4, 0), DOUBLE_ESCAPES.format("")),
)


def quirks(runtime: Runtime) -> list[str]:
    """The known quirks of ``runtime``'s version that matter to imgforge's images."""
    return [
        text
        for flavour, first, fixed, text in QUIRKS
        if flavour == runtime.flavour
        and runtime.version >= first
        and (fixed is None or runtime.version < fixed)
    ]
