"""The benchmark scenarios: each builds what it needs and returns result rows."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from harness import (
    NETWORK,
    STANDIN,
    BenchError,
    Context,
    Row,
    Sample,
    clock,
    engine_get,
    imgforge_cli,
    run,
    say,
    timed,
)
from synth import Spec, dag_specs, write_recipes

SUMMARY_RE = re.compile(r"built (\d+), up to date (\d+), failed (\d+)")
NPROC = os.cpu_count() or 1
MB = 1e6


# --- helpers -------------------------------------------------------------------------


def expect_built(done: subprocess.CompletedProcess[str], built: int | None) -> None:
    """Fail unless imgforge's summary line says it built exactly ``built`` recipes
    (None: any number, as long as nothing failed)."""
    match = SUMMARY_RE.search(done.stdout)
    if match is None or int(match.group(3)) != 0 or built not in (None, int(match.group(1))):
        last = (done.stdout.strip().splitlines() or ["(no output)"])[-1]
        raise BenchError(f"expected 'built {built}', imgforge said: {last}")


def build_argv(paths: list[Path], *extra: str, out: str = "build") -> list[str]:
    """``imgforge build`` of ``paths`` as a user types it (from the scenario directory)."""
    return [imgforge_cli(), "build", *map(str, paths), "--out", out, *NETWORK, *extra]


def build_all(
    ctx: Context, work: Path, paths: list[Path], *extra: str, fresh: bool = False
) -> float:
    """Build every recipe (each must be built when ``fresh``, else some may be up to
    date, as when a crashed scenario runs again); return the seconds it took."""
    seconds, done = timed(build_argv(paths, "--singularity", "none", *extra), cwd=work)
    expect_built(done, len(paths) if fresh else None)
    ctx.engine.track()
    return seconds


def recipes_in(ctx: Context, name: str, specs: list[Spec], *, blob: bool = False) -> list[Path]:
    """Write ``specs`` under the scenario's directory; paths relative to that directory."""
    work = ctx.directory(name)
    return [p.relative_to(work) for p in write_recipes(work / "recipes", specs, blob=blob)]


def in_image(image: str, script: str) -> str:
    """Output of a shell script run in a throwaway container (no network needed)."""
    argv = ["docker", "run", "--rm", "--network", "none", "--entrypoint", "sh", image]
    return run([*argv, "-c", script]).stdout


def floors(specs: list[Spec]) -> dict[str, Callable[[], object]]:
    """What any no-op costs at least: interpreter start, imgforge's CLI imports, and the
    engine's side of the two ways to learn the image IDs (list all, or inspect each)."""
    inspects = [
        f"/images/{quote(ref, safe='/:@')}/json" for ref in [STANDIN] + [s.image for s in specs]
    ]
    return {
        "floor: python3 -c pass": lambda: run(["python3", "-c", "pass"]),
        "floor: imgforge --version": lambda: run([imgforge_cli(), "--version"]),
        "engine: GET /images/json (lists every image)": lambda: engine_get(["/images/json"]),
        f"engine: {len(inspects)} x GET /images/NAME/json": lambda: engine_get(inspects),
    }


# --- noop20 / noop20-bigctx -------------------------------------------------------------


def docker_build_argv(spec: Spec) -> list[str]:
    """The plain-tool baseline for one recipe: docker build of imgforge's Dockerfile."""
    dockerfile = f"build/{spec.name}/Dockerfile"
    return ["docker", "build", *NETWORK, "-q", "-t", spec.image, "-f", dockerfile, "recipes"]


def manifest_image(work: Path, name: str) -> str:
    data = json.loads((work / "build" / name / "manifest.json").read_text())
    return str(data["docker_image_id"])


def warm_up_baseline(work: Path, specs: list[Spec]) -> int:
    """Run every baseline docker build once; return how many reproduced imgforge's
    image ID exactly (a miss would retag NAME:TAG and void imgforge's no-op)."""
    same = 0
    for spec in specs:
        image_id = run(docker_build_argv(spec), cwd=work).stdout.strip()
        same += image_id == manifest_image(work, spec.name)
    return same


def noop(ctx: Context, name: str, *, blob: bool) -> list[Row]:
    """A no-op ``imgforge build`` of a 20-recipe DAG vs 20 cached ``docker build``s."""
    specs = dag_specs(f"{ctx.prefix}-{name}", 20, blob=blob)
    paths = recipes_in(ctx, name, specs, blob=blob)
    work = ctx.directory(name)
    say(f"{name}: first build of {len(specs)} recipes")
    first = build_all(ctx, work, paths)
    say(f"{name}: built in {first:.1f}s; warming up the docker build baseline")
    same = warm_up_baseline(work, specs)
    noop_argv = build_argv(paths, "--singularity", "none")
    baseline = [docker_build_argv(spec) for spec in specs]
    expect_built(run(noop_argv, cwd=work), 0)
    ours, theirs = Sample(), Sample()
    costs = floors(specs) if not blob else {}
    floor_samples = {measure: Sample() for measure in costs}
    for _ in range(ctx.fast_reps):
        seconds, done = ctx.again(lambda: timed(noop_argv, cwd=work))
        expect_built(done, 0)
        ours.add(seconds)
        theirs.add(ctx.again(lambda: clock(lambda: [run(a, cwd=work) for a in baseline])))
        for measure, sample in floor_samples.items():
            sample.add(ctx.again(lambda m=measure: clock(costs[m])))
    reproduced = f"docker build reproduced {same}/{len(specs)} image IDs"
    rows = [
        Row(
            name,
            f"no-op build, {len(specs)} recipes" + (", 30 MiB context each" if blob else ""),
            ours.median,
            theirs.median,
            target="< 0.3 s and >= 3x faster" if not blob else "",
            passed=(ours.median < 0.3 and ours.median * 3 <= theirs.median) if not blob else None,
            note=f"baseline: {len(specs)} x docker build -q, cached; {reproduced}; "
            f"imgforge {ours.spread()}",
        )
    ]
    for measure, sample in floor_samples.items():
        rows.append(Row(name, measure, sample.median, note="info; " + sample.spread()))
    return rows


# --- parallel4 ---------------------------------------------------------------------------


def calibrate_loop(seconds: float) -> int:
    """Loop length for ``seconds`` of CPU in the stand-in's python3 (measured there:
    the fastest of three probes, so a busy moment doesn't shorten the work)."""
    probe = 5_000_000
    code = (
        "import time\nbest = 1e9\nfor _ in range(3):\n"
        "    s = time.perf_counter()\n"
        f"    sum(i * i for i in range({probe}))\n"
        "    best = min(best, time.perf_counter() - s)\nprint(best)"
    )
    argv = ["docker", "run", "--rm", "--network", "none", "--entrypoint", "python3", STANDIN]
    per_probe = float(run([*argv, "-c", code]).stdout.split()[-1])
    return int(probe * seconds / per_probe)


def cpu_specs(prefix: str, loop: int, nonce: str) -> list[Spec]:
    """Four independent leaves on the stand-in, each burning CPU in a [run] command."""
    return [
        Spec(
            name=f"{prefix}-par4-{i}",
            env={"BENCH_NONCE": f"{nonce}-{i}"},
            run=[f"python3 -c 'sum(i * i for i in range({loop}))'"],
        )
        for i in range(4)
    ]


def build_seconds(work: Path, specs: list[Spec]) -> float:
    """Sum of the per-recipe build times imgforge recorded in the manifests."""
    total = 0.0
    for spec in specs:
        data = json.loads((work / "build" / spec.name / "manifest.json").read_text())
        total += float(data["timings"]["total_seconds"])
    return total


def together(argvs: list[list[str]]) -> float:
    """Wall-clock seconds of running the commands at the same time."""
    started = time.perf_counter()
    processes = [subprocess.Popen(argv) for argv in argvs]
    if any(p.wait() != 0 for p in processes):
        raise BenchError(f"{argvs[0]} failed")
    return time.perf_counter() - started


def host_parallelism(loop: int) -> tuple[float, float]:
    """(two CPU loops at once, the same two one after the other) on the host: how much
    parallel CPU this machine has to give right now (ideal ratio 0.5)."""
    argv = ["python3", "-S", "-c", f"sum(i * i for i in range({loop}))"]
    return together([argv, argv]), together([argv]) + together([argv])


def parallel4(ctx: Context) -> list[Row]:
    """Uncached builds of 4 CPU-bound leaves: ``-j 2`` vs ``-j 1``."""
    loop = calibrate_loop(2.5)
    work = ctx.directory("parallel4")
    say(f"parallel4: loop of {loop} (~2.5 s of CPU per build); {ctx.slow_reps} reps")
    overlap = Sample()

    def once(jobs: int) -> float:
        specs = cpu_specs(ctx.prefix, loop, uuid.uuid4().hex)
        paths = recipes_in(ctx, "parallel4", specs)
        seconds = build_all(ctx, work, paths, "-j", str(jobs), fresh=True)
        if jobs > 1:
            overlap.add(build_seconds(work, specs) / seconds)
        return seconds

    sequential, parallel = Sample(), Sample()
    host_together, host_apart = Sample(), Sample()
    for rep in range(ctx.slow_reps):
        order = [(1, sequential), (2, parallel)]
        for jobs, sample in order if rep % 2 == 0 else reversed(order):
            sample.add(ctx.again(lambda j=jobs: once(j)))
        both, apart = ctx.again(lambda: host_parallelism(loop // 3))
        host_together.add(both)
        host_apart.add(apart)
    ratio = parallel.median / sequential.median
    return [
        Row(
            "parallel4",
            "4 uncached CPU-bound builds, -j 2 (baseline: -j 1)",
            parallel.median,
            sequential.median,
            target="ratio <= 0.65",
            passed=ratio <= 0.65,
            note=f"{NPROC} CPUs; -j 2 builds overlap x{overlap.median:.2f} "
            f"(sum of build times / wall); -j 1 {sequential.spread()}; -j 2 {parallel.spread()}",
        ),
        Row(
            "parallel4",
            "machine check, not imgforge: 2 host CPU loops at once (baseline: one by one)",
            host_together.median,
            host_apart.median,
            note="info; 0.50 = two idle CPUs; near 1.0 = the machine is busy elsewhere",
        ),
    ]


# --- the realistic image shared by sifpack and size -------------------------------------

APT = ["file", "less"]
PIP = ["einops", "tqdm", "six"]


@dataclass(frozen=True)
class Realistic:
    """The built apt+pip image: where its recipe lives and its reference."""

    work: Path
    recipe: Path
    image: str
    spec: Spec


def realistic(ctx: Context) -> Realistic:
    """Build the apt+pip recipe once per run (needs the network)."""
    if "realistic" not in ctx.cache:
        spec = Spec(name=f"{ctx.prefix}-real", apt=APT, pip=PIP, env={"BENCH_REAL": "apt+pip"})
        paths = recipes_in(ctx, "real", [spec])
        work = ctx.directory("real")
        say(f"building the apt+pip image ({spec.image}) with imgforge")
        build_all(ctx, work, paths)
        ctx.cache["realistic"] = Realistic(work, paths[0], spec.image, spec)
    found = ctx.cache["realistic"]
    assert isinstance(found, Realistic)
    return found


# --- sifpack ----------------------------------------------------------------------------


def native_packer(real: Realistic, target: Path) -> Callable[[], None]:
    """A call of imgforge's native backend on the image, its SifRequest built as
    imgforge/sif/make.py does (the job's rendered SIF texts, the image's config)."""
    from imgforge.build.session import prepare
    from imgforge.engine.docker import DockerEngine
    from imgforge.engine.image import EngineImage
    from imgforge.log import Lines
    from imgforge.options import Options
    from imgforge.recipes.image import ImageConfig
    from imgforge.render.job import render_job
    from imgforge.sif.make import build_time, sif_request
    from imgforge.sif.pack import NativeBackend

    options = Options(out=real.work / "build", singularity="native", network="host")
    session, engine = prepare(
        [real.work / real.recipe], options, DockerEngine.connect, lambda _: None
    )
    assert engine is not None
    job = session.jobs[-1]
    inspect = engine.inspect(job.recipe.image)
    if inspect is None:
        raise BenchError(f"{job.recipe.image} is not in the engine")
    config = ImageConfig.from_inspect(inspect)
    texts = render_job(job, strategy="dockerfile", built_at=build_time()).sif
    request = sif_request(job, texts, image_id=str(inspect["Id"]), config=config, target=target)
    backend = NativeBackend.create()
    source = EngineImage(engine, request.image_id, request.config)
    log = Lines()

    def pack() -> None:
        log.clear()
        backend.make(request, source=source, log=log)

    return pack


def export_into(ctx: Context, image: str, consumer: str) -> None:
    """``docker create`` + ``docker export | CONSUMER`` + ``docker rm``."""
    name = f"{ctx.prefix}-sifpack-export"
    container = ctx.engine.create(image, name)
    try:
        run([f"set -o pipefail; docker export {container} | {consumer}"], shell=True)
    finally:
        ctx.engine.remove_container(name)


def baseline_a(ctx: Context, image: str, output: Path) -> float:
    """docker export | tar2sqfs, container create and removal included."""
    consumer = f"tar2sqfs -q -f -c gzip -j {NPROC} {output}"
    return clock(lambda: export_into(ctx, image, consumer))


def baseline_b(ctx: Context, image: str, output: Path, tree: Path) -> float:
    """docker export | tar -x, then mksquashfs of the tree (extraction included)."""
    shutil.rmtree(tree, ignore_errors=True)
    tree.mkdir()
    mksquashfs = ["mksquashfs", tree, output, "-noappend", "-comp", "gzip"]
    seconds = clock(
        lambda: (
            export_into(ctx, image, f"tar -x -C {tree}"),
            run([*mksquashfs, "-processors", str(NPROC), "-no-progress"]),
        )
    )
    shutil.rmtree(tree, ignore_errors=True)
    return seconds


def cli_native_minus_none(ctx: Context, real: Realistic) -> tuple[Sample, Sample]:
    """``imgforge build --force`` with ``--singularity native`` and with ``none``."""
    native, none = Sample(), Sample()
    for _ in range(ctx.slow_reps):
        for backend, sample in [("native", native), ("none", none)]:
            argv = build_argv([real.recipe], "--force", "--singularity", backend)
            seconds, done = ctx.again(lambda a=argv: timed(a, cwd=real.work))
            expect_built(done, 1)
            sample.add(seconds)
    return native, none


def sifpack(ctx: Context) -> list[Row]:
    """imgforge's native SIF packing vs docker export | tar2sqfs and vs mksquashfs."""
    real = realistic(ctx)
    work = ctx.directory("sifpack")
    outputs = {k: work / f"{k}.out" for k in ("native", "a", "b")}
    pack = native_packer(real, outputs["native"])
    native, a, b = Sample(), Sample(), Sample()
    say(f"sifpack: {ctx.slow_reps} reps of native, tar2sqfs and mksquashfs")
    for _ in range(ctx.slow_reps):
        native.add(ctx.again(lambda: clock(pack)))
        a.add(ctx.again(lambda: baseline_a(ctx, real.image, outputs["a"])))
        b.add(ctx.again(lambda: baseline_b(ctx, real.image, outputs["b"], work / "tree")))
    sizes = {k: p.stat().st_size / MB for k, p in outputs.items()}
    say("sifpack: imgforge build --force, native vs none")
    cli_native, cli_none = cli_native_minus_none(ctx, real)
    cli_extra = cli_native.median - cli_none.median
    image_mb = ctx.engine.image_size(real.image) / MB
    return [
        Row(
            "sifpack",
            f"native pack of {real.image} ({image_mb:.0f} MB), baseline A: export | tar2sqfs",
            native.median,
            a.median,
            target="ratio <= 1.15",
            passed=native.median <= 1.15 * a.median,
            note=f"library call NativeBackend.make; SIF {sizes['native']:.1f} MB, "
            f"A {sizes['a']:.1f} MB; native {native.spread()}",
        ),
        Row(
            "sifpack",
            "native pack, baseline B: export | tar -x && mksquashfs",
            native.median,
            b.median,
            target="clearly faster (ratio <= 0.9)",
            passed=native.median <= 0.9 * b.median,
            note=f"B {sizes['b']:.1f} MB; B {b.spread()}",
        ),
        Row(
            "sifpack",
            "CLI: build --force --singularity native minus ... none, baseline A",
            cli_extra,
            a.median,
            note=f"info; native {cli_native.median:.2f}s, none {cli_none.median:.2f}s "
            "(adds render, read-back verify, sha256, manifest)",
        ),
    ]


# --- size -------------------------------------------------------------------------------

NAIVE_SCRIPT = "apt-get update && apt-get install -y {apt} && pip install {pip}"


def naive_commit(ctx: Context, spec: Spec) -> str:
    """The by-hand workflow: docker run the install commands, then docker commit."""
    name = f"{ctx.prefix}-size-naive"
    image = f"{name}:latest"
    script = NAIVE_SCRIPT.format(apt=" ".join(spec.apt), pip=" ".join(spec.pip))
    run(["docker", "rm", "-f", name], check=False)
    ctx.engine.containers.add(name)
    try:
        run(["docker", "run", *NETWORK, "--name", name, STANDIN, "sh", "-c", script])
        run(["docker", "commit", name, image])
    finally:
        ctx.engine.remove_container(name)
    ctx.engine.track()
    return image


def dpkg_sizes(image: str) -> dict[str, int]:
    """Installed-Size (bytes) of every package in ``image``."""
    text = in_image(image, "dpkg-query -Wf '${Package}\\t${Installed-Size}\\n'")
    sizes = {}
    for line in text.splitlines():
        package, _, kib = line.partition("\t")
        sizes[package] = int(kib or 0) * 1024
    return sizes


SITE = "$(python3 -c 'import site; print(site.getsitepackages()[0])')"


def site_entries(image: str) -> set[str]:
    return set(in_image(image, f"ls -A {SITE}").split())


def site_sizes(image: str, entries: set[str]) -> dict[str, int]:
    """Apparent size in bytes of each of ``entries`` of the site-packages dir."""
    if not entries:
        return {}
    names = " ".join(sorted(entries))
    text = in_image(image, f"cd {SITE} && du -s --apparent-size -B1 {names}")
    return {name: int(size) for size, name in (line.split("\t") for line in text.splitlines())}


def own_size(image: str) -> tuple[int, dict[str, Any]]:
    """What the new apt and pip packages in ``image`` occupy by themselves."""
    base_dpkg, dpkg = dpkg_sizes(STANDIN), dpkg_sizes(image)
    new_debs = {p: s for p, s in dpkg.items() if p not in base_dpkg}
    new_site = site_sizes(image, site_entries(image) - site_entries(STANDIN))
    total = sum(new_debs.values()) + sum(new_site.values())
    return total, {"debs": new_debs, "site": new_site}


def size(ctx: Context) -> list[Row]:
    """Image growth over the base: imgforge vs docker run + commit vs the packages."""
    real = realistic(ctx)
    say("size: the naive run + commit workflow")
    naive = naive_commit(ctx, real.spec)
    base = ctx.engine.image_size(STANDIN)
    ours = (ctx.engine.image_size(real.image) - base) / MB
    theirs = (ctx.engine.image_size(naive) - base) / MB
    packages, detail = own_size(real.image)
    packages_mb = packages / MB
    debs = ", ".join(sorted(detail["debs"]))
    site = ", ".join(sorted(detail["site"]))
    ratio = ours / packages_mb
    return [
        Row(
            "size",
            "growth over base: imgforge (baseline: docker run + commit)",
            ours,
            theirs,
            unit="MB",
            note=f"apt {' '.join(APT)}; pip {' '.join(PIP)}",
        ),
        Row(
            "size",
            "imgforge growth (baseline: packages' own size)",
            ours,
            packages_mb,
            unit="MB",
            target="within 5%",
            passed=abs(ratio - 1) <= 0.05,
            note=f"{ours - packages_mb:+.2f} MB beyond the packages' own files; "
            f"new debs: {debs}; new site-packages entries: {site}",
        ),
        Row(
            "size",
            "naive growth (baseline: packages' own size)",
            theirs,
            packages_mb,
            unit="MB",
            note="info",
        ),
    ]


# --- scaling ----------------------------------------------------------------------------

SCALES = (10, 20, 50)


def scale_times(ctx: Context, count: int) -> tuple[Sample, Sample]:
    """Render and no-op plan times for a ``count``-recipe DAG (built once first)."""
    name = f"scale{count}"
    paths = recipes_in(ctx, name, dag_specs(f"{ctx.prefix}-{name}", count))
    work = ctx.directory(name)
    say(f"scaling: building {count} recipes once")
    build_all(ctx, work, paths)
    render_argv = [imgforge_cli(), "render", *map(str, paths), "--out", "rendered"]
    plan_argv = [imgforge_cli(), "plan", *map(str, paths), "--out", "build"]
    plan_argv += ["--singularity", "none"]
    render_sample, plan_sample = Sample(), Sample()
    for _ in range(ctx.fast_reps):
        render_sample.add(ctx.again(lambda: timed(render_argv, cwd=work))[0])
        seconds, done = ctx.again(lambda: timed(plan_argv, cwd=work))
        if done.stdout.count("up to date") != count:
            raise BenchError(f"plan of {count} recipes is not all up to date:\n{done.stdout}")
        plan_sample.add(seconds)
    return render_sample, plan_sample


def scaling(ctx: Context) -> list[Row]:
    """How render and no-op plan costs grow with the number of recipes."""
    results = {count: scale_times(ctx, count) for count in SCALES}
    first = SCALES[0]
    rows = []
    for index, command in enumerate(("render", "plan (no-op)")):
        reference = results[first][index].median
        previous = first
        for count in SCALES:
            sample = results[count][index]
            note = sample.spread()
            if count != first:
                step = sample.median - results[previous][index].median
                note = f"{step / (count - previous) * 1000:+.1f} ms per recipe from {previous}"
            rows.append(
                Row(
                    "scaling",
                    f"{command}, {count} recipes (baseline: {first} recipes)",
                    sample.median,
                    reference if count != first else None,
                    note=note,
                )
            )
            previous = count
    return rows


SCENARIOS: dict[str, Callable[[Context], list[Row]]] = {
    "noop20": lambda ctx: noop(ctx, "noop20", blob=False),
    "noop20-bigctx": lambda ctx: noop(ctx, "noop20-bigctx", blob=True),
    "parallel4": parallel4,
    "sifpack": sifpack,
    "size": size,
    "scaling": scaling,
}
