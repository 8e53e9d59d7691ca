"""The commands that look: graph, verify, doctor."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from imgforge import atomic
from imgforge.commands.common import Output, options_from
from imgforge.errors import ImgforgeError
from imgforge.options import Options


def cmd_graph(args: argparse.Namespace, out: Output) -> int:
    from imgforge.commands.graphviz import DRAWN, draw
    from imgforge.recipes.graph import load_all
    from imgforge.render.graph import render_graph

    directory = args.directory
    if directory is None:
        directory = Path("recipes") if Path("recipes").is_dir() else Path(".")
    graph = load_all(directory)
    status = graph_status(graph, options_from(args))
    fmt = args.graph_format
    if fmt in DRAWN:
        data = draw(render_graph(graph, "dot", status), fmt)
    else:
        data = render_graph(graph, fmt, status).encode("utf-8")
    if args.output is not None:
        atomic.write_bytes(args.output, data)
        out.say(f"wrote {args.output}")
    else:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    return 0


def graph_status(graph: Any, options: Options) -> dict[str, str]:
    """Each recipe's status for the picture: up to date / stale (engine needed) / failed
    (its latest build attempt left a log but no newer manifest)."""
    from imgforge.build.orchestrator import Builder
    from imgforge.build.session import prepare
    from imgforge.engine.docker import DockerEngine
    from imgforge.sif.choice import chooser

    recipes = [r.path for r in graph.order()]
    status: dict[str, str] = {}
    if recipes:
        try:
            session, engine = prepare(
                recipes,
                options,
                lambda: DockerEngine.connect(timeout=10),
                lambda message: None,
                pull=False,
            )
            assert engine is not None
            builder = Builder(
                engine, options, sif_backend=chooser(options.singularity), say=lambda m: None
            )
            for job_status in builder.plan(session):
                status[job_status.name] = "stale" if job_status.stale else "up to date"
        except ImgforgeError:
            pass
    for recipe in graph.order():
        directory = options.out / recipe.name
        log, record = directory / "build.log", directory / "manifest.json"
        if log.exists() and (not record.exists() or log.stat().st_mtime > record.stat().st_mtime):
            status[recipe.name] = "failed"
    return status


def cmd_verify(args: argparse.Namespace, out: Output) -> int:
    from imgforge.commands.verify import locate, verify_pair
    from imgforge.engine.docker import DockerEngine
    from imgforge.sif import runtime as runtimes

    sif_path, image = locate(args.target, out=args.out, image=args.image)
    engine = DockerEngine.connect()
    runtime = runtimes.find()
    problems, ran = verify_pair(sif_path, image, engine=engine, deep=args.deep, runtime=runtime)
    out.json(
        {
            "sif": str(sif_path),
            "image": image,
            "deep": args.deep,
            "runtime": runtime.label if runtime else None,
            "checked": ran,
            "match": not problems,
            "differences": problems,
        }
    )
    for problem in [] if out.as_json else problems:
        print(problem)
    if problems:
        print(
            f"imgforge: error: {sif_path} differs from {image} ({len(problems)} differences; "
            f"{ran})",
            file=sys.stderr,
        )
        return 1
    out.say(f"{sif_path} matches {image}" + (" (deep)" if args.deep else "") + f": {ran}")
    return 0


def cmd_doctor(args: argparse.Namespace, out: Output) -> int:
    from dataclasses import asdict

    from imgforge.commands.doctor import FAIL, run_all

    findings = run_all(args.out)
    if args.json:
        print(json.dumps([asdict(f) for f in findings], indent=2))
    else:
        for finding in findings:
            fix = f"  -> {finding.fix}" if finding.fix else ""
            print(f"{finding.level:<4}  {finding.check}: {finding.detail}{fix}")
    return 3 if any(f.level == FAIL for f in findings) else 0
