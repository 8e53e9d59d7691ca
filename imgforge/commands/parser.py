"""The command line's grammar: every command, option and its help (argparse)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import NoReturn

from imgforge import __version__
from imgforge.compressors import DEFAULT_COMPRESSOR
from imgforge.errors import UsageError
from imgforge.options import COMPRESSIONS
from imgforge.sizes import DEFAULT_CACHE_LIMIT, format_size


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage error as one escaped line (like every other bad input)
    instead of the usage text and an exit from inside the parser."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see {self.prog} --help)")


class _Listed(tuple[str, ...]):
    """Choices that --help and shell completion list, while argparse lets every value
    through (``in`` is always true): options_from refuses a bad one with its reason,
    in the one-line ``--OPTION: REASON`` form of the other option errors."""

    def __contains__(self, value: object) -> bool:
        return True


def _directory_path(text: str) -> Path:
    """A directory option's value: an empty one would silently mean the current one."""
    if not text:
        raise argparse.ArgumentTypeError("an empty path names no directory")
    return Path(text)


def _common() -> _Parser:
    common = _Parser(add_help=False)
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
        choices=_Listed(COMPRESSIONS),
        default=DEFAULT_COMPRESSOR,
        metavar="{" + ",".join(COMPRESSIONS) + "}[:LEVEL]",
        help="squashfs compression (gzip: mountable by every Apptainer; zstd: the fast "
        "profile, Linux >= 4.14; a level for gzip 1-9, zstd 1-22)",
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
        "--sqsh",
        action="store_true",
        help="also write NAME.sqsh, an enroot image (enroot start, Slurm's pyxis)",
    )
    common.add_argument(
        "--wait",
        action="store_true",
        help="wait for another imgforge building the same recipe into the same --out",
    )
    common.add_argument(
        "--keep-going", action="store_true", help="build unrelated recipes on failure"
    )
    common.add_argument(
        "--cache-dir",
        type=_directory_path,
        default=None,
        metavar="DIR",
        help="the squashed-data cache (default $XDG_CACHE_HOME/imgforge or ~/.cache/imgforge)",
    )
    common.add_argument(
        "--cache-limit",
        default=None,
        metavar="SIZE",
        help=f"evict least recently used cached data beyond SIZE (e.g. 20G; default "
        f"{format_size(DEFAULT_CACHE_LIMIT)})",
    )
    common.add_argument(
        "--no-cache", action="store_true", help="neither read nor write the squashed-data cache"
    )
    loud = common.add_mutually_exclusive_group()
    loud.add_argument("-q", "--quiet", action="store_true")
    loud.add_argument("-v", "--verbose", action="store_true")
    return common


def make_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="imgforge",
        description="Build paired Docker images and Singularity images from TOML recipes.",
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"imgforge {__version__}",
        help="show the version and exit (with -v: also Python and the key libraries)",
    )
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=_Parser
    )
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
        "import",
        help="turn a simple Dockerfile or Singularity/Apptainer .def into a recipe "
        "(or list what it can't express)",
    )
    imports.add_argument("dockerfile", type=Path, metavar="DOCKERFILE_OR_DEF")
    imports.add_argument(
        "--name", default=None, help="recipe name (default: NAME of NAME.def, else the directory's)"
    )
    imports.add_argument("-o", "--output", type=Path, default=None, help="recipe file to write")
    doctor = sub.add_parser(
        "doctor", parents=[common], help="check engine, Singularity tools, disk, credentials"
    )
    doctor.add_argument("--json", action="store_true", help="machine-readable output")
    schema = sub.add_parser(
        "schema",
        help="print (or write) the JSON Schema of recipes, for editors",
    )
    schema.add_argument(
        "-o",
        "--out",
        dest="output",
        type=Path,
        default=None,
        help="write to this file (e.g. recipe.schema.json) instead of printing",
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
    _cache_commands(sub)
    verify = sub.add_parser(
        "verify",
        parents=[common],
        help="compare the Docker image's Env with the SIF's environment",
        description="Compare a SIF with its Docker image: env (byte for byte), runscript, "
        "labels, definition, OCI config, required paths; --deep also every file.",
    )
    verify.add_argument("target", metavar="NAME_OR_SIF")
    verify.add_argument("--image", default=None, help="Docker image (default: from the manifest)")
    verify.add_argument("--deep", action="store_true", help="also compare the file trees")
    verify.add_argument("--json", action="store_true", help="machine-readable output")
    return parser


def _cache_commands(sub: argparse._SubParsersAction[_Parser]) -> None:
    """imgforge cache ls|du|prune."""
    cache = sub.add_parser(
        "cache",
        help="list, measure or prune the squashed-data cache",
        description="The squashed-data cache keeps compressed squashfs blocks of packed "
        "images, so packing an image on an already packed base costs only what is new.",
    )
    actions = cache.add_subparsers(
        dest="cache_command", required=True, metavar="ACTION", parser_class=_Parser
    )
    where = _Parser(add_help=False)
    where.add_argument(
        "--cache-dir",
        type=_directory_path,
        default=None,
        metavar="DIR",
        help="the cache (default $XDG_CACHE_HOME/imgforge or ~/.cache/imgforge)",
    )
    where.add_argument("--json", action="store_true", help="machine-readable output")
    actions.add_parser("ls", parents=[where], help="one line per compression profile")
    actions.add_parser("du", parents=[where], help="total size and entries")
    prune = actions.add_parser(
        "prune",
        parents=[where],
        help="remove least recently used entries down to a size, or all",
        description="Remove the least recently used entries until the cache holds at most "
        "--limit (default the --cache-limit default), or everything with --all. Waits "
        "for builds using the cache to finish, unless --no-wait.",
    )
    size = prune.add_mutually_exclusive_group()
    size.add_argument(
        "--limit",
        default=None,
        metavar="SIZE",
        help=f"keep at most SIZE (e.g. 5G; default {format_size(DEFAULT_CACHE_LIMIT)})",
    )
    size.add_argument("--all", action="store_true", help="remove every entry")
    prune.add_argument(
        "--no-wait",
        action="store_true",
        help="if builds are using the cache, remove nothing and exit 1",
    )
