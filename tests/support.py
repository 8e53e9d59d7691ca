"""Helpers shared by the unit, golden and reliability tests: TOML text holding exactly a
value, and the environment a shell script exports when sourced in an empty environment."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Mapping
from pathlib import Path

import pytest

from imgforge.sif.runtime import Runtime, find


def toml_string(value: str) -> str:
    """A TOML basic string holding exactly ``value`` (every control character escaped)."""
    out = []
    for char in value:
        if char in '"\\':
            out.append("\\" + char)
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def sourced_env(
    shell: str, script: str, directory: Path, environ: Mapping[str, str] | None = None
) -> dict[str, str]:
    """What ``shell`` exports after sourcing ``script`` under ``env -i`` (plus
    ``environ``): every name and value exactly (lone surrogates stand for bytes that are
    not UTF-8), the shell's own variables (PWD, SHLVL, ...) included."""
    path = directory / f"sourced-{uuid.uuid4().hex}.sh"
    path.write_bytes(script.encode("utf-8", "surrogatepass"))
    result = subprocess.run(
        [
            "/usr/bin/env",
            "-i",
            *(f"{k}={v}" for k, v in (environ or {}).items()),
            shell,
            "-c",
            '. "$1" && exec /usr/bin/env -0',
            shell,
            str(path),
        ],
        capture_output=True,
        check=True,
        timeout=30,
    )
    pairs = (entry.partition(b"=") for entry in result.stdout.split(b"\0") if entry)
    return {
        name.decode("utf-8", "surrogatepass"): value.decode("utf-8", "surrogatepass")
        for name, _, value in pairs
    }


# Where this project's machines install Apptainer built from source (docs/APPTAINER.md).
APPTAINER_HOME = Path("/opt/apptainer/bin")


def installed_runtime() -> Runtime | None:
    """The Apptainer/Singularity on PATH, else the one in /opt/apptainer/bin, or None."""
    if shutil.which("apptainer") or not (APPTAINER_HOME / "apptainer").is_file():
        return find()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PATH", f"{APPTAINER_HOME}:{os.environ.get('PATH', '')}")
        return find()
