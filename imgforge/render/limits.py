"""Refuse at render time what Docker's or Apptainer's parsers would not read exactly as
the recipe says: over-long lines, %labels values they trim or substitute, unsafe %files
paths, staging collisions, and text that no rendered file can carry."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

from imgforge.errors import RecipeError, UsageError
from imgforge.recipes.copies import STAGING, CopyStep
from imgforge.recipes.jobs import BuildJob
from imgforge.sif import definition as deffile

# BuildKit's Dockerfile parser (frontend/dockerfile/parser/parser.go, used by the classic
# builder too) reads lines with a bufio.Scanner of default size: a line of 65536 bytes or
# more, its newline included, fails with "dockerfile line greater than max allowed size".
DOCKERFILE_LINE_MAX = 64 * 1024 - 1
# What a %files path or a Bootstrap: localimage path may hold: no whitespace or quotes
# (fileSplitter splits there), no '#' (a comment), no '{' (a build variable), nothing
# Apptainer's %files source expansion (mvdan.cc/sh, files.go expandPath) reads as a
# variable, a command, a glob or an escape.
DEF_PATH_RE = re.compile(r"[A-Za-z0-9._@+,=/:-]+")


def _fail(job: BuildJob, key: str, reason: str) -> RecipeError:
    return RecipeError(job.recipe.path, key, reason)


def check_job(job: BuildJob) -> None:
    """Everything that can be refused before rendering, each naming its recipe key."""
    _check_text(job)
    _check_labels(job)
    _check_def_paths(job)
    for copy in job.copies:
        _check_staging(job, copy)


def _texts(job: BuildJob) -> Iterator[tuple[str, str]]:
    """(key, text) for every string that reaches a rendered file."""
    recipe = job.recipe
    for name, value in recipe.env:
        yield f"env.{name}", value
    for name, value in job.config.env_pairs():
        yield "base", f"{name}={value}"
    for key, value in recipe.labels:
        yield f"labels.{key}", value
    for index, command in enumerate(recipe.run_commands):
        yield f"run.commands[{index}]", command
    for word in (*job.config.entrypoint, *job.config.cmd, job.base.config.workdir):
        yield "base", word


def _check_text(job: BuildJob) -> None:
    for key, text in _texts(job):
        where = f"image {job.base.resolved}: " if key == "base" else ""
        if "\0" in text:
            raise _fail(job, key, f"{where}{_shown(text)} holds a NUL, which no file can carry")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise _fail(job, key, f"{where}{_shown(text)} is not valid Unicode") from None


def _shown(text: str, limit: int = 60) -> str:
    shown = repr(text[:limit])
    return shown + ("..." if len(text) > limit else "")


def _check_labels(job: BuildJob) -> None:
    """A .def's %labels line is ``key value``: Apptainer trims the value (GetLabels) and
    substitutes {{ NAME }} in it, and there is no quoting to prevent either."""
    for key, value in job.recipe.labels:
        if deffile.go_trim(value) != value:
            raise _fail(
                job,
                f"labels.{key}",
                "leading or trailing whitespace, which a Singularity .def's %labels drops",
            )
        if deffile.BUILD_ARG_RE.search(value):
            raise _fail(
                job,
                f"labels.{key}",
                "holds '{{ NAME }}', which Apptainer substitutes in a .def's %labels",
            )
        if "bootstrap:" in value.lower():
            raise _fail(
                job,
                f"labels.{key}",
                "holds 'bootstrap:', which spython reads as the start of another .def stage",
            )


def _def_paths(job: BuildJob) -> Iterator[tuple[str, str]]:
    """(key, path) for every path the .def names (its %files, a localimage From:)."""
    yield "out", job.relative(job.artifacts.env_file)
    if job.bootstrap == "localimage":
        yield "out", job.bootstrap_from
    for index, (source, _) in enumerate(job.requirements):
        yield f"pip.requirements[{index}]", source
    for copy in job.copies:
        yield f"files.{copy.source}", copy.source


def _check_def_paths(job: BuildJob) -> None:
    for key, path in _def_paths(job):
        if DEF_PATH_RE.fullmatch(path):
            continue
        reason = (
            f"{_shown(path)}: a Singularity .def can name only paths of letters, digits "
            "and . _ @ + , = / : -"
        )
        if key == "out":
            raise UsageError(f"--out: {reason}")
        raise _fail(job, key, reason)


# Paths no [files] destination may reach, and why: the staging directory (a copy there
# would overwrite an entry not yet placed), and the Singularity image's metadata, which
# imgforge writes itself (a file there would be in the Docker image, replaced or dropped
# in the SIF, and sourced at every start by Apptainer when the .def copied it).
RESERVED = {
    STAGING: "is where imgforge stages [files] sources",
    "/.singularity.d": "is the Singularity image's metadata (env scripts, runscript), "
    "which imgforge writes",
}


def _check_staging(job: BuildJob, copy: CopyStep) -> None:
    """No destination, and nothing inside a directory copied to ``/``, may reach a
    reserved path."""
    key = f"files.{copy.source}"
    for reserved, why in RESERVED.items():
        if copy.target == reserved or copy.target.startswith(reserved + "/"):
            raise _fail(job, key, f"{reserved} {why}")
        inside = job.recipe.directory / copy.source / reserved.lstrip("/")
        if copy.is_dir and copy.target == "/" and (inside.exists() or inside.is_symlink()):
            raise _fail(job, key, f"copying it to / would write into {reserved}, which {why}")


def check_dockerfile(job: BuildJob, text: str) -> None:
    """Every line within what Docker's parser reads, or the key that made it too long."""
    for number, line in enumerate(text.split("\n"), 1):
        size = len(line.encode("utf-8"))
        if size > DOCKERFILE_LINE_MAX:
            raise _fail(
                job,
                _line_key(job, line),
                f"makes Dockerfile line {number} {size} bytes long; Docker reads lines of "
                f"at most {DOCKERFILE_LINE_MAX} bytes",
            )


def _line_key(job: BuildJob, line: str) -> str:
    """The recipe key behind one rendered Dockerfile line (each line has one)."""
    word, _, rest = line.strip().partition(" ")
    if word == "RUN":
        command = json.loads(rest)[-1]
        if command in job.recipe.run_commands:
            return f"run.commands[{job.recipe.run_commands.index(command)}]"
        return "apt.packages" if command.startswith("apt-get") else "pip.packages"
    if word == "COPY":
        return f"files.{json.loads(rest)[0]}"
    if word in ("FROM", "CMD", "ENTRYPOINT"):
        return {"FROM": "base", "CMD": "runscript.command"}.get(word, "runscript.entrypoint")
    name = (rest if word in ("ENV", "LABEL") else word).partition("=")[0]
    return f"env.{name}" if name in dict(job.recipe.env) else f"labels.{name}"


# .def sections and the recipe keys whose text they carry.
_SECTION_KEYS = {
    "files": "files",
    "post": "run.commands",
    "environment": "env",
    "runscript": "runscript.command",
    "labels": "labels",
}


def check_deffile(job: BuildJob, text: str) -> None:
    """Every section within what Apptainer's parser reads at once (a bufio.Scanner token,
    deffile.go scanDefinitionFile), one stage, and no build variable."""
    for token, size in deffile.tokens(text):
        if size > deffile.SCAN_LIMIT:
            name = deffile.parse(token).sections[0].name if token.startswith("%") else ""
            raise _fail(
                job,
                _SECTION_KEYS.get(name, ""),
                f"makes the .def's %{name} section {size} bytes long; Apptainer reads "
                f"sections of at most {deffile.SCAN_LIMIT} bytes",
            )
    if len(deffile.stages(text)) != 1 or deffile.BUILD_ARG_RE.search(text):
        raise _fail(job, "", "the rendered .def would not read back as written")
