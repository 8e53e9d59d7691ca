"""What every command shares: options from arguments, and where output goes."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from imgforge.cache import check_dir
from imgforge.errors import UsageError
from imgforge.options import (
    Options,
    check_compression,
    check_network,
    parse_base_map,
    source_date_epoch,
)
from imgforge.reference import why_not_registry
from imgforge.sizes import DEFAULT_CACHE_LIMIT, parse_size


def options_from(args: argparse.Namespace) -> Options:
    if args.jobs < 1:
        raise UsageError("--jobs: must be at least 1")
    check_network(args.network)
    compression = check_compression(args.compression)
    source_date_epoch(os.environ)
    if args.push is not None and (why := why_not_registry(args.push)):
        raise UsageError(f"--push: {args.push!r} is not a registry (HOST[:PORT][/PATH]): {why}")
    return Options(
        out=args.out,
        jobs=args.jobs,
        strategy=args.strategy,
        singularity=args.singularity,
        image_format=getattr(args, "image_format", "sif"),
        compression=compression,
        force=args.force,
        network=args.network,
        base_map=parse_base_map(args.base_map),
        push=args.push,
        save=args.save,
        sqsh=args.sqsh,
        wait=args.wait,
        cache_dir=_cache_dir(args.cache_dir),
        cache_limit=_cache_limit(args.cache_limit),
        cache=not args.no_cache,
    )


def _cache_dir(path: Path | None) -> Path | None:
    """--cache-dir: a directory we may use, or make. The default root is never an error:
    an unusable cache only makes the build slower."""
    if path is not None:
        check_dir(path, create=True)
    return path


def _cache_limit(text: str | None) -> int:
    return DEFAULT_CACHE_LIMIT if text is None else parse_size(text, option="--cache-limit")


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
