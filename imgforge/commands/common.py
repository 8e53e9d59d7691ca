"""What every command shares: options from arguments, and where output goes."""

from __future__ import annotations

import argparse
import json
import os

from imgforge.errors import UsageError
from imgforge.options import (
    Options,
    check_compression,
    check_network,
    parse_base_map,
    source_date_epoch,
)
from imgforge.reference import why_not_registry


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
