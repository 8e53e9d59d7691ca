"""Property tests of input hardening: random recipe documents (the schema's shape with
random and wrong values, and plain random text) never raise anything but RecipeError
(exit 2 with one line); random env values, labels and [files] names are refused with a
clear message or survive byte for byte into the rendered .def's %environment and the env
file (sourced by sh), the Dockerfile, labels.json, and, for a handful built for real,
the image's Config.Env and the native SIF's env scripts."""

from __future__ import annotations

import contextlib
import json
import shlex
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker
import pytest
from hypothesis import HealthCheck, assume, event, example, given, settings
from hypothesis import strategies as st
from reliability_support import (
    MINI,
    PROPERTIES,
    build_argv,
    one_error_line,
    run_main,
    toml_dumps,
    write,
)

from imgforge.errors import RecipeError
from imgforge.recipes.copies import CopyStep, copy_steps
from imgforge.recipes.image import ImageConfig, split_env, update_env
from imgforge.recipes.jobs import BuildJob
from imgforge.recipes.model import load
from imgforge.render import check, make_environment, render, render_sif_files
from imgforge.render.quoting import json_list, sh_quote
from imgforge.sif.read import SifImage, parse_exports

BASE = "example.org/ngc/pytorch:24.01-py3"

# ------------------------------------------------------------------ value strategies

ANY_TEXT = st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=40)
SHELLISH = st.lists(
    st.sampled_from(
        [
            "'",
            '"',
            "\\",
            "$",
            "`",
            "$(touch /tmp/x)",
            ";",
            "&&",
            "|",
            "\n",
            "\r",
            "\0",
            "%",
            "\n%post",
            " ",
            "\t",
            "\x0b",
            "\x0c",
            "\x85",
            "\u2028",
            "#",
            "*",
            "?",
            "[",
            "{",
            "}",
            "=",
            "..",
            "/",
            "-",
            "--",
            "é",
            "🚀",
            "${IFS}",
            "'\\''",
            "\\n",
        ]
    )
    | ANY_TEXT,
    max_size=8,
).map("".join)
TEXT = SHELLISH | ANY_TEXT
# Values of the wrong type for any key.
WRONG = st.recursive(
    st.integers() | st.floats(allow_nan=False) | st.booleans(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=6,
)


def maybe_wrong(right: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return right | right | right | WRONG


def section(fields: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[dict[str, Any]]:
    """A table with some of ``fields`` (values maybe wrong) and maybe an unknown key."""
    return st.fixed_dictionaries(
        {}, optional={**{k: maybe_wrong(v) for k, v in fields.items()}, "unknown": TEXT}
    )


TEXTS = st.lists(TEXT, max_size=3)
RECIPE_DOCS = st.fixed_dictionaries(
    {"base": maybe_wrong(st.sampled_from([BASE, "recipe:other", MINI]) | TEXT)},
    optional={
        "name": maybe_wrong(st.sampled_from(["rel-prop", "UPPER", "-x"]) | TEXT),
        "tag": maybe_wrong(st.sampled_from(["1.0", "latest"]) | TEXT),
        "apt": section({"packages": TEXTS}),
        "pip": section(
            {
                "packages": TEXTS,
                "requirements": TEXTS,
                "index_url": st.sampled_from(["https://x.invalid/simple"]) | TEXT,
                "extra_index_urls": TEXTS,
            }
        ),
        "env": maybe_wrong(st.dictionaries(TEXT, TEXT, max_size=4)),
        "files": maybe_wrong(st.dictionaries(TEXT, TEXT, max_size=3)),
        "run": section({"commands": TEXTS}),
        "labels": maybe_wrong(st.dictionaries(TEXT, TEXT, max_size=3)),
        "runscript": section({"command": TEXT}),
        "build": section(
            {"strategy": st.sampled_from(["dockerfile", "commit"]) | TEXT, "gpus": st.booleans()}
        ),
        "imgforge": TEXT,
    },
)


# ------------------------------------------------------------ loader never crashes


@PROPERTIES
@given(doc=RECIPE_DOCS)
@example(doc={"base": BASE, "env": {"A\n": "x"}})
@example(doc={"base": BASE, "files": {"../x": "/y"}})
@example(doc={"base": BASE, "runscript": {"command": "echo '"}})
def test_random_recipe_documents_load_or_raise_recipe_error(doc: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = write(Path(directory) / "rel-prop.toml", toml_dumps(doc))
        try:
            load(path)
        except RecipeError as exc:
            assert str(exc).startswith(f"{path}: ") and "\n" not in str(exc), str(exc)


@PROPERTIES
@given(data=st.binary(max_size=200) | TEXT.map(lambda t: t.encode("utf-8", "surrogatepass")))
@example(data=b'base = "x"\nname = "a"\nname = "b"\n')
@example(data=b"\xff\xfe")
@example(data='base = "é"\n[env]\n"\u2028" = 1\n'.encode())
def test_random_text_loads_or_raises_recipe_error(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "rel-prop.toml"
        path.write_bytes(data)
        try:
            load(path)
        except RecipeError as exc:
            assert "\n" not in str(exc), str(exc)


@settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(doc=RECIPE_DOCS | st.builds(lambda t: {"raw": t}, TEXT))
def test_random_recipes_through_the_cli_exit_0_or_2_with_one_line(
    doc: dict[str, Any], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``imgforge render`` (no engine reachable): a good recipe renders, a bad one is one
    ``FILE: KEY: REASON`` line and exit 2; nothing else, never a traceback."""
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "rel-prop.toml"
        text = doc["raw"] if "raw" in doc else toml_dumps(doc)
        write(path, text)
        code, out, err = run_main(["render", str(path), "--out", f"{directory}/out"], capsys)
    assert "Traceback" not in out + err
    assert code in (0, 2), (code, out, err)
    if code == 2:
        assert one_error_line(err).startswith(f"imgforge: error: {path}"), err


# ------------------------------------------------ accepted values survive rendering

GOOD_ENV_KEYS = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,12}", fullmatch=True)
GOOD_LABEL_KEYS = st.from_regex(r"[a-z][a-z0-9._/-]{0,12}", fullmatch=True)
GOOD_FILE_NAMES = st.from_regex(r"[A-Za-z0-9_@+,=-][A-Za-z0-9._@+,=-]{0,11}", fullmatch=True)
GOOD_TARGETS = st.from_regex(r"/[A-Za-z0-9._@+,=/-]{1,16}", fullmatch=True)
# Any value the schema accepts (no NUL, CR or LF), shell-hostile ones favoured.
VALUES = TEXT.map(lambda v: v.replace("\0", "").replace("\n", "").replace("\r", ""))


# Variables a shell manages itself: what sourcing leaves in them is the shell's doing.
SHELL_MANAGED = {
    "PWD",
    "OLDPWD",
    "SHLVL",
    "_",
    "PPID",
    "LINENO",
    "OPTIND",
    "IFS",
    "PS1",
    "PS2",
    "PS4",
    "ENV",
    "HOME",
    "PATH",
}


def source(script: str, shell: str = "sh") -> dict[str, str]:
    """The environment after ``shell`` sources ``script`` in an empty environment."""
    with tempfile.TemporaryDirectory() as directory:
        out = Path(directory) / "out"
        dump = f"/usr/bin/env -0 > {sh_quote(str(out))}"
        path = write(Path(directory) / "env.sh", f"{script}\n{dump}\n")
        subprocess.run(
            ["/usr/bin/env", "-i", shell, str(path)],
            check=True,
            timeout=30,
            cwd=directory,
            capture_output=True,
        )
        entries = out.read_bytes().decode().split("\0")
    return dict(entry.partition("=")[::2] for entry in entries if entry)


def environment_section(deffile: str) -> str:
    return deffile.split("\n%environment\n", 1)[1].split("\n%", 1)[0]


@PROPERTIES
@given(
    env=st.dictionaries(GOOD_ENV_KEYS | TEXT, TEXT, max_size=3),
    labels=st.dictionaries(GOOD_LABEL_KEYS | TEXT, TEXT, max_size=2),
    files=st.dictionaries(GOOD_FILE_NAMES | TEXT, GOOD_TARGETS | TEXT, max_size=2),
    command=st.none() | TEXT,
)
def test_random_fields_are_refused_clearly_or_survive_byte_exact(
    env: dict[str, str],
    labels: dict[str, str],
    files: dict[str, str],
    command: str | None,
    ngc_config: ImageConfig,
    jobs_for: Callable[..., list[BuildJob]],
) -> None:
    """Mostly refusals: any key, any value."""
    check_fields(env, labels, files, command, ngc_config, jobs_for)


@PROPERTIES
@given(
    env=st.dictionaries(GOOD_ENV_KEYS, VALUES, max_size=4),
    labels=st.dictionaries(GOOD_LABEL_KEYS, VALUES, max_size=3),
    files=st.dictionaries(GOOD_FILE_NAMES, GOOD_TARGETS, max_size=2),
    command=st.none() | VALUES,
)
@example(
    env={"A": "$(touch /tmp/x)'\"\\"},
    labels={"k": "%post\\"},
    files={"-rf": "/opt/x"},
    command="echo '\u2028'",
)
def test_accepted_values_survive_byte_exact(
    env: dict[str, str],
    labels: dict[str, str],
    files: dict[str, str],
    command: str | None,
    ngc_config: ImageConfig,
    jobs_for: Callable[..., list[BuildJob]],
) -> None:
    """Mostly accepted: good keys, any value the schema allows."""
    check_fields(env, labels, files, command, ngc_config, jobs_for)


def check_fields(
    env: dict[str, str],
    labels: dict[str, str],
    files: dict[str, str],
    command: str | None,
    ngc_config: ImageConfig,
    jobs_for: Callable[..., list[BuildJob]],
) -> None:
    doc: dict[str, Any] = {
        "name": "rel-prop",
        "base": BASE,
        "env": env,
        "labels": labels,
        "files": files,
    }
    if command is not None:
        doc["runscript"] = {"command": command}
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        for name in files:
            # Not a possible file name: the loader must refuse it.
            with contextlib.suppress(OSError, ValueError):
                write(directory / name, f"file {name!r}\n")
        path = write(directory / "rel-prop.toml", toml_dumps(doc))
        try:
            load(path)
            (job,) = jobs_for(directory, {BASE: ngc_config})
            check(job)  # what no rendered format can carry exactly is refused here
        except RecipeError as exc:
            message = str(exc)
            assert message.startswith(f"{path}: ") and "\n" not in message, message
            assert exc.key.split(".", 1)[0].split("[", 1)[0] in doc, message
            event(f"refused at {exc.key.split('.', 1)[0]}")
            return
        event("accepted")
        check_rendered(job, env, labels, files)


def check_rendered(
    job: BuildJob, env: dict[str, str], labels: dict[str, str], files: dict[str, str]
) -> None:
    jinja = make_environment()
    expected = dict(map(split_env, update_env(job.base.config.env, env.items())))
    deffile = render(job, "def", jinja)
    for script in (render(job, "env", jinja), environment_section(deffile)):
        sourced = source(script)
        for key, value in expected.items():
            assert key in SHELL_MANAGED or sourced.get(key) == value, key
    sif_files = render_sif_files(job, jinja)
    for script in ("env/10-docker2singularity.sh", "env/90-environment.sh"):
        # 90-environment.sh leaves PATH as the runtime completed it after the 10- file.
        wanted = {k: v for k, v in expected.items() if k != "PATH" or script[4] == "1"}
        assert dict(parse_exports(sif_files[script])) == wanted
    assert {k: v for k, v in json.loads(sif_files["labels.json"]).items() if k in labels} == labels
    dockerfile = render(job, "dockerfile", jinja)
    for source_name, target in files.items():
        # A final "/." is written "/": a directory to BuildKit and the classic builder alike.
        dest = target.removesuffix(".") if target.endswith("/.") else target
        assert f"COPY {json_list([source_name, dest])}\n" in dockerfile
    copies = [line.strip() for line in deffile.split("\n") if "cp -a " in line]
    assert [shlex.split(line) for line in copies] == [copy_words(s) for s in copy_steps(job.recipe)]


def copy_words(step: CopyStep) -> list[str]:
    """The words of the .def's line placing one [files] entry (COPY's rules)."""
    if step.is_dir:
        return ["cp", "-a", f"{step.stage}/.", step.target]
    if not step.into_existing:
        return ["cp", "-a", step.stage, step.target]
    into = ["cp", "-a", step.stage, f"{step.target}/{step.name};"]
    to = ["cp", "-a", step.stage, f"{step.target};"]
    return ["if", "[", "-d", step.target, "];", "then", *into, "else", *to, "fi"]


# ------------------------------------------------------- a handful built for real

BUILT_VALUES = st.text(
    alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\0\n\r"),
    min_size=1,
    max_size=30,
) | SHELLISH.filter(lambda v: not ({"\0", "\n", "\r"} & set(v)))


@pytest.mark.integration
@settings(
    max_examples=5,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
@given(values=st.lists(BUILT_VALUES, min_size=3, max_size=3), label=BUILT_VALUES)
@example(
    values=["$(touch /tmp/x)'\"\\", "\x0b\x0c\x85\u2028 é🚀\t", "%post ${IFS}`id` #"],
    label="'\"\\$ %post\x7f",
)
def test_random_values_survive_into_the_image_and_the_sif(
    values: list[str],
    label: str,
    mini_image: str,
    client: docker.DockerClient,
    tmp_path_factory: pytest.TempPathFactory,
    capsys: pytest.CaptureFixture[str],
) -> None:
    env = {f"PROP_{i}": value for i, value in enumerate(values)}
    doc = {"name": "rel-prop-built", "base": mini_image, "env": env, "labels": {"prop": label}}
    root = tmp_path_factory.mktemp("prop-built")
    recipe = write(root / "rel-prop-built.toml", toml_dumps(doc))
    for strategy in ("dockerfile", "commit"):
        out = root / f"out-{strategy}"
        argv = build_argv(recipe, out, "--strategy", strategy, singularity="native")
        code, _, err = run_main(argv, capsys)
        assume(code != 2)  # refused values are the other property's business
        assert code == 0, err
        manifest = json.loads((out / "rel-prop-built" / "manifest.json").read_text())
        config = client.api.inspect_image(manifest["docker_image_id"])["Config"]
        image_env = dict(map(split_env, config["Env"]))
        assert {k: image_env[k] for k in env} == env
        assert config["Labels"]["prop"] == label
        sif = SifImage.open(out / "rel-prop-built" / "rel-prop-built.sif")
        for script in ("env/10-docker2singularity.sh", "env/90-environment.sh"):
            text = (sif.read_file(f"/.singularity.d/{script}") or b"").decode()
            wanted = {k: v for k, v in image_env.items() if k != "PATH" or script[4] == "1"}
            assert dict(parse_exports(text)) == wanted
        labels = json.loads(sif.read_file("/.singularity.d/labels.json") or b"{}")
        assert labels["prop"] == label
