"""Command line: parse arguments, wire the pieces, map errors to exit codes."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from imgforge import __version__, atomic
from imgforge.errors import EngineError, ImgforgeError, UsageError
from imgforge.fastpath import up_to_date
from imgforge.options import Options, parse_base_map
from imgforge.patterns import REGISTRY_RE
from imgforge.progress import make_progress


def _common() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--out", type=Path, default=Path("build"), help="artifact directory")
    common.add_argument("-j", "--jobs", type=int, default=1, help="parallel builds")
    common.add_argument("--strategy", choices=["dockerfile", "commit"], default=None)
    common.add_argument(
        "--singularity",
        choices=["auto", "apptainer", "singularity", "native", "none"],
        default="auto",
    )
    common.add_argument("--format", dest="image_format", choices=["sif", "simg"], default="sif")
    common.add_argument(
        "--compression",
        choices=["gzip", "xz", "zstd", "lz4", "lzo", "lzma"],
        default="gzip",
        help="squashfs compression of the native backend (gzip: mountable by every Apptainer)",
    )
    common.add_argument("--force", action="store_true", help="rebuild even if up to date")
    common.add_argument(
        "--network",
        default=os.environ.get("IMGFORGE_NETWORK") or None,
        help="network of build steps (e.g. host); default $IMGFORGE_NETWORK or the engine's",
    )
    common.add_argument(
        "--base-map",
        action="append",
        default=[],
        metavar="REF=LOCAL_REF",
        help="build recipes naming REF from LOCAL_REF instead (repeatable)",
    )
    common.add_argument(
        "--push",
        metavar="REGISTRY",
        default=None,
        help="push each built image to REGISTRY (e.g. localhost:5000); credentials from "
        "IMGFORGE_REGISTRY_USER/_PASSWORD, NGC_API_KEY or Docker's credential store",
    )
    common.add_argument(
        "--save", action="store_true", help="also write NAME.docker.tar (docker save)"
    )
    common.add_argument(
        "--wait",
        action="store_true",
        help="wait for another imgforge building the same recipe into the same --out",
    )
    common.add_argument(
        "--keep-going", action="store_true", help="build unrelated recipes on failure"
    )
    loud = common.add_mutually_exclusive_group()
    loud.add_argument("-q", "--quiet", action="store_true")
    loud.add_argument("-v", "--verbose", action="store_true")
    return common


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="imgforge",
        description="Build paired Docker images and Singularity images from TOML recipes.",
    )
    parser.add_argument("--version", action="version", version=f"imgforge {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = _common()
    for name, text in [
        ("build", "build recipes and everything they depend on"),
        ("render", "write Dockerfile + .def only (no engine needed)"),
        ("plan", "print build order and whether each recipe is up to date"),
    ]:
        command = sub.add_parser(name, parents=[common], help=text, description=text)
        command.add_argument("recipes", nargs="+", type=Path, metavar="RECIPE.toml")
        if name != "render":
            command.add_argument("--json", action="store_true", help="machine-readable output")
    bake = sub.add_parser(
        "bake",
        parents=[common],
        help="write a docker-bake.json expressing the DAG (for docker buildx bake)",
    )
    bake.add_argument("recipes", nargs="+", type=Path, metavar="RECIPE.toml")
    bake.add_argument(
        "-o", "--output", type=Path, default=Path("docker-bake.json"), help="file to write"
    )
    completion = sub.add_parser("completion", help="print a shell completion script")
    completion.add_argument("shell", choices=["bash", "zsh"])
    init = sub.add_parser("init", help="write a commented recipe NAME.toml")
    init.add_argument("name", metavar="NAME")
    init.add_argument(
        "--base", required=True, help="the base image, e.g. nvcr.io/nvidia/pytorch:24.01-py3"
    )
    init.add_argument("--dir", type=Path, default=Path("."), help="where to write it")
    imports = sub.add_parser(
        "import", help="turn a simple Dockerfile into a recipe (or list what it can't express)"
    )
    imports.add_argument("dockerfile", type=Path, metavar="DOCKERFILE")
    imports.add_argument("--name", default=None, help="recipe name (default: the directory's)")
    imports.add_argument("-o", "--output", type=Path, default=None, help="recipe file to write")
    doctor = sub.add_parser(
        "doctor", parents=[common], help="check engine, Singularity tools, disk, credentials"
    )
    doctor.add_argument("--json", action="store_true", help="machine-readable output")
    schema = sub.add_parser(
        "schema",
        help="print the JSON Schema of recipes (also shipped as schema/recipe.schema.json)",
    )
    schema.add_argument(
        "--format",
        dest="schema_format",
        choices=["json", "markdown"],
        default="json",
        help="markdown: the recipe reference (docs/RECIPES.md)",
    )
    shell = sub.add_parser(
        "shell",
        parents=[common],
        help="build a recipe's steps, then open a shell in the container; commit on exit",
        description="Build the recipe's parents, run its steps in a container, then give "
        "you a shell there. When you exit, the container is committed as NAME:TAG; the "
        "manifest marks the image not reproducible and lists the paths you changed.",
    )
    shell.add_argument("recipes", nargs=1, type=Path, metavar="RECIPE.toml")
    graph = sub.add_parser(
        "graph", parents=[_common()], help="show the recipe DAG", conflict_handler="resolve"
    )
    graph.add_argument("directory", nargs="?", type=Path, default=None, metavar="RECIPES_DIR")
    graph.add_argument(
        "--format",
        dest="graph_format",
        choices=["text", "dot", "mermaid", "svg", "png"],
        default="text",
    )
    graph.add_argument("-o", "--output", type=Path, default=None, help="write to a file")
    verify = sub.add_parser(
        "verify",
        parents=[common],
        help="compare the Docker image's Env with the SIF's environment",
        description="Compare a SIF with its Docker image: env (byte for byte), runscript, "
        "labels, WorkingDir, required paths; --deep also every file.",
    )
    verify.add_argument("target", metavar="NAME_OR_SIF")
    verify.add_argument("--image", default=None, help="Docker image (default: from the manifest)")
    verify.add_argument("--deep", action="store_true", help="also compare the file trees")
    verify.add_argument("--json", action="store_true", help="machine-readable output")
    return parser


def options_from(args: argparse.Namespace) -> Options:
    if args.jobs < 1:
        raise UsageError("--jobs: must be at least 1")
    if args.push is not None and not REGISTRY_RE.match(args.push):
        raise UsageError(f"--push: {args.push!r} is not a registry (HOST[:PORT][/PATH])")
    return Options(
        out=args.out,
        jobs=args.jobs,
        strategy=args.strategy,
        singularity=args.singularity,
        image_format=getattr(args, "image_format", "sif"),
        compression=args.compression,
        force=args.force,
        network=args.network,
        base_map=parse_base_map(args.base_map),
        push=args.push,
        save=args.save,
        wait=args.wait,
    )


class Output:
    """Where user messages go: stdout unless --quiet or --json; build output only with
    --verbose; with --json one JSON document on stdout."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.as_json = bool(getattr(args, "json", False))
        self.quiet = bool(getattr(args, "quiet", False)) or self.as_json
        self.verbose = bool(getattr(args, "verbose", False))

    def json(self, data: object) -> None:
        if self.as_json:
            print(json.dumps(data, indent=2), flush=True)

    def say(self, message: str) -> None:
        if not self.quiet:
            print(message, flush=True)

    def stream(self, line: str) -> None:
        print(line, flush=True)


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

    from imgforge.build import Builder
    from imgforge.engine.docker import DockerEngine
    from imgforge.session import prepare

    session, engine = prepare(args.recipes, options, DockerEngine.connect, out.say)
    assert engine is not None
    with make_progress(quiet=out.quiet, verbose=out.verbose) as progress:
        builder = Builder(
            engine,
            options,
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
            "up_to_date": [images[n] for n in summary.skipped],
            "failed": [images[n] for n in summary.failed],
            "not_attempted": [images[n] for n in summary.not_attempted],
            "errors": [str(e) for e in summary.errors],
        }
    )
    for error in summary.errors:
        print(f"imgforge: error: {error}", file=sys.stderr)
    return max((e.exit_code for e in summary.errors), default=0)


def cmd_shell(args: argparse.Namespace, out: Output) -> int:
    from dataclasses import replace

    from imgforge.build import Builder
    from imgforge.engine.docker import DockerEngine
    from imgforge.session import prepare

    options = options_from(args)
    session, engine = prepare(args.recipes, options, DockerEngine.connect, out.say)
    assert engine is not None
    options = replace(options, interactive=session.targets[0], jobs=1)
    summary = Builder(engine, options, say=out.say).run(session)
    for error in summary.errors:
        print(f"imgforge: error: {error}", file=sys.stderr)
    return max((e.exit_code for e in summary.errors), default=0)


def cmd_doctor(args: argparse.Namespace, out: Output) -> int:
    from dataclasses import asdict

    from imgforge.doctor import FAIL, run_all

    findings = run_all(args.out)
    if args.json:
        print(json.dumps([asdict(f) for f in findings], indent=2))
    else:
        for finding in findings:
            fix = f"  -> {finding.fix}" if finding.fix else ""
            print(f"{finding.level:<4}  {finding.check}: {finding.detail}{fix}")
    return 3 if any(f.level == FAIL for f in findings) else 0


def cmd_init(args: argparse.Namespace, out: Output) -> int:
    from imgforge.scaffold import init_recipe

    path = init_recipe(args.name, args.base, args.dir)
    out.say(f"wrote {path}; build it with: imgforge build {path}")
    return 0


def cmd_import(args: argparse.Namespace, out: Output) -> int:
    from imgforge.scaffold import import_to_file

    path = import_to_file(args.dockerfile, args.name, args.output)
    out.say(f"wrote {path}; build it with: imgforge build {path}")
    return 0


def cmd_bake(args: argparse.Namespace, out: Output) -> int:
    from imgforge.bake import bake_file
    from imgforge.build import render_job, write_sources
    from imgforge.engine.docker import DockerEngine
    from imgforge.session import prepare

    options = options_from(args)

    def connect() -> DockerEngine | None:
        try:
            return DockerEngine.connect(timeout=10)
        except EngineError:
            return None

    session, _ = prepare(args.recipes, options, connect, out.say, pull=False)
    for job in session.jobs:
        write_sources(job, render_job(job))
    output = args.output.absolute()
    data = bake_file(session.jobs, where=output.parent, network=options.network)
    atomic.write_text(output, json.dumps(data, indent=2) + "\n")
    out.say(f"wrote {args.output}; build the graph with: docker buildx bake -f {args.output}")
    return 0


def cmd_completion(args: argparse.Namespace, out: Output) -> int:
    from imgforge.render import make_environment

    parser = make_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    per_command, choices = [], {}
    for name, command in sorted(sub.choices.items()):
        options = sorted(o for a in command._actions for o in a.option_strings)
        per_command.append((name, options))
        for action in command._actions:
            if action.choices and action.option_strings:
                choices[action.option_strings[-1]] = sorted(map(str, action.choices))
    template = make_environment().get_template(f"completion.{args.shell}.j2")
    sys.stdout.write(
        template.render(
            commands=sorted(sub.choices), per_command=per_command, choices=sorted(choices.items())
        )
    )
    return 0


def cmd_schema(args: argparse.Namespace, out: Output) -> int:
    from imgforge.render import make_environment
    from imgforge.schema import recipe_json_schema, reference_sections

    if args.schema_format == "markdown":
        template = make_environment().get_template("reference.md.j2")
        sys.stdout.write(template.render(sections=reference_sections()))
    else:
        sys.stdout.write(json.dumps(recipe_json_schema(), indent=2, ensure_ascii=False) + "\n")
    return 0


def cmd_render(args: argparse.Namespace, out: Output) -> int:
    from imgforge.build import render_job, write_sources
    from imgforge.engine.docker import DockerEngine
    from imgforge.session import prepare

    options = options_from(args)

    def connect() -> DockerEngine | None:
        try:
            return DockerEngine.connect(timeout=10)
        except EngineError:
            return None

    session, _ = prepare(args.recipes, options, connect, out.say, pull=False)
    for job in session.jobs:
        write_sources(job, render_job(job))
        out.say(f"{job.name}: {job.artifacts.dockerfile} {job.artifacts.deffile}")
    return 0


def cmd_plan(args: argparse.Namespace, out: Output) -> int:
    options = options_from(args)
    if (names := up_to_date(args.recipes, options)) is not None:
        rows = [{"image": name, "stale": False, "reason": "up to date"} for name in names]
        return print_plan(rows, out)

    from imgforge.build import Builder
    from imgforge.engine.docker import DockerEngine
    from imgforge.session import prepare

    session, engine = prepare(args.recipes, options, DockerEngine.connect, out.say)
    assert engine is not None
    statuses = Builder(engine, options, say=out.say).plan(session)
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


def cmd_graph(args: argparse.Namespace, out: Output) -> int:
    from imgforge.graph import load_all
    from imgforge.render.graph import render_graph

    directory = args.directory
    if directory is None:
        directory = Path("recipes") if Path("recipes").is_dir() else Path(".")
    graph = load_all(directory)
    status = graph_status(graph, options_from(args))
    data = render_graph(graph, args.graph_format, status)
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
    from imgforge.build import Builder
    from imgforge.engine.docker import DockerEngine
    from imgforge.session import prepare

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
            for job_status in Builder(engine, options, say=lambda m: None).plan(session):
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
    from imgforge.engine.docker import DockerEngine
    from imgforge.verify import locate, verify_pair

    sif_path, image = locate(args.target, out=args.out, image=args.image)
    engine = DockerEngine.connect()
    problems = verify_pair(sif_path, image, engine=engine, deep=args.deep)
    out.json(
        {
            "sif": str(sif_path),
            "image": image,
            "deep": args.deep,
            "match": not problems,
            "differences": problems,
        }
    )
    for problem in [] if out.as_json else problems:
        print(problem)
    if problems:
        print(
            f"imgforge: error: {sif_path} differs from {image} ({len(problems)} differences)",
            file=sys.stderr,
        )
        return 1
    out.say(f"{sif_path} matches {image}" + (" (deep)" if args.deep else ""))
    return 0


COMMANDS = {
    "build": cmd_build,
    "render": cmd_render,
    "plan": cmd_plan,
    "graph": cmd_graph,
    "verify": cmd_verify,
    "shell": cmd_shell,
    "schema": cmd_schema,
    "doctor": cmd_doctor,
    "init": cmd_init,
    "import": cmd_import,
    "bake": cmd_bake,
    "completion": cmd_completion,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run imgforge; return the exit code (0 ok, 1 failed, 2 bad input, 3 environment)."""
    parser = make_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    out = Output(args)
    previous = _terminate_as_interrupt()
    try:
        return COMMANDS[args.command](args, out)
    except ImgforgeError as exc:
        if out.verbose:
            traceback.print_exc()
        print(f"imgforge: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:
        # Outside a build (e.g. --out not writable while rendering): still one line.
        if out.verbose:
            traceback.print_exc()
        print(f"imgforge: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(
            "imgforge: interrupted; build containers removed, artifacts unchanged", file=sys.stderr
        )
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _terminate_as_interrupt() -> Any:
    """SIGTERM unwinds like Ctrl-C, so cleanup runs (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, _interrupt)
