"""The ``scale`` scenario: native SIF packs of NGC-sized bases vs docker export | tar2sqfs.

Per base size (0.2, 1, 6 GB; bench/scalebase.py builds them once per machine), in one run:
a cold full pack by ``imgforge build --singularity native`` of a recipe that adds one ENV
line, then the bare tools on the same image; wall time, the SIF phase imgforge recorded,
peak RSS of each process tree, peak temporary disk, output sizes; then the same recipe
plus a 100 MB RUN step with the cache the cold pack filled. At the largest size of the
run also zstd (imgforge and bare) and a five-recipe DAG with a cold cache. Rows that need
``--cache-dir`` read "n/a" when this imgforge lacks it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from harness import BenchError, Context, Row, imgforge_cli, run, say
from scalebase import ensure, size_bytes
from scaleprobe import Measured, allocated, measure
from scalereport import Pack, SizeRun, size_rows, summary_rows
from scenarios import NPROC, build_argv, expect_built
from synth import Spec, write_recipes

ADD_MB = 100
DAG_ADDS = ((100, None), (10, 0), (5, None), (50, 2), (20, 0))  # (MB, parent index)
ZSTD_LEVEL = 3


def cache_supported() -> bool:
    """Whether this imgforge has ``--cache-dir`` (being added in parallel)."""
    return "--cache-dir" in run([imgforge_cli(), "build", "--help"]).stdout


def adding(megabytes: int, tag: str) -> str:
    """A [run] command writing ``megabytes`` MB of seeded random (incompressible) data."""
    code = (
        f"import random; open('/opt/bench-{tag}.bin', 'wb')"
        f".write(random.Random({tag!r}).randbytes({megabytes} * 1000 * 1000))"
    )
    return f'python3 -c "{code}"'


def fresh_cache(ctx: Context, key: str) -> Path:
    """An empty cache directory outside the measured working directory (a cache is kept,
    not temporary)."""
    path = ctx.workdir / f"scale-cache-{key}"
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir()
    return path


def spec_of(name: str, base: str, adds: int = 0) -> Spec:
    run_steps = [adding(adds, name)] if adds else []
    return Spec(name=name, base=base, env={"BENCH_SCALE": name}, run=run_steps)


def imgforge_pack(
    work: Path, recipes: Sequence[Path], *, compression: str, cache: Path, out: str
) -> Pack:
    """``imgforge build --force --singularity native`` of ``recipes`` (each must be built),
    measured; the SIF phase and size summed over their manifests; SIFs removed after.
    ``cache`` is the squashed-data cache: ``--cache-dir`` where imgforge has it, and
    XDG_CACHE_HOME always, so that no imgforge reads the user's own cache."""
    extra = ["--cache-dir", str(cache)] if cache_supported() else []
    argv = build_argv(list(recipes), "--force", "--singularity", "native", out=out)
    xdg = {"XDG_CACHE_HOME": str(cache)}
    m = measure([*argv, "--compression", compression, *extra], cwd=work, env=xdg)
    expect_built(subprocess.CompletedProcess(argv, m.returncode, m.stdout, m.stderr), len(recipes))
    sif_seconds, pack_seconds, sif_bytes, hits, misses = 0.0, 0.0, 0, 0, 0
    for recipe in recipes:
        manifest = json.loads((work / out / recipe.stem / "manifest.json").read_text())
        sif_seconds += float(manifest["sif"]["seconds"])
        pack_seconds += float(manifest["sif"].get("pack_seconds") or manifest["sif"]["seconds"])
        sif_bytes += int(manifest["sif"]["size"])
        cache_record = manifest["sif"].get("cache") or {}
        hits, misses = hits + cache_record.get("hits", 0), misses + cache_record.get("misses", 0)
        (work / out / recipe.stem / manifest["sif"]["path"]).unlink(missing_ok=True)
    reuse = f"cache: {hits} of {hits + misses} blocks reused" if hits + misses else ""
    disk = max(0, m.peak_disk - sif_bytes)
    return Pack(m.seconds, sif_seconds, m.peak_rss, disk, sif_bytes, reuse, pack_seconds)


def bare_script(container: str, image: str, output: Path, compression: str) -> str:
    """The plain tools: docker create, docker export | tar2sqfs (same compressor and
    level as imgforge's: gzip 9 is both defaults, zstd needs its level said), docker rm."""
    level = f" -X level={ZSTD_LEVEL}" if compression == "zstd" else ""
    tar2sqfs = f"tar2sqfs -q -f -c {compression}{level} -j {NPROC} {output}"
    return (
        f"set -o pipefail; docker create --network none --name {container} {image} >/dev/null"
        f" && docker export {container} | {tar2sqfs}; code=$?;"
        f" docker rm -f {container} >/dev/null; exit $code"
    )


def bare_pack(ctx: Context, work: Path, image: str, compression: str) -> Pack:
    """The baseline, measured like imgforge; its output removed after."""
    container, output = f"{ctx.prefix}-scale-export", work / f"bare-{compression}.sqfs"
    ctx.engine.containers.add(container)
    script = bare_script(container, image, output, compression)
    m: Measured = measure([script], cwd=work, shell=True)
    ctx.engine.containers.discard(container)
    if m.returncode != 0:
        raise BenchError(f"bare pack of {image} exited {m.returncode}: {m.stderr.strip()[-300:]}")
    size = output.stat().st_size
    output.unlink()
    return Pack(m.seconds, None, m.peak_rss, max(0, m.peak_disk - size), size)


def recipe_files(work: Path, specs: list[Spec]) -> list[Path]:
    return [p.relative_to(work) for p in write_recipes(work / "recipes", specs)]


def one_size(ctx: Context, size: str, cached: bool) -> SizeRun:
    """Cold imgforge, bare, then the +100 MB recipe with the warm cache, at ``size``."""
    base = ensure(size)
    work = ctx.directory(f"scale-{size}")
    cache = fresh_cache(ctx, size)
    name = f"{ctx.prefix}-scale-{size.replace('.', '')}"
    recipe = recipe_files(work, [spec_of(name, base)])
    say(f"scale {size} GB: imgforge cold full pack (gzip) of {base}")
    cold = ctx.again(
        lambda: imgforge_pack(
            work, recipe, compression="gzip", cache=fresh_cache(ctx, size), out="cold"
        )
    )
    ctx.engine.track()
    say(f"scale {size} GB: docker export | tar2sqfs (gzip)")
    bare = ctx.again(lambda: bare_pack(ctx, work, f"{name}:latest", "gzip"))
    warm = None
    if cached:
        say(f"scale {size} GB: +{ADD_MB} MB with the warm cache")
        recipe = recipe_files(work, [spec_of(name, base, ADD_MB)])
        warm = imgforge_pack(work, recipe, compression="gzip", cache=cache, out="warm")
        ctx.engine.track()
    kept = allocated([cache])
    shutil.rmtree(cache, ignore_errors=True)
    return SizeRun(size, base, size_bytes(base), cold, bare, warm, kept)


def zstd_packs(ctx: Context, run_: SizeRun) -> tuple[Pack, Pack]:
    """imgforge and bare zstd full packs of the same recipe image."""
    work = ctx.directory(f"scale-{run_.size}")
    name = f"{ctx.prefix}-scale-{run_.size.replace('.', '')}"
    recipe = recipe_files(work, [spec_of(name, run_.base)])
    cache = fresh_cache(ctx, f"{run_.size}-zstd")
    say(f"scale {run_.size} GB: imgforge and bare zstd (level {ZSTD_LEVEL})")
    ours = imgforge_pack(work, recipe, compression="zstd", cache=cache, out="zstd")
    theirs = bare_pack(ctx, work, f"{name}:latest", "zstd")
    shutil.rmtree(cache, ignore_errors=True)
    return ours, theirs


def dag_pack(ctx: Context, run_: SizeRun) -> Pack:
    """Five recipes (siblings and children, each adding 5-100 MB) in one imgforge build
    with a cold cache."""
    work = ctx.directory(f"scale-{run_.size}-dag")
    names = [f"{ctx.prefix}-scale-dag{i}" for i in range(len(DAG_ADDS))]
    specs = [
        spec_of(n, run_.base if p is None else f"recipe:{names[p]}", mb)
        for n, (mb, p) in zip(names, DAG_ADDS, strict=True)
    ]
    say(f"scale {run_.size} GB: a {len(specs)}-recipe DAG with a cold cache")
    cache = fresh_cache(ctx, f"{run_.size}-dag")
    pack = imgforge_pack(
        work, recipe_files(work, specs), compression="gzip", cache=cache, out="dag"
    )
    ctx.engine.track()
    shutil.rmtree(cache, ignore_errors=True)
    return pack


def scale(ctx: Context) -> list[Row]:
    """The scenario: every size of ``ctx.sizes``, then zstd and the DAG at the largest."""
    cached = cache_supported()
    if not cached:
        say("scale: this imgforge has no --cache-dir: the warm-cache rows read n/a")
    runs = [one_size(ctx, size, cached) for size in ctx.sizes]
    rows = [row for run_ in runs for row in size_rows(run_, cached)]
    largest = max(runs, key=lambda r: r.image_bytes)
    zstd = zstd_packs(ctx, largest)
    dag = dag_pack(ctx, largest) if cached else None
    rows += summary_rows(largest, zstd, dag, cached)
    ctx.cache["scale_readme"] = (runs, zstd)
    return rows
