"""Options shared by the commands (SPEC.md, "Command line"), light enough for every path."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from imgforge import __version__
from imgforge.errors import UsageError
from imgforge.reference import why_not_reference


@dataclass(frozen=True)
class Options:
    """Options shared by the commands (see SPEC.md, "Command line")."""

    out: Path = Path("build")
    jobs: int = 1
    strategy: str | None = None
    singularity: str = "auto"
    image_format: str = "sif"
    compression: str = "gzip"
    force: bool = False
    network: str | None = None
    base_map: Mapping[str, str] = field(default_factory=dict)
    push: str | None = None
    save: bool = False
    wait: bool = False
    # `imgforge shell`: the recipe whose steps end in an interactive shell.
    interactive: str | None = None


def parse_base_map(items: Iterable[str]) -> dict[str, str]:
    """``REF=LOCAL_REF`` pairs from the command line."""
    mapping: dict[str, str] = {}
    for item in items:
        ref, sep, local = item.partition("=")
        said = f"--base-map: {item!r} is not REF=LOCAL_REF with two image references"
        if not sep:
            raise UsageError(said)
        for side in (ref, local):
            if why := why_not_reference(side):
                raise UsageError(f"{said}: {side!r}: {why}")
        mapping[ref] = local
    return mapping


def options_key(options: Options) -> str:
    """The options that change what a build produces, as one comparable string."""
    return json.dumps(
        [
            __version__,
            str(options.out.absolute()),
            options.strategy,
            options.singularity != "none",
            options.image_format,
            options.compression,
            sorted(options.base_map.items()),
            options.push,
            options.save,
        ]
    )
