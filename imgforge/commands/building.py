"""The commands that build: build, shell, plan, render, bake."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from imgforge import atomic
from imgforge.build.fastpath import up_to_date
from imgforge.commands.common import Output, options_from
from imgforge.commands.progress import make_progress
from imgforge.errors import EngineError

if TYPE_CHECKING:
    from imgforge.build.session import Session
    from imgforge.engine.docker import DockerEngine
    from imgforge.options import Options


def cmd_build(args: argparse.Namespace, out: Output) -> int:
    options = options_from(args)
    if (names := up_to_date(args.recipes, options)) is not None:
        for name in names:
            out.say(f"{name}: up to date")
        out.say(f"built 0, up to date {len(names)}, failed 0, not attempted 0")
        out.json(
            {"built": [], "up_to_date": names, "failed": [], "not_attempted": [], "errors": []}
        )
        return 0

    from imgforge.build.orchestrator import Builder
    from imgforge.build.session import prepare
    from imgforge.engine.docker import DockerEngine
    from imgforge.sif.choice import chooser

    session, engine = prepare(args.recipes, options, DockerEngine.connect, out.say)
    assert engine is not None
    with make_progress(quiet=out.quiet, verbose=out.verbose) as progress:
        builder = Builder(
            engine,
            options,
            sif_backend=chooser(options.singularity),
            say=progress.say,
            stream=out.stream if out.verbose else None,
            step=progress.step,
        )
        summary = builder.run(session, keep_going=args.keep_going)
    out.say(
        f"built {len(summary.built)}, up to date {len(summary.skipped)}, "
        f"failed {len(summary.failed)}, not attempted {len(summary.not_attempted)}"
    )
    images = {job.name: job.recipe.image for job in session.jobs}
    out.json(
        {
            "built": [images[n] for n in summary.built],
            "sif": sif_records(session, summary.built),
            "sqsh": sif_records(session, summary.built, kind="sqsh"),
            "up_to_date": [images[n] for n in summary.skipped],
            "failed": [images[n] for n in summary.failed],
            "not_attempted": [images[n] for n in summary.not_attempted],
            "errors": [str(e) for e in summary.errors],
        }
    )
    for error in summary.errors:
        print(f"imgforge: error: {error}", file=sys.stderr)
    return max((e.exit_code for e in summary.errors), default=0)


def sif_records(session: Session, built: tuple[str, ...], kind: str = "sif") -> dict[str, Any]:
    """The SIF (or, ``kind="sqsh"``, enroot image) record of each recipe built: size,
    seconds, compression, cache use."""
    from imgforge.build import record

    found: dict[str, Any] = {}
    for job in session.jobs:
        manifest = record.read(job.artifacts.manifest) if job.name in built else None
        made = getattr(manifest, kind) if manifest is not None else None
        if made is not None:
            found[job.recipe.image] = made.to_json()
    return found


def cmd_shell(args: argparse.Namespace, out: Output) -> int:
    from dataclasses import replace

    from imgforge.build.orchestrator import Builder
    from imgforge.build.session import prepare
    from imgforge.engine.docker import DockerEngine
    from imgforge.sif.choice import chooser

    options = options_from(args)
    session, engine = prepare(args.recipes, options, DockerEngine.connect, out.say)
    assert engine is not None
    options = replace(options, interactive=session.targets[0], jobs=1)
    builder = Builder(engine, options, sif_backend=chooser(options.singularity), say=out.say)
    summary = builder.run(session)
    for error in summary.errors:
        print(f"imgforge: error: {error}", file=sys.stderr)
    return max((e.exit_code for e in summary.errors), default=0)


def cmd_plan(args: argparse.Namespace, out: Output) -> int:
    options = options_from(args)
    if (names := up_to_date(args.recipes, options)) is not None:
        rows = [{"image": name, "stale": False, "reason": "up to date"} for name in names]
        return print_plan(rows, out)

    from imgforge.build.orchestrator import Builder
    from imgforge.build.session import prepare
    from imgforge.engine.docker import DockerEngine
    from imgforge.sif.choice import chooser

    session, engine = prepare(args.recipes, options, DockerEngine.connect, out.say)
    assert engine is not None
    builder = Builder(engine, options, sif_backend=chooser(options.singularity), say=out.say)
    statuses = builder.plan(session)
    rows = [
        {"image": job.recipe.image, "stale": status.stale, "reason": status.reason}
        for job, status in zip(session.jobs, statuses, strict=True)
    ]
    return print_plan(rows, out)


def print_plan(rows: list[dict[str, Any]], out: Output) -> int:
    """Build order with each recipe's verdict (``--json``: a list of objects)."""
    if out.as_json:
        out.json(rows)
        return 0
    for index, row in enumerate(rows, start=1):
        verdict = f"rebuild: {row['reason']}" if row["stale"] else "up to date"
        print(f"{index}. {row['image']}  {verdict}")
    return 0


def rendered_session(args: argparse.Namespace, out: Output, options: Options) -> Session:
    """Load and render the targets and their ancestors without needing an engine (base
    image env comes from the engine when one answers), writing Dockerfile, .def and
    env file for each."""
    from imgforge.build.session import prepare
    from imgforge.build.sources import write_sources
    from imgforge.engine.docker import DockerEngine
    from imgforge.render.job import render_sources

    def connect() -> DockerEngine | None:
        try:
            return DockerEngine.connect(timeout=10)
        except EngineError:
            return None

    session, _ = prepare(args.recipes, options, connect, out.say, pull=False)
    for job in session.jobs:
        write_sources(job, render_sources(job))
    return session


def cmd_render(args: argparse.Namespace, out: Output) -> int:
    session = rendered_session(args, out, options_from(args))
    for job in session.jobs:
        out.say(f"{job.name}: {job.artifacts.dockerfile} {job.artifacts.deffile}")
    return 0


def cmd_bake(args: argparse.Namespace, out: Output) -> int:
    from imgforge.build.bake import bake_file

    options = options_from(args)
    session = rendered_session(args, out, options)
    output = args.output.absolute()
    data = bake_file(session.jobs, where=output.parent, network=options.network)
    atomic.write_text(output, json.dumps(data, indent=2) + "\n")
    out.say(f"wrote {args.output}; build the graph with: docker buildx bake -f {args.output}")
    return 0
