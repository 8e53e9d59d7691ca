"""imgforge completion: scripts that shells accept and that know every command."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from imgforge.cli import main


@pytest.mark.parametrize("shell", ["bash", "zsh"])
def test_completion_script(shell: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["completion", shell]) == 0
    script = capsys.readouterr().out
    for command in ["build", "render", "plan", "graph", "verify", "shell", "doctor", "bake"]:
        assert command in script
    assert "complete -F _imgforge imgforge" in script
    assert subprocess.run(["bash", "-n"], input=script, text=True).returncode == 0
    if shell == "zsh" and shutil.which("zsh"):
        assert subprocess.run(["zsh", "-n"], input=script, text=True).returncode == 0
