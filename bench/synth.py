"""Synthetic recipes: write DAGs of small TOML recipes (and the files they copy) to disk."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from harness import STANDIN

BLOB_DIR = "blob"
BLOB_FILES = 60
BLOB_FILE_SIZE = 512 * 1024  # 60 x 512 KiB = 30 MiB


@dataclass(frozen=True)
class Spec:
    """One synthetic recipe."""

    name: str
    base: str = STANDIN
    env: dict[str, str] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    run: list[str] = field(default_factory=list)
    apt: list[str] = field(default_factory=list)
    pip: list[str] = field(default_factory=list)

    @property
    def image(self) -> str:
        return f"{self.name}:latest"


def _string(value: str) -> str:
    """A TOML basic string (JSON escapes are valid TOML for these values)."""
    return json.dumps(value)


def _strings(values: Sequence[str]) -> str:
    return "[" + ", ".join(_string(v) for v in values) + "]"


def toml_text(spec: Spec) -> str:
    """The recipe file for ``spec``."""
    lines = [f"name = {_string(spec.name)}", f"base = {_string(spec.base)}"]
    if spec.apt:
        lines += ["", "[apt]", f"packages = {_strings(spec.apt)}"]
    if spec.pip:
        lines += ["", "[pip]", f"packages = {_strings(spec.pip)}"]
    if spec.env:
        lines += ["", "[env]", *(f"{k} = {_string(v)}" for k, v in spec.env.items())]
    if spec.files:
        lines += ["", "[files]", *(f"{_string(k)} = {_string(v)}" for k, v in spec.files.items())]
    if spec.run:
        lines += ["", "[run]", f"commands = {_strings(spec.run)}"]
    return "\n".join(lines) + "\n"


def parent_index(index: int, roots: int) -> int | None:
    """The DAG shape: ``roots`` recipes on the stand-in, then a binary-ish tree of
    ``recipe:`` bases (recipe i builds on recipe (i-1)//2), so it both chains and branches."""
    return None if index < roots else (index - 1) // 2


def dag_specs(prefix: str, count: int, *, roots: int = 5, blob: bool = False) -> list[Spec]:
    """``count`` cheap recipes in build order (parents first): each has an [env] value,
    a small [files] entry and a cheap [run] command; with ``blob`` each also copies
    the shared 30 MiB directory of random files."""
    names = [f"{prefix}-{i:02d}" for i in range(count)]
    specs = []
    for index, name in enumerate(names):
        parent = parent_index(index, roots)
        files = {f"files/{name}.txt": f"/opt/bench/{name}.txt"}
        if blob:
            files[f"{BLOB_DIR}/"] = "/opt/blob/"
        specs.append(
            Spec(
                name=name,
                base=STANDIN if parent is None else f"recipe:{names[parent]}",
                env={"BENCH_RECIPE": name},
                files=files,
                run=[f"test -s /opt/bench/{name}.txt"],
            )
        )
    return specs


def write_blob(directory: Path) -> None:
    """The 30 MiB directory of random (incompressible) files."""
    blob = directory / BLOB_DIR
    blob.mkdir(parents=True, exist_ok=True)
    for index in range(BLOB_FILES):
        (blob / f"r{index:03d}.bin").write_bytes(os.urandom(BLOB_FILE_SIZE))


def write_recipes(directory: Path, specs: Sequence[Spec], *, blob: bool = False) -> list[Path]:
    """Write the recipe files (and the small files they copy); return their paths."""
    (directory / "files").mkdir(parents=True, exist_ok=True)
    if blob and not (directory / BLOB_DIR).is_dir():
        write_blob(directory)
    paths = []
    for spec in specs:
        for source in spec.files:
            if source.startswith("files/"):
                (directory / source).write_text(f"payload of {spec.name}\n")
        path = directory / f"{spec.name}.toml"
        path.write_text(toml_text(spec))
        paths.append(path)
    return paths
