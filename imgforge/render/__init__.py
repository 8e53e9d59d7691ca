"""Render a BuildJob to a Dockerfile, a Singularity .def or an env file (jinja2)."""

from __future__ import annotations

import functools
import json
from typing import Any, NoReturn

import jinja2

from imgforge import gojson
from imgforge.recipes.copies import STAGING
from imgforge.recipes.envnames import why_not_carried
from imgforge.recipes.image import ImageConfig
from imgforge.recipes.jobs import BuildJob
from imgforge.render import limits
from imgforge.render.quoting import (
    args_quoted,
    dockerfile_quote,
    escaped,
    json_list,
    prepend_lines,
    sh_join,
    sh_quote,
)
from imgforge.sif.metadata import deffile_header
from imgforge.sif.texts import Expected

TEMPLATES = {
    "dockerfile": "Dockerfile.j2",
    "def": "singularity.def.j2",
    "env": "env.sh.j2",
    "convert": "convert.def.j2",
    "commit": "commit.sh.j2",
    "finalize": "commit-finalize.Dockerfile.j2",
}
# Files under /.singularity.d that imgforge writes into a SIF itself: path -> template.
SIF_FILES = {
    "Singularity": "sif/deffile.j2",
    "actions/exec": "sif/actions/exec.j2",
    "actions/run": "sif/actions/run.j2",
    "actions/shell": "sif/actions/shell.j2",
    "actions/start": "sif/actions/start.j2",
    "actions/test": "sif/actions/test.j2",
    "env/01-base.sh": "sif/env/01-base.sh.j2",
    "env/10-docker2singularity.sh": "env.sh.j2",
    "env/90-environment.sh": "sif/env/90-environment.sh.j2",
    "env/95-apps.sh": "sif/env/95-apps.sh.j2",
    "env/99-base.sh": "sif/env/99-base.sh.j2",
    "env/99-runtimevars.sh": "sif/env/99-runtimevars.sh.j2",
    "labels.json": "sif/labels.json.j2",
    "runscript": "sif/runscript.j2",
    "startscript": "sif/startscript.j2",
}


def _raise(message: str) -> NoReturn:
    raise jinja2.TemplateError(message)


def _json_object(value: dict[str, str]) -> str:
    """A string map as Apptainer writes labels.json (Go's MarshalIndent with a tab)."""
    return gojson.dumps(gojson.sorted_map(value), indent=True)


def _mermaid_id(name: str) -> str:
    """A Mermaid node id: recipe names may hold . and -, which Mermaid reads as syntax."""
    return "n_" + "".join(c if c.isalnum() else "_" for c in name)


def _mermaid_text(text: str) -> str:
    return text.replace('"', "#quot;")


def _toml_string(value: str) -> str:
    """A TOML basic string: JSON's escapes are a subset TOML reads the same way."""
    return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")


def _toml_text(value: str) -> str:
    """A multi-line literal string for text of several lines (kept byte for byte: no
    escapes), when TOML can hold it as one; else a basic string."""
    plain = all(c in "\t\n" or (c >= " " and c != "\x7f") for c in value)
    if "\n" not in value or not plain or "'''" in value or value.endswith("'"):
        return _toml_string(value)
    return f"'''\n{value}'''"


def _toml_list(values: list[str]) -> str:
    return "[" + ", ".join(_toml_string(v) for v in values) + "]"


def _def_path(path: str) -> str:
    """A %files source as Apptainer must get it: ``cp -fLr SOURCE ...`` would read a
    leading ``-`` as an option."""
    return f"./{path}" if path.startswith("-") else path


@functools.cache
def make_environment() -> jinja2.Environment:
    """The one jinja environment (cached: templates compile once per process)."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("imgforge.render", "templates"),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters.update(
        sh_quote=sh_quote,
        args_quoted=args_quoted,
        prepend_lines=prepend_lines,
        sh_join=sh_join,
        dockerfile_quote=dockerfile_quote,
        json_list=json_list,
        json_object=_json_object,
        mermaid_id=_mermaid_id,
        toml_string=_toml_string,
        toml_list=_toml_list,
        toml_text=_toml_text,
        mermaid_text=_mermaid_text,
        escaped=escaped,
        def_path=_def_path,
    )
    env.globals["raise"] = _raise
    return env


def context(job: BuildJob) -> dict[str, Any]:
    """The values the templates see: computed here, never in the templates."""
    config = job.config
    written = {name for name, _, _ in config.script_env()}
    return {
        "version": job.version,
        "job": job,
        "recipe": job.recipe,
        "copies": list(job.copies),
        "def_files": list(job.def_files),
        "requirements": list(job.requirements),
        "labels": sorted({**dict(job.recipe.labels), **job.provenance}.items()),
        "final_env": config.script_env(),
        # Repeated after the runtime's own PATH fix-up (Apptainer appends its default
        # directories missing from the 10- file's PATH), so without PATH.
        "sorted_env": sorted(e for e in config.script_env() if e[0] != "PATH"),
        "skipped_env": [
            (n, why_not_carried(n)) for n, _ in config.env_pairs() if n not in written
        ],
        "workdir": job.base.config.workdir or "/",
        "entrypoint": list(config.run_entrypoint()),
        "cmd": list(config.cmd),
        "env_file": job.relative(job.artifacts.env_file),
        "labels_map": dict(config.labels),
        "staging": STAGING,
    }


# Checks of rendered text, by format: what the format's own parser would misread.
CHECKS = {"dockerfile": limits.check_dockerfile, "def": limits.check_deffile}


def render(
    job: BuildJob, fmt: str, environment: jinja2.Environment | None = None, **extra: Any
) -> str:
    """Render ``job`` in format ``fmt`` (dockerfile, def, env, commit, finalize or
    convert). A recipe that a format can't carry exactly is a RecipeError (exit 2)."""
    limits.check_job(job)
    env = environment or make_environment()
    text = env.get_template(TEMPLATES[fmt]).render(context(job), **extra)
    if fmt in CHECKS:
        CHECKS[fmt](job, text)
    return text


def check(job: BuildJob) -> None:
    """Render every format a build uses, so that refusals come before any build."""
    env = make_environment()
    for fmt in ("dockerfile", "def", "env", "commit"):
        render(job, fmt, env)


def render_sif_files(
    job: BuildJob, environment: jinja2.Environment | None = None, **extra: Any
) -> dict[str, str]:
    """The text of every /.singularity.d file imgforge writes, by path under it. ``extra``
    values (e.g. ``labels_map`` with the build labels) replace the context's."""
    env = environment or make_environment()
    values = {**context(job), "deffile_header": deffile_header(job.recipe.image), **extra}
    return {path: env.get_template(name).render(values) for path, name in SIF_FILES.items()}


def runscript_body(
    entrypoint: list[str], cmd: list[str], environment: jinja2.Environment | None = None
) -> str:
    """The Docker-style runscript's text after its ``#!`` line and comments: what the SIF's
    runscript and the .def's %runscript hold for this ENTRYPOINT and CMD."""
    steps = (environment or make_environment()).get_template("_steps.j2").module
    return str(steps.runscript_body(entrypoint, cmd))  # type: ignore[attr-defined]


# The /.singularity.d files whose text is the same for every image imgforge makes.
FIXED_SIF_FILES = (
    "actions/exec", "actions/run", "actions/shell", "actions/start", "actions/test",
    "env/01-base.sh", "env/95-apps.sh", "env/99-base.sh", "env/99-runtimevars.sh", "startscript",
)  # fmt: skip


def fixed_sif_files(environment: jinja2.Environment | None = None) -> dict[str, str]:
    """The text of :data:`FIXED_SIF_FILES`, by path under /.singularity.d."""
    env = environment or make_environment()
    return {path: env.get_template(SIF_FILES[path]).render() for path in FIXED_SIF_FILES}


def expected_sif(config: ImageConfig, environment: jinja2.Environment | None = None) -> Expected:
    """What a SIF of an image with ``config`` must hold of imgforge's own writing."""
    env = environment or make_environment()
    body = runscript_body(list(config.run_entrypoint()), list(config.cmd), env)
    return Expected(runscript_body=body, fixed=fixed_sif_files(env))
