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
    assert "complete -o filenames -F _imgforge imgforge" in script
    assert subprocess.run(["bash", "-n"], input=script, text=True).returncode == 0
    if shell == "zsh" and shutil.which("zsh"):
        assert subprocess.run(["zsh", "-n"], input=script, text=True).returncode == 0


def test_bash_completion_offers_each_commands_own_choices(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["completion", "bash"]) == 0
    script = capsys.readouterr().out

    def complete(*words: str) -> list[str]:
        array = " ".join(f"'{w}'" for w in words)
        probe = (
            f"{script}\nCOMP_WORDS=({array}); COMP_CWORD={len(words) - 1}; _imgforge;"
            ' printf "%s\\n" "${COMPREPLY[@]}"'
        )
        done = subprocess.run(["bash", "-c", probe], capture_output=True, text=True)
        return done.stdout.split()

    assert complete("imgforge", "gr") == ["graph"]
    assert complete("imgforge", "graph", "--format", "") == ["dot", "mermaid", "png", "svg", "text"]
    assert complete("imgforge", "build", "--format", "") == ["sif", "simg"]
    assert "--keep-going" in complete("imgforge", "build", "--k")
    assert complete("imgforge", "cache", "") == ["du", "ls", "prune"]
    assert complete("imgforge", "cache", "prune", "--a") == ["--all"]
    assert "--no-cache" in complete("imgforge", "build", "--no-")
