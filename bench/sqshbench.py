"""The ``sqsh`` scenario: enroot images by ``imgforge build --sqsh`` against NVIDIA's own
``enroot import dockerd://`` of the same image, in one run.

Per base size (0.2, 1, 6 GB, bench/scalebase.py's bases): imgforge's .sqsh alone with no
cache (gzip, enroot's own lzo), then the real enroot's import with its default squash
options (``-comp lzo -noD``: data stored uncompressed) and with ``-comp gzip``; wall time,
peak RSS of the process tree, peak temporary disk, size. Then what a .sqsh adds to a build
that makes the SIF too: the blocks the SIF packed come from the cache. Without enroot
installed (on PATH or in /opt/enroot/bin) its rows say so.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

from harness import BenchError, Context, Row, run, say
from scale import fresh_cache, spec_of
from scalebase import ensure
from scaleprobe import Measured, measure
from scenarios import build_argv, expect_built
from synth import write_recipes

MB = 1e6
ENROOT_HOME = Path("/opt/enroot/bin")


def enroot_binary() -> str | None:
    found = shutil.which("enroot")
    if found:
        return found
    return str(ENROOT_HOME / "enroot") if (ENROOT_HOME / "enroot").is_file() else None


def built(work: Path, recipe: Path, *extra: str, cache: Path | None) -> tuple[Measured, dict]:
    """``imgforge build --force --sqsh`` of ``recipe``, measured; its manifest."""
    caching = ["--cache-dir", str(cache)] if cache else ["--no-cache"]
    argv = build_argv([recipe], "--force", "--sqsh", *caching, *extra)
    m = measure(argv, cwd=work, env={"XDG_CACHE_HOME": str(cache or work / "xdg")})
    expect_built(subprocess.CompletedProcess(argv, m.returncode, m.stdout, m.stderr), 1)
    manifest = json.loads((work / "build" / recipe.stem / "manifest.json").read_text())
    made = 0
    for kind in ("sif", "sqsh"):
        if manifest.get(kind):
            made += int(manifest[kind]["size"])
            (work / "build" / recipe.stem / manifest[kind]["path"]).unlink(missing_ok=True)
    return replace(m, peak_disk=max(0, m.peak_disk - made)), manifest


def enroot_import(work: Path, image: str, options: str | None) -> tuple[Measured, int]:
    """``enroot import dockerd://IMAGE`` (with ``ENROOT_SQUASH_OPTIONS`` when given)."""
    enroot = enroot_binary()
    assert enroot is not None
    output = work / "enroot.sqsh"
    output.unlink(missing_ok=True)
    env = {"PATH": f"{Path(enroot).parent}:{os.environ['PATH']}", "NVIDIA_VISIBLE_DEVICES": "void"}
    for name in ("RUNTIME", "CACHE", "DATA", "TEMP"):
        path = work / f"enroot-{name.lower()}"
        path.mkdir(mode=0o700, exist_ok=True)
        env[f"ENROOT_{name}_PATH"] = str(path)
    if options:
        env["ENROOT_SQUASH_OPTIONS"] = options
    m = measure(
        [enroot, "import", "--output", str(output), f"dockerd://{image}"], cwd=work, env=env
    )
    if m.returncode != 0:
        raise BenchError(f"enroot import of {image} exited {m.returncode}: {m.stderr[-300:]}")
    size = output.stat().st_size
    output.unlink()
    return m, size


def one_size(ctx: Context, size: str) -> list[Row]:
    base = ensure(size)
    work = ctx.directory(f"sqsh-{size}")
    name = f"{ctx.prefix}-sqsh-{size.replace('.', '')}"
    recipe = write_recipes(work, [spec_of(name, base)])[0]
    run(build_argv([recipe], "--singularity", "none"), cwd=work)  # the image, once
    label = f"{size} GB"
    say(f"sqsh {label}: imgforge gzip and lzo, no cache")
    gzip_m, gzip_manifest = built(work, recipe, "--singularity", "none", cache=None)
    lzo_m, lzo_manifest = built(
        work, recipe, "--singularity", "none", "--compression", "lzo", cache=None
    )
    say(f"sqsh {label}: a build with the SIF and the .sqsh, fresh cache")
    both_m, both = built(work, recipe, "--singularity", "native", cache=fresh_cache(ctx, "sqsh"))
    ours, ours_lzo = gzip_manifest["sqsh"], lzo_manifest["sqsh"]
    rows = [
        Row("sqsh", f"{label}: .sqsh after the SIF in one build (cache), vs the SIF",
            both["sqsh"]["seconds"], both["sif"]["seconds"],
            note=f"info; {both['sqsh'].get('cache') or {}}; build {both_m.seconds:.1f}s"),
    ]  # fmt: skip
    if enroot_binary() is None:
        return [
            Row("sqsh", f"{label}: imgforge .sqsh gzip, no cache", ours["seconds"],
                note=f"enroot not installed; {ours['size'] / MB:.0f} MB"),
            *rows,
        ]  # fmt: skip
    say(f"sqsh {label}: enroot import, default and gzip")
    default_m, default_size = enroot_import(work, image_of(name), None)
    gzip_e, gzip_size = enroot_import(work, image_of(name), "-comp gzip")
    return [
        Row("sqsh", f"{label}: imgforge --sqsh (gzip) vs enroot import (-comp gzip)",
            ours["seconds"], gzip_e.seconds,
            note=f"sizes {ours['size'] / MB:.0f} vs {gzip_size / MB:.0f} MB; RSS "
            f"{gzip_m.peak_rss / MB:.0f} vs {gzip_e.peak_rss / MB:.0f} MB; temp disk "
            f"{gzip_m.peak_disk / MB:.0f} vs {gzip_e.peak_disk / MB:.0f} MB"),
        Row("sqsh", f"{label}: imgforge --sqsh (lzo) vs enroot import (default lzo -noD)",
            ours_lzo["seconds"], default_m.seconds,
            note=f"sizes {ours_lzo['size'] / MB:.0f} vs {default_size / MB:.0f} MB (-noD: "
            f"data uncompressed); imgforge gzip {ours['seconds']:.1f}s"),
        *rows,
    ]  # fmt: skip


def image_of(name: str) -> str:
    return f"{name}:latest"


def sqsh(ctx: Context) -> list[Row]:
    rows: list[Row] = []
    for size in ctx.sizes:
        rows += one_size(ctx, size)
    return rows
