"""Benchmark imgforge against the plain tools, measured in the same run.

    python bench/run.py [--quick] [--scenario NAME ...] [--sizes 0.2,1,6] [--keep]

Builds synthetic recipes in a temporary directory on the NGC stand-in base, times the
real ``imgforge`` CLI (interpreter start included) and the plain-tool baseline, and
prints a markdown table of medians (also written to bench/results.md; a run of some
scenarios to bench/results-NAME.md). Missed targets print FAIL but never change the exit
code; only a crash does (exit 1).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import secrets
import shutil
import sys
import tempfile
import traceback
from pathlib import Path

from harness import PREFIX, REPO, STANDIN, BenchError, Context, Engine, Row, run, say, table
from scale import scale
from scalereport import readme_table
from scenarios import SCENARIOS as BASIC
from sqshbench import sqsh

# `scale` last: at 6 GB it runs for most of an hour (and builds its bases the first time).
SCENARIOS = {**BASIC, "sqsh": sqsh, "scale": scale}
SIZES = ("0.2", "1", "6")

RESULTS = REPO / "bench" / "results.md"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (3 fast, 1 slow)")
    parser.add_argument(
        "--scenario",
        action="append",
        choices=list(SCENARIOS),
        help="run only this scenario (repeatable; default: all)",
    )
    parser.add_argument(
        "--sizes",
        default=",".join(SIZES),
        help="base sizes in GB (scale and sqsh scenarios), comma-separated (default: %(default)s)",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the temporary directory and the images"
    )
    args = parser.parse_args(argv)
    args.sizes = tuple(s.strip() for s in args.sizes.split(",") if s.strip())
    if not args.sizes or set(args.sizes) - set(SIZES):
        parser.error(f"--sizes: each one of {', '.join(SIZES)}")
    return args


def preflight() -> None:
    """Fail early, with a hint, when the engine, the stand-in or the tools are missing."""
    for tool in ("docker", "imgforge", "tar2sqfs", "mksquashfs"):
        if shutil.which(tool) is None:
            raise BenchError(f"`{tool}` is not on PATH (run `make setup`)")
    run(["docker", "version", "--format", "{{.Server.Version}}"])
    if run(["docker", "image", "inspect", STANDIN], check=False).returncode != 0:
        raise BenchError(f"{STANDIN} is missing: run `python scripts/ngc_standin.py`")


def machine() -> str:
    """One line describing where the numbers come from."""
    server = run(["docker", "version", "--format", "{{.Server.Version}}"]).stdout.strip()
    builder = "BuildKit" if os.environ.get("DOCKER_BUILDKIT") == "1" else "legacy builder"
    version = run(["imgforge", "--version"]).stdout.strip()
    return (
        f"{version} ({shutil.which('imgforge')}), Python {platform.python_version()}, "
        f"Docker {server} ({builder}), {os.cpu_count()} CPUs, {platform.machine()}"
    )


def attempt(name: str, ctx: Context) -> list[Row]:
    """One scenario. A crash is retried once, when the engine answers (others may
    restart it mid-run); a second crash becomes an ERROR row."""
    for retry in (True, False):
        try:
            return SCENARIOS[name](ctx)
        except Exception as exc:  # noqa: BLE001 - report and go on with the next scenario
            detail = str(exc) if isinstance(exc, BenchError) else traceback.format_exc()
            say(f"{name}: CRASHED: {detail}")
            if retry and ctx.engine.wait():
                say(f"{name}: running it once more")
                continue
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            return [Row(name, "ERROR", None, note=first[:200])]
    raise AssertionError("unreachable")


def run_scenarios(names: list[str], ctx: Context) -> tuple[list[Row], bool]:
    """Run each scenario. Returns the rows and whether any scenario crashed."""
    rows: list[Row] = []
    for name in names:
        say(f"=== {name}")
        rows += attempt(name, ctx)
    return rows, any(row.measure == "ERROR" for row in rows)


def results_file(names: list[str]) -> Path:
    """bench/results.md for a run of every scenario; a run of some writes its own file
    (bench/results-scale.md), so that it never replaces the full table."""
    if set(names) == set(SCENARIOS):
        return RESULTS
    return RESULTS.with_name(f"results-{'-'.join(names)}.md")


def report(rows: list[Row], header: str, ctx: Context, path: Path) -> str:
    """The header and the table (and the scale scenario's README table), printed and
    written to ``path``."""
    text = f"{header}\n\n{table(rows)}"
    found = ctx.cache.get("scale_readme")
    if isinstance(found, tuple):
        text += "\n## scale: the README's speed rows\n\n" + readme_table(*found)
    print("\n" + text, end="")
    path.write_text(text)
    say(f"table written to {path.relative_to(REPO)}")
    return text


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; 0 unless something crashed."""
    args = parse_args(argv)
    names = args.scenario or list(SCENARIOS)
    try:
        preflight()
    except BenchError as exc:
        say(str(exc))
        return 1
    fast, slow = (3, 1) if args.quick else (5, 3)
    workdir = Path(tempfile.mkdtemp(prefix="imgforge-bench-"))
    engine = Engine(f"{PREFIX}-{secrets.token_hex(2)}")  # concurrent runs don't collide
    ctx = Context(workdir=workdir, fast_reps=fast, slow_reps=slow, engine=engine, sizes=args.sizes)
    started = dt.datetime.now()
    load_before = os.getloadavg()[0]
    where = machine()
    try:
        rows, crashed = run_scenarios(names, ctx)
    except KeyboardInterrupt:
        say("interrupted")
        return 130
    finally:
        if args.keep:
            say(f"kept {workdir} and the {ctx.prefix}-* images")
        else:
            say(f"removing the temporary directory and the {ctx.prefix}-* images")
            ctx.engine.cleanup()
            shutil.rmtree(workdir, ignore_errors=True)
    minutes = (dt.datetime.now() - started).total_seconds() / 60
    header = (
        f"# imgforge benchmark ({started:%Y-%m-%d %H:%M}, {minutes:.1f} min, "
        f"{'quick: ' if args.quick else ''}medians of {fast} fast / {slow} slow reps)\n\n"
        f"{where}; load average {load_before:.1f} at start, "
        f"{os.getloadavg()[0]:.1f} at end\n\n"
        "ratio = imgforge / baseline (below 1: imgforge is faster or smaller). "
        "Times are wall-clock around the real commands, interpreter start included."
    )
    report(rows, header, ctx, results_file(names))
    return 1 if crashed else 0


if __name__ == "__main__":
    sys.exit(main())
