"""Options shared by the commands (README.md, "Commands"), light enough for every path."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from imgforge import __version__
from imgforge.compressors import COMPRESSORS, DEFAULT_COMPRESSOR, Compression
from imgforge.errors import UsageError
from imgforge.reference import why_not_reference
from imgforge.sizes import DEFAULT_CACHE_LIMIT


@dataclass(frozen=True)
class Options:
    """Options shared by the commands (see README.md, "Commands")."""

    out: Path = Path("build")
    jobs: int = 1
    strategy: str | None = None
    singularity: str = "auto"
    image_format: str = "sif"
    compression: str = DEFAULT_COMPRESSOR
    force: bool = False
    network: str | None = None
    base_map: Mapping[str, str] = field(default_factory=dict)
    push: str | None = None
    save: bool = False
    # --sqsh: an enroot image beside the SIF, for every recipe built.
    sqsh: bool = False
    wait: bool = False
    # `imgforge shell`: the recipe whose steps end in an interactive shell.
    interactive: str | None = None
    # The squashed-data cache (imgforge.cache): None is its default root; cache_limit is
    # what closing it evicts down to; cache=False (--no-cache) neither reads nor writes it.
    # They never change what a build produces, so options_key leaves them out.
    cache_dir: Path | None = None
    cache_limit: int = DEFAULT_CACHE_LIMIT
    cache: bool = True


@dataclass(frozen=True)
class Outputs:
    """The files a recipe's build writes besides the Docker image."""

    sif: bool
    sqsh: bool


def wanted(outputs: tuple[str, ...] | None, options: Options) -> Outputs:
    """What a recipe whose ``[build] outputs`` are ``outputs`` (None: not said) gets with
    ``options``: a SIF unless ``--singularity none`` or its outputs leave "sif" out; an
    enroot image with ``--sqsh`` or "sqsh" among its outputs."""
    sif = options.singularity != "none" and lists_sif(outputs)
    return Outputs(sif=sif, sqsh=options.sqsh or outputs is not None and "sqsh" in outputs)


def lists_sif(outputs: tuple[str, ...] | None) -> bool:
    """Whether ``[build] outputs`` (None: not said) leave the SIF in."""
    return outputs is None or "sif" in outputs


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


# Characters --out may hold besides letters and digits: the .def names files under it,
# and Apptainer's %files expands those names in a shell (globs, $, quotes, whitespace).
OUT_PUNCTUATION = "._@+,=/-"
NAME_MAX = 255  # bytes in one path component (Linux)
NETWORK_RE = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*")
SOURCE_DATE_EPOCH_MAX = 253402300799  # 9999-12-31T23:59:59Z
# The --compression values, in the order --help lists them (imgforge.compressors has the rest).
COMPRESSIONS = tuple(COMPRESSORS)


def check_out(out: Path, copied: Iterable[Path], directories: Mapping[str, Path]) -> None:
    """--out: a directory (or nothing yet) named without shell-special characters, where
    no recipe's artifact directory ``--out/NAME`` is its recipe directory (whose files
    the artifacts would replace), a source a recipe copies, or inside one."""
    text = str(out.absolute())
    if bad := "".join(sorted({c for c in text if not (c.isalnum() or c in OUT_PUNCTUATION)})):
        raise UsageError(
            f"--out: {text!r} holds {bad!r}; use letters, digits and {OUT_PUNCTUATION} only"
        )
    if any(len(os.fsencode(part)) > NAME_MAX for part in out.absolute().parts):
        raise UsageError(f"--out: {text!r} has a component longer than {NAME_MAX} bytes")
    if out.is_symlink() and not out.exists() or out.exists() and not out.is_dir():
        raise UsageError(f"--out: {text!r} exists and is not a directory")
    sources = [source.resolve() for source in copied]
    for name, directory in directories.items():
        artifacts = (out / name).resolve()
        if artifacts == directory.resolve():
            raise UsageError(
                f"--out: {text!r} would write {name}'s artifacts into its recipe directory"
            )
        if inside := next((s for s in sources if artifacts.is_relative_to(s)), None):
            raise UsageError(
                f"--out: {text!r} would write {name}'s artifacts inside {str(inside)!r}, "
                "which a recipe copies"
            )


def check_network(network: str | None) -> None:
    """A network mode that keeps build steps out of other containers (no container:ID)."""
    if network and not NETWORK_RE.fullmatch(network):
        raise UsageError(
            f"--network (or IMGFORGE_NETWORK): {network!r} is not host, none, bridge or a "
            "network name"
        )


def check_compression(compression: str) -> str:
    """--compression: a squashfs compressor Apptainer can mount the image with, and its
    level; returns its normal spelling (``gzip:9`` is ``gzip``)."""
    try:
        return str(Compression.parse(compression))
    except ValueError as error:
        raise UsageError(f"--compression: {error}") from None


def source_date_epoch(environ: Mapping[str, str]) -> int | None:
    """``SOURCE_DATE_EPOCH``: unset or empty means none; anything else must be a number
    of seconds (reproducible-builds.org: a malformed value is an error, not ignored)."""
    value = environ.get("SOURCE_DATE_EPOCH", "").strip()
    if not value:
        return None
    if not value.isascii() or not value.isdigit() or int(value) > SOURCE_DATE_EPOCH_MAX:
        raise UsageError(f"SOURCE_DATE_EPOCH: {value!r} is not a number of seconds since 1970")
    return int(value)


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
