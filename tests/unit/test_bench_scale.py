"""The scale benchmark's pieces that need no engine: the synthetic tree, the pip script,
the bare-tool script, the probe and the README table (bench/ is not a package)."""

from __future__ import annotations

import importlib
import io
import tarfile
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
Loader = Callable[[str], ModuleType]


@pytest.fixture
def bench(monkeypatch: pytest.MonkeyPatch) -> Loader:
    monkeypatch.syspath_prepend(str(BENCH))

    def load(name: str) -> ModuleType:
        return importlib.import_module(name)

    return load


def small_tree(synthtree: ModuleType, path: Path) -> bytes:
    shape = synthtree.Shape(
        small_files=60, big_files=2, big_range=(1 << 16, 1 << 17), packages=3, hardlink_share=0.2
    )
    synthtree.write_tar(path, seed=7, shape=shape)
    return path.read_bytes()


def test_the_synthetic_tree_is_the_same_tar_every_time(bench: Loader, tmp_path: Path) -> None:
    synthtree = bench("synthtree")
    first = small_tree(synthtree, tmp_path / "a.tar")
    assert small_tree(synthtree, tmp_path / "b.tar") == first
    with tarfile.open(fileobj=io.BytesIO(first)) as tar:
        members = tar.getmembers()
    names = [m.name for m in members]
    assert names == sorted(names)
    assert {m.mtime for m in members} == {synthtree.MTIME}
    assert {(m.uid, m.gid) for m in members} == {(0, 0)}
    kinds = {m.type for m in members}
    assert {tarfile.DIRTYPE, tarfile.REGTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE} <= kinds
    seen: set[str] = set()
    for member in members:  # a hard link follows its target
        assert not member.islnk() or member.linkname in seen
        seen.add(member.name)


def test_pinned_packages_the_mirror_lacks_come_from_pypi_alone(
    bench: Loader, tmp_path: Path
) -> None:
    scalebase = bench("scalebase")
    mirror = tmp_path / "simple"
    for name in scalebase.PINS:
        if name != "cuda-bindings":
            (mirror / name).mkdir(parents=True)
    lines = scalebase.pip_script([mirror]).splitlines()
    assert lines[2].endswith(f"--no-deps --index-url {scalebase.PYPI} cuda-bindings==13.5.0")
    assert f"--index-url file://{mirror}" in lines[3] and "cuda-bindings" not in lines[3]
    assert "--no-compile" in lines[3] and "torch==2.14.1" in lines[3]
    without = scalebase.pip_script([]).splitlines()
    assert len(without) == 3 and f"--index-url {scalebase.PYPI}" in without[2]


def test_bare_zstd_says_the_level_imgforge_uses(bench: Loader) -> None:
    scale = bench("scale")
    zstd = scale.bare_script("c", "img:latest", Path("/o.sqfs"), "zstd")
    assert "tar2sqfs -q -f -c zstd -X level=3 -j" in zstd
    assert "-X" not in scale.bare_script("c", "img:latest", Path("/o.sqfs"), "gzip")


def test_the_probe_sees_the_process_tree(bench: Loader, tmp_path: Path) -> None:
    probe = bench("scaleprobe")
    found = probe.measure(
        ['head -c 3000000 /dev/zero > "$TMPDIR/x"; sleep 2 & sleep 2; wait'],
        cwd=tmp_path,
        shell=True,
    )
    assert found.returncode == 0 and found.peak_rss > 0 and found.seconds >= 2
    assert found.peak_disk >= 3_000_000 and list(tmp_path.iterdir()) == []


def test_the_readme_rows_mark_what_was_not_measured(bench: Loader) -> None:
    report = bench("scalereport")
    ours = report.Pack(wall=12.0, sif=10.0, rss=50e6, disk=0, size=80e6)
    bare = report.Pack(wall=10.0, sif=None, rss=20e6, disk=0, size=79e6)
    run = report.SizeRun("0.2", "base", 200_000_000, ours, bare, None)
    table = report.readme_table([run], None)
    assert "| 0.2 GB (0.20 GB) | gzip | 12.0 s (10.0 s) | 10.0 s | 1.20 |" in table
    assert table.rstrip().endswith("| — |")
