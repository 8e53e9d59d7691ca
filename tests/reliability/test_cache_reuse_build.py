"""`imgforge build` with the squashed-data cache, end to end on a real engine: a rebuild,
a sibling and a damaged cache all give the SIF a build without the cache gives, byte for
byte under SOURCE_DATE_EPOCH, and say what the cache did in build.log, the manifest, the
build line and --json."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from cachefiles import entries
from reliability_support import build_argv, run_main, write

from imgforge.cli import main

pytestmark = pytest.mark.integration


def recipe(project: Path, name: str, base: str, seed: int) -> Path:
    data = random.Random(seed).randbytes(400_000)
    write(project / name / "payload.bin", data)
    text = f'name = "{name}"\nbase = "{base}"\n[files]\n"payload.bin" = "/opt/{name}/payload.bin"\n'
    return write(project / name / f"{name}.toml", text)


def build(recipe_path: Path, out: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> dict:
    argv = build_argv(recipe_path, out, "--force", "--json", *extra, singularity="native")
    code, stdout, err = run_main(argv, capsys)
    assert code == 0, err
    report = json.loads(stdout)
    return report["sif"][f"{recipe_path.stem}:latest"]


@pytest.fixture
def epoch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")


def test_cold_warm_and_no_cache_give_the_same_bytes(
    tmp_path: Path, mini_image: str, epoch: None, capsys: pytest.CaptureFixture[str]
) -> None:
    cache = tmp_path / "cache"
    first = recipe(tmp_path, "rel-reuse-a", mini_image, 1)
    sif = tmp_path / "out" / "rel-reuse-a" / "rel-reuse-a.sif"
    cold = build(first, tmp_path / "out", capsys, "--cache-dir", str(cache))
    cold_bytes = sif.read_bytes()
    assert cold["cache"]["hits"] == 0 < cold["cache"]["misses"]
    warm = build(first, tmp_path / "out", capsys, "--cache-dir", str(cache))
    assert sif.read_bytes() == cold_bytes
    assert warm["cache"]["misses"] == 0 < warm["cache"]["hits"]
    log = (tmp_path / "out" / "rel-reuse-a" / "build.log").read_text()
    assert f"cache: {warm['cache']['hits']} of {warm['cache']['hits']} blocks reused" in log
    plain = build(first, tmp_path / "out", capsys, "--no-cache")
    assert sif.read_bytes() == cold_bytes and plain["cache"] is None
    assert main(["verify", "--deep", str(sif), "--image", "rel-reuse-a:latest"]) == 0

    sibling = recipe(tmp_path, "rel-reuse-b", mini_image, 2)
    other = build(sibling, tmp_path / "out", capsys, "--cache-dir", str(cache))
    assert other["cache"]["hits"] > 0 and other["cache"]["misses"] > 0


def test_a_damaged_cache_still_gives_the_exact_sif(
    tmp_path: Path, mini_image: str, epoch: None, capsys: pytest.CaptureFixture[str]
) -> None:
    cache = tmp_path / "cache"
    first = recipe(tmp_path, "rel-reuse-c", mini_image, 3)
    sif = tmp_path / "out" / "rel-reuse-c" / "rel-reuse-c.sif"
    build(first, tmp_path / "out", capsys, "--cache-dir", str(cache))
    good = sif.read_bytes()
    found = entries(cache)
    for number, entry in enumerate(found):
        data = bytearray(entry.read())
        data[number * 31 % len(data)] ^= 0xFF
        entry.write(bytes(data))
    damaged = build(first, tmp_path / "out", capsys, "--cache-dir", str(cache))
    assert sif.read_bytes() == good
    keys = {entry.key for entry in found}
    assert damaged["cache"]["corrupt"] == len(keys) and damaged["cache"]["hits"] == 0
