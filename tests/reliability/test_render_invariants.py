"""Invariants of rendering, over hostile text in every recipe field and in the base
image's config: a recipe is refused with one ``FILE: KEY: REASON`` line, or

- the Dockerfile parses with Docker's own parser (PyPI ``dockerfile``: BuildKit's Go
  parser) into exactly the expected instructions: names, no flags, no heredocs, values;
- the .def reads, with the port of Apptainer's parser, as one stage with exactly the
  expected sections, %files, %labels and no build variable, and spython agrees;
- the commands the .def's %post and the commit script hand to ``sh -c`` are byte for
  byte the ones the Dockerfile's RUN hands it;
- the env file and the .def's %environment, sourced by sh and bash under ``env -i``,
  give every variable's exact value.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dockerfile
from hypothesis import event, example, given
from hypothesis import strategies as st
from reliability_support import PROPERTIES, toml_dumps, write
from spython.main.parse.parsers import SingularityParser

from imgforge.errors import RecipeError, UsageError
from imgforge.recipes.copies import copy_steps, requirement_paths
from imgforge.recipes.image import ImageConfig, split_env, update_env
from imgforge.recipes.jobs import BuildJob
from imgforge.recipes.model import load
from imgforge.render import check, make_environment, render
from imgforge.sif import definition as deffile

BASE = "example.org/ngc/pytorch:24.01-py3"
PIECES = [
    "\n", "\r", "\r\n", "\0", "'", '"', "$", "$(id)", "`id`", "\\", "\\\n", " \\", "%post",
    "\n%post\n", "\n  %environment", "\nBootstrap: docker\n", "{{ HOME }}", "{{x}}", "{{",
    "}}", "-", "--mount=type=bind,source=/,target=/h", "--from=other", "<<EOF", "<<-EOF\n",
    "\nEOF\n", "# syntax=docker/dockerfile:1", "# escape=`", "\nRUN rm -rf /", "\t", "\x0b",
    "\x0c", "\x85", "\xa0", "\u2028", "\u3000", "\x1b[2J", "\x7f", "é", "🚀", "#", ";",
    "&&", "*", "[", "=", " ", "  ",
]  # fmt: skip
TEXT = st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=20)
HOSTILE = st.lists(st.sampled_from(PIECES) | TEXT, min_size=1, max_size=8).map("".join)
LONG = st.sampled_from(["x" * 65600, "é" * 33000, "echo " + "y" * 70000])
VALUE = st.one_of(HOSTILE, HOSTILE, HOSTILE, HOSTILE, HOSTILE, LONG)
GOOD_APT = st.sampled_from(["ffmpeg", "libgl1", "g++-12"])
GOOD_PIP = st.sampled_from(["einops>=0.7", "x[y]>=1; python_version > '3'"])
ENV_KEY = st.from_regex(r"[A-Z_][A-Z0-9_]{0,8}", fullmatch=True)
LABEL_KEY = st.from_regex(r"[a-z][a-z0-9.]{0,8}", fullmatch=True)
DESTS = st.sampled_from(["/opt/x", "/opt/d/", "/opt/e/.", "/etc", "/", "/usr/bin/"])
BASE_CONFIGS = st.builds(
    lambda env, workdir, entrypoint: ImageConfig(
        env=tuple(f"{k}={v}" for k, v in env.items()), workdir=workdir, entrypoint=entrypoint
    ),
    env=st.dictionaries(ENV_KEY | HOSTILE, VALUE, max_size=4),
    workdir=st.sampled_from(["", "/workspace"]) | HOSTILE,
    entrypoint=st.lists(HOSTILE, max_size=2).map(tuple),
)


def docs(value: st.SearchStrategy[str]) -> st.SearchStrategy[dict[str, Any]]:
    """Recipe documents with ``value`` in every free-text field."""
    return st.fixed_dictionaries(
        {"name": st.just("rel-inv"), "base": st.just(BASE)},
        optional={
            "env": st.dictionaries(ENV_KEY, value, max_size=4),
            "labels": st.dictionaries(LABEL_KEY, value, max_size=3),
            "run": st.fixed_dictionaries({"commands": st.lists(value, min_size=1, max_size=4)}),
            "runscript": st.fixed_dictionaries({"command": value}),
            "files": st.dictionaries(st.sampled_from(["a.txt", "dir", "dir/", "-rf"]), DESTS),
            "apt": st.fixed_dictionaries(
                {"packages": st.lists(GOOD_APT | GOOD_APT | value, max_size=2)}
            ),
            "pip": st.fixed_dictionaries(
                {"packages": st.lists(GOOD_PIP | GOOD_PIP | value, max_size=2)}
            ),
        },
    )


# Values the schema accepts in most fields (no NUL, no line break): more renderings.
SAFE = HOSTILE.map(lambda v: v.replace("\0", "").replace("\n", "").replace("\r", ""))
DOCS = docs(VALUE)
ACCEPTED_DOCS = docs(SAFE)
# Variables a shell sets itself: what sourcing leaves in them is the shell's doing.
SHELL_MANAGED = {"PWD", "OLDPWD", "SHLVL", "_", "PPID", "LINENO", "OPTIND", "IFS", "PS1",
                 "PS2", "PS4", "ENV", "HOME", "PATH", "BASH_ENV", "SHELLOPTS", "BASHOPTS",
                 "UID", "EUID", "GROUPS", "RANDOM", "SECONDS", "HOSTNAME", "BASH_ARGV0",
                 "POSIXLY_CORRECT", "HISTFILE", "MAIL", "MAILPATH", "CDPATH", "TERM"}  # fmt: skip
# Run a build script with its steps recorded instead of run (and nothing touched).
STUBS = (
    'capture() { printf "%s\\0" "$1" >> "$OUT"; }\n'
    "cd() { :; }\ncp() { :; }\nmkdir() { :; }\ntouch() { :; }\nrm() { :; }\n"
)


def docker_double_quoted(word: str) -> str:
    """A ``"..."`` word as BuildKit's shell lexer reads it (frontend/dockerfile/shell/
    lex.go, processDoubleQuote): backslash escapes only ``"``, ``$`` and backslash; an
    unescaped ``$`` would expand, which imgforge never leaves."""
    assert word.startswith('"') and word.endswith('"'), word
    out, index, body = [], 0, word[1:-1]
    while index < len(body):
        char = body[index]
        assert char not in '"$', word
        if char == "\\" and index + 1 < len(body) and body[index + 1] in '"$\\':
            index += 1
            char = body[index]
        out.append(char)
        index += 1
    return "".join(out)


def pairs_of(command: Any) -> dict[str, str]:
    values = command.value
    return {values[i]: docker_double_quoted(values[i + 1]) for i in range(0, len(values), 2)}


def shell_steps(job: BuildJob) -> list[str]:
    """What each RUN must run, in order: apt, pip, then the recipe's commands."""
    env = make_environment()
    steps = env.get_template("_steps.j2").module
    requirements = requirement_paths(job.recipe)
    found = []
    if job.recipe.apt_packages:
        found.append(str(steps.apt_install(job.recipe.apt_packages)))  # type: ignore[attr-defined]
    if job.recipe.pip_packages or requirements:
        found.append(str(steps.pip_install(job.recipe, requirements)))  # type: ignore[attr-defined]
    return found + list(job.recipe.run_commands)


def check_dockerfile(job: BuildJob, text: str) -> list[str]:
    """The Dockerfile's instructions, exactly; returns what its RUNs hand to sh."""
    parsed = dockerfile.parse_string(text)
    assert all(c.flags == () and c.heredocs == () and c.sub_cmd is None for c in parsed)
    names = [c.cmd for c in parsed]
    copies = [[s, t] for s, t in requirement_paths(job.recipe)]
    copies += [[c.source, c.dest] for c in copy_steps(job.recipe)]
    runs = shell_steps(job)
    expected = ["FROM"] + ["ENV"] * bool(job.recipe.env) + ["RUN"] * len(runs)
    expected += ["COPY"] * len(copies) + ["LABEL"] + ["CMD"] * (job.recipe.runscript is not None)
    assert sorted(names) == sorted(expected), names
    by_name: dict[str, list[Any]] = {}
    for command in parsed:
        by_name.setdefault(command.cmd, []).append(command)
    assert by_name["FROM"][0].value == (job.base.resolved,)
    if job.recipe.env:
        assert pairs_of(by_name["ENV"][0]) == dict(job.recipe.env)
    labels = pairs_of(by_name["LABEL"][0])
    assert {k: labels[k] for k, _ in job.recipe.labels} == dict(job.recipe.labels)
    assert [list(c.value) for c in by_name.get("COPY", [])] == copies
    for command in by_name.get("RUN", []) + by_name.get("COPY", []) + by_name.get("CMD", []):
        assert command.json
    if job.recipe.runscript is not None:
        assert list(by_name["CMD"][0].value) == shlex.split(job.recipe.runscript)
    run_values = [c.value for c in by_name.get("RUN", [])]
    assert all(v[:3] == ("/bin/sh", "-c", "--") and len(v) == 4 for v in run_values)
    return [v[3] for v in run_values]


def check_deffile(job: BuildJob, text: str, directory: Path) -> None:
    assert len(deffile.stages(text)) == 1 and not deffile.BUILD_ARG_RE.search(text)
    definition = deffile.parse(text)
    names = [s.name for s in definition.sections]
    assert names == ["files", "post", "environment", "runscript", "labels"], names
    labels = {**dict(job.recipe.labels), **job.provenance}
    assert definition.labels == labels
    stages = [(s, t) for s, t in requirement_paths(job.recipe)]
    stages += [(c.source, c.stage) for c in copy_steps(job.recipe)]
    files = [(s.removeprefix("./"), t) for s, t in definition.files[1:]]
    assert files == stages
    path = write(directory / "spython.def", text)
    recipe = SingularityParser(str(path)).recipe["spython-base"]
    assert recipe.fromHeader == job.base.resolved.lower()
    assert recipe.labels == [f"{k} {v}".strip() for k, v in sorted(labels.items())]
    assert len(recipe.files) == len(definition.files)
    # spython reads the file in text mode: universal newlines split at \r too.
    lines = re.split(r"\r\n|\r|\n", definition.body("post"))
    body = [line.strip() for line in lines if line.strip()]
    post = [line for line in body if not line.startswith("#")]
    # spython appends lines of its own (it turns a multi-line runscript into echo lines).
    assert recipe.install[: len(post)] == post


def sourced(script: str, shell: str, directory: Path) -> dict[str, str]:
    out = directory / "env.out"
    path = write(directory / "env.sh", f"{script}\n/usr/bin/env -0 > '{out}'\n")
    subprocess.run(["/usr/bin/env", "-i", shell, str(path)], check=True, timeout=30,
                   cwd=directory, capture_output=True)  # fmt: skip
    entries = out.read_bytes().decode("utf-8").split("\0")
    return dict(entry.partition("=")[::2] for entry in entries if entry)


def captured(script: str, directory: Path, pad: str) -> list[str]:
    """The argument of every ``/bin/sh -c --`` step of a build script, as sh sees it."""
    out = directory / "steps.out"
    out.write_bytes(b"")
    body = re.sub(rf"(?m)^{pad}/bin/sh -c -- ", f"{pad}capture ", script)
    body = re.sub(rf"(?m)^{pad}\. /\.singularity\.d/.*$", ":", body)
    path = write(directory / "steps.sh", STUBS + body)
    subprocess.run(["/usr/bin/env", "-i", f"OUT={out}", "sh", str(path)], check=True,
                   timeout=30, cwd=directory, capture_output=True)  # fmt: skip
    return out.read_bytes().decode("utf-8").split("\0")[:-1]


def check_everything(job: BuildJob, directory: Path) -> None:
    jinja = make_environment()
    runs = check_dockerfile(job, render(job, "dockerfile", jinja))
    assert runs == shell_steps(job)
    deftext = render(job, "def", jinja)
    check_deffile(job, deftext, directory)
    assert captured(deffile.parse(deftext).body("post"), directory, "    ") == runs
    assert captured(render(job, "commit", jinja), directory, "") == runs
    expected = dict(map(split_env, update_env(job.base.config.env, job.recipe.env)))
    shell_names = dict(job.config.shell_env())
    environment = deffile.parse(deftext).body("environment")
    for script in (render(job, "env", jinja), environment):
        for shell in ("sh", "bash"):
            seen = sourced(script, shell, directory)
            for name in shell_names:
                assert name in SHELL_MANAGED or seen.get(name) == expected[name], name


def make_files(directory: Path) -> None:
    for name in ("a.txt", "dir/in.txt", "-rf"):
        write(directory / name, f"{name}\n")


@PROPERTIES
@given(doc=DOCS, base=BASE_CONFIGS)
@example(
    doc={
        "name": "rel-inv",
        "base": BASE,
        "run": {"commands": ["--mount=type=bind,target=/x ls", "<<EOF", "x\n%post\n{{ HOME }}"]},
    },
    base=ImageConfig(env=("A=\n%files\n/etc/shadow /x", "B\n=x")),
)
@example(doc={"name": "rel-inv", "base": BASE, "labels": {"k": " {{ x }} "}}, base=ImageConfig())
@example(
    doc={"name": "rel-inv", "base": BASE, "files": {"dir/": "/", "-rf": "/etc"}},
    base=ImageConfig(workdir="/w\n%post"),
)
def test_rendered_files_carry_exactly_the_recipe_or_it_is_refused(
    doc: dict[str, Any], base: ImageConfig, jobs_for: Callable[..., list[BuildJob]]
) -> None:
    check_document(doc, base, jobs_for)


@PROPERTIES
@given(doc=ACCEPTED_DOCS, base=BASE_CONFIGS)
def test_accepted_recipes_render_exactly(
    doc: dict[str, Any], base: ImageConfig, jobs_for: Callable[..., list[BuildJob]]
) -> None:
    """Mostly accepted values: the checks of the rendered files run on most examples."""
    check_document(doc, base, jobs_for)


def check_document(
    doc: dict[str, Any], base: ImageConfig, jobs_for: Callable[..., list[BuildJob]]
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        make_files(directory)
        path = write(directory / "rel-inv.toml", toml_dumps(doc))
        try:
            load(path)
            (job,) = jobs_for(directory, {BASE: base})
            check(job)
        except (RecipeError, UsageError) as exc:
            message = str(exc)
            assert "\n" not in message and (
                message.startswith(f"{path}: ") or message.startswith("--out: ")
            ), message
            event(f"refused: {getattr(exc, 'key', 'out').split('.')[0].split('[')[0] or '(file)'}")
            return
        event("rendered")
        check_everything(job, directory)
