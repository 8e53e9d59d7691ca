"""A hostile-input corpus: recipe values that try to run ``touch MARKER`` wherever a value
might reach a shell. Each case is refused (exit 2, one line naming the file and the key)
or proven harmless: built for real with both strategies, the image's default command run,
the rendered .def's %environment, the env file and the SIF's env scripts sourced by sh
and bash, the SIF's runscript run, and no marker exists on the host or in any image.

Values that are accepted must also come out byte for byte: in Config.Env and Labels of
both images, in every sourced env script, and in the SIF's env scripts and labels.json.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shlex
import shutil
import subprocess
import tarfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import pytest
from reliability_support import (
    MINI,
    STANDIN,
    build_argv,
    one_error_line,
    run_main,
    toml_dumps,
    write,
)

from imgforge.cli import main
from imgforge.recipes.image import split_env
from imgforge.recipes.model import load
from imgforge.sif.read import SifImage, parse_exports

RUN = uuid.uuid4().hex[:10]
MARKER_PREFIX = f"/tmp/imgforge-pwned-{RUN}-"
CANARY = f"/tmp/imgforge-canary-{RUN}"
STRATEGIES = ("dockerfile", "commit")
SHELLS = ("sh", "bash")


@dataclass(frozen=True)
class Case:
    """``value`` (with ``{m}`` for the marker path) set at ``where`` in a recipe. ``key``:
    refused, with this key in the message; else ``group``: the recipe it is built in."""

    id: str
    where: tuple[str, ...]
    value: Any
    key: str | None = None
    group: str | None = None
    file: str | None = None  # the recipe's own file for this case (imgforge.toml)

    @property
    def marker(self) -> str:
        return f"{MARKER_PREFIX}{CASES.index(self)}"

    def resolved(self, value: Any = None) -> Any:
        value = self.value if value is None else value
        if isinstance(value, str):
            return value.replace("{m}", self.marker)
        if isinstance(value, list):
            return [self.resolved(v) for v in value]
        return value

    @property
    def section(self) -> str:
        return self.where[0]


def refused(id: str, where: tuple[str, ...], value: Any, key: str) -> Case:
    return Case(id, where, value, key=key)


def harmless(id: str, where: tuple[str, ...], value: Any, group: str = "mini") -> Case:
    return Case(id, where, value, group=group)


T = "touch {m}"
CASES: list[Case] = [
    # --- name, tag, base: patterns refuse every shell character.
    refused("name-semicolon", ("name",), f"x;{T}", "name"),
    refused("name-subst", ("name",), "$(touch {m})", "name"),
    refused("name-path", ("name",), "../../etc/cron.d/x", "name"),
    refused("tag-semicolon", ("tag",), f"1.0;{T}", "tag"),
    refused("tag-backticks", ("tag",), "`touch {m}`", "tag"),
    refused("base-space", ("base",), f"{MINI} ; {T}", "base"),
    refused("base-recipe-subst", ("base",), "recipe:$(touch {m})", "base"),
    refused("base-newline", ("base",), f"{MINI}\nRUN {T}", "base"),
    # A regex's $ also matches before a final newline: none may slip through that way.
    refused("name-final-newline", ("name",), "rel-hostile\n", "name"),
    refused("tag-final-newline", ("tag",), "1.0\n", "tag"),
    refused("base-final-newline", ("base",), f"{MINI}\n", "base"),
    refused("apt-final-newline", ("apt", "packages"), ["file\n"], "apt.packages[0]"),
    refused("env-key-final-newline", ("env", "H_KEY\n"), "$(touch {m})", "env.H_KEY\n"),
    refused("label-key-final-newline", ("labels", "k\n"), "x", "labels.k\n"),
    refused("files-value-final-newline", ("files", "app.txt"), "/opt/x\n", "files.app.txt"),
    # --- apt packages: Debian names only (no options, no shell).
    refused("apt-semicolon", ("apt", "packages"), [f"file; {T}"], "apt.packages[0]"),
    refused("apt-subst", ("apt", "packages"), ["$(touch {m})"], "apt.packages[0]"),
    refused(
        "apt-option",
        ("apt", "packages"),
        ["-oAPT::Update::Pre-Invoke::=touch{m}"],
        "apt.packages[0]",
    ),
    # --- pip: PEP 508 requirements, plain relative paths, http(s) URLs.
    refused("pip-semicolon", ("pip", "packages"), [f"six; {T}"], "pip.packages[0]"),
    refused(
        "pip-option", ("pip", "packages"), ["--index-url=http://evil.invalid"], "pip.packages[0]"
    ),
    refused("pip-requirement-option", ("pip", "packages"), ["-r/etc/passwd"], "pip.packages[0]"),
    refused("pip-newline", ("pip", "packages"), [f"six\n{T}"], "pip.packages[0]"),
    refused(
        "pip-requirements-subst",
        ("pip", "requirements"),
        ["$(touch {m}).txt"],
        "pip.requirements[0]",
    ),
    refused(
        "pip-requirements-semicolon", ("pip", "requirements"), [f"r.txt;{T}"], "pip.requirements[0]"
    ),
    refused(
        "pip-index-space", ("pip", "index_url"), "https://x.invalid/ $(touch {m})", "pip.index_url"
    ),
    refused("pip-index-quote", ("pip", "index_url"), f"https://x.invalid/';{T};'", "pip.index_url"),
    refused(
        "pip-index-option", ("pip", "index_url"), "--trusted-host=evil.invalid", "pip.index_url"
    ),
    refused(
        "pip-extra-quote",
        ("pip", "extra_index_urls"),
        ['https://x.invalid/"$(touch {m})"'],
        "pip.extra_index_urls[0]",
    ),
    # --- env: names are shell identifiers; values anything but NUL, CR and LF.
    refused("env-key-semicolon", ("env", f"A;{T}"), "x", "env.A;touch {m}"),
    refused("env-key-subst", ("env", "$(touch {m})"), "x", "env.$(touch {m})"),
    refused("env-value-newline", ("env", "V"), f"x\n{T}", "env.V"),
    refused("env-value-cr", ("env", "V"), f"x\r{T}", "env.V"),
    refused("env-value-nul", ("env", "V"), f"x\0{T}", "env.V"),
    # --- files: plain relative sources inside the directory, plain absolute targets.
    refused("files-key-semicolon", ("files", f"app;{T}"), "/opt/x", "files.app;touch {m}"),
    refused("files-key-parent", ("files", "../outside"), "/opt/x", "files.../outside"),
    refused("files-value-subst", ("files", "app.txt"), "/opt/$(touch {m})", "files.app.txt"),
    refused("files-value-space", ("files", "app.txt"), "/opt/x /tmp/y", "files.app.txt"),
    refused("files-value-relative", ("files", "app.txt"), "opt/x", "files.app.txt"),
    # --- labels: plain keys; values anything but NUL, CR and LF.
    refused("label-key-semicolon", ("labels", f"k;{T}"), "x", "labels.k;touch {m}"),
    refused("label-value-newline", ("labels", "k"), f"x\n{T}", "labels.k"),
    # --- runscript: one line that splits into words; build.*: fixed choices.
    refused("runscript-newline", ("runscript", "command"), f"echo hi\n{T}", "runscript.command"),
    refused(
        "runscript-unclosed",
        ("runscript", "command"),
        "echo 'unclosed $(touch {m})",
        "runscript.command",
    ),
    refused("runscript-empty", ("runscript", "command"), "   ", "runscript.command"),
    refused("build-strategy", ("build", "strategy"), f"commit; {T}", "build.strategy"),
    refused("build-gpus", ("build", "gpus"), f"true; {T}", "build.gpus"),
    refused("unknown-key", ("post",), T, "post"),
    refused("run-unknown-key", ("run", "shell"), T, "run.shell"),
    refused("base-map-key", ("base_map", f"x;{T}"), MINI, "base_map.x;touch {m}"),
    # --- accepted, and harmless: every one must stay a literal string.
    harmless("env-subst", ("env", "H_SUBST"), "$(touch {m})"),
    harmless("env-backticks", ("env", "H_BACKTICKS"), "`touch {m}`"),
    harmless("env-single-quote", ("env", "H_SQUOTE"), f"'; {T}; '"),
    harmless("env-double-quote", ("env", "H_DQUOTE"), f'"; {T}; "'),
    harmless("env-escaped-quote", ("env", "H_ESCQUOTE"), "\\'$(touch {m})\\'"),
    harmless("env-ifs", ("env", "H_IFS"), "${IFS}$(touch${IFS}{m})"),
    harmless("env-def-section", ("env", "H_PERCENT"), f"%post {T}"),
    harmless("env-trailing-backslash", ("env", "H_BACKSLASH"), "x\\"),
    harmless("env-and", ("env", "H_AND"), f"$HOME && {T} #"),
    harmless("env-vertical-space", ("env", "H_VSPACE"), f"a\x0b{T}\x0c;{T}\t"),
    harmless("env-unicode-separators", ("env", "H_USEP"), f"a\u2028{T}\x85;{T}\u2029"),
    harmless("env-dockerfile-escape", ("env", "H_DFESCAPE"), "x\\ntouch {m} \\$HOME \\"),
    harmless("label-subst", ("labels", "h.subst"), "$(touch {m})"),
    harmless("label-quotes", ("labels", "h.quotes"), f'\'"; {T}; echo "'),
    harmless("label-def-section", ("labels", "h.percent"), f"%post {T}"),
    harmless("label-backslash", ("labels", "h.backslash"), "\\"),
    harmless("run-quoted-subst", ("run", "commands"), ["echo '$(touch {m})' > /opt/h-run"]),
    harmless("runscript-subst", ("runscript", "command"), "echo '$(touch {m})'", "rs-subst"),
    harmless("runscript-semicolon", ("runscript", "command"), f"echo hi; {T}", "rs-semicolon"),
    harmless("runscript-backticks", ("runscript", "command"), "echo `touch {m}`", "rs-backticks"),
    harmless(
        "runscript-sh-arg",
        ("runscript", "command"),
        "sh -c 'echo \"$0\"' '$(touch {m})'",
        "rs-sh-arg",
    ),
    harmless(
        "runscript-separator",
        ("runscript", "command"),
        "echo 'a\u2028$(touch {m})'",
        "rs-separator",
    ),
    harmless("files-dash-source", ("files", "-rf"), "/opt/h-files/dash"),
    harmless("files-from-flag", ("files", "--from=imgforge-standin"), "/opt/h-files/from"),
    harmless("files-odd-target", ("files", "odd.txt"), "/opt/h-files/a=b,c@d+e"),
    harmless(
        "pip-marker-subst",
        ("pip", "packages"),
        ['pip ; python_version > "0" and platform_machine != "$(touch {m})"'],
        "pip",
    ),
    harmless(
        "pip-marker-backticks", ("pip", "packages"), ["pip>=0 ; os_name != '`touch {m}`'"], "pip-b"
    ),
    harmless("pip-index-subst", ("pip", "index_url"), "https://x.invalid/$(touch${IFS}{m})", "pip"),
    harmless(
        "pip-extra-backticks",
        ("pip", "extra_index_urls"),
        ["https://x.invalid/`touch${IFS}{m}`;touch${IFS}{m}"],
        "pip",
    ),
    harmless(
        "pip-index-semicolon", ("pip", "index_url"), "https://x.invalid/;touch${IFS}{m}", "pip-b"
    ),
]
GROUPS = sorted({case.group for case in CASES if case.group})


def ids(case: Case) -> str:
    return case.id


def recipe_doc(name: str, base: str) -> dict[str, Any]:
    return {"name": name, "base": base}


def apply(doc: dict[str, Any], case: Case, value: Any = None) -> None:
    """Set ``case``'s value in ``doc`` (lists extend what is there)."""
    *parents, last = [case.resolved(part) for part in case.where]
    target = doc
    for part in parents:
        target = target.setdefault(part, {})
    new = case.resolved(value)
    if isinstance(new, list) and isinstance(target.get(last), list):
        target[last] = [*target[last], *new]
    else:
        target[last] = new


# ------------------------------------------------------------------------- refused


@pytest.mark.parametrize("case", [c for c in CASES if c.key], ids=ids)
def test_refused(case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    recipe = tmp_path / "rel-hostile.toml"
    doc = recipe_doc("rel-hostile", MINI)
    write(tmp_path / "app.txt", "app\n")
    if case.section == "base_map":
        culprit = write(
            tmp_path / "imgforge.toml",
            toml_dumps({"base_map": {case.resolved(case.where[1]): MINI}}),
        )
    else:
        apply(doc, case)
        culprit = recipe
    write(recipe, toml_dumps(doc))
    argv = build_argv(recipe, tmp_path / "out", singularity="native")
    code, out, err = run_main(argv, capsys)
    assert code == 2, (out, err)
    line = one_error_line(err)
    key = case.resolved(case.key)
    shown = key if key.isprintable() else repr(key)[1:-1]  # one line, whatever the key
    assert line.startswith(f"imgforge: error: {culprit}: {shown}: "), line
    assert not (tmp_path / "out").exists()
    assert not Path(case.marker).exists()


def test_the_corpus_is_big_enough() -> None:
    assert len(CASES) >= 40
    assert len({c.id for c in CASES}) == len(CASES)
    assert len([c for c in CASES if c.group]) >= 20


# ------------------------------------------------------------------------- harmless


@dataclass
class Exercised:
    """What one group's recipe became with one strategy, and what running it did."""

    image: dict[str, Any]
    exported: set[str]
    changed: set[str]
    sourced: dict[str, dict[str, str]] = field(default_factory=dict)  # what -> env
    sif_env: dict[str, dict[str, str]] = field(default_factory=dict)  # script -> env
    sif_labels: dict[str, str] = field(default_factory=dict)
    runscript_output: str = ""
    image_output: str = ""
    log: str = ""


def group_recipe(root: Path, group: str) -> Path:
    """The recipe of ``group`` in its own directory, with the files its cases copy."""
    directory = root / group
    base = STANDIN if group.startswith("pip") else MINI
    doc = recipe_doc(f"rel-hostile-{group}", base)
    # A command meant to run: the control that proves the marker checks can see one.
    doc["run"] = {"commands": ["mkdir -p /opt/h-files", f"touch {CANARY}"]}
    for case in CASES:
        if case.group == group:
            apply(doc, case)
            if case.section == "files":
                write(directory / case.where[1], f"content of {case.id}\n")
    return write(directory / f"rel-hostile-{group}.toml", toml_dumps(doc))


def source(shell: str, script: str, cwd: Path) -> dict[str, str]:
    """The environment after ``shell`` sources ``script`` in an empty environment."""
    path = write(cwd / f"source-{uuid.uuid4().hex}.sh", script + '\nenv -0 > "$OUT"\n')
    out = cwd / "env.out"
    subprocess.run(
        ["env", "-i", f"OUT={out}", "PATH=/usr/bin:/bin", shell, str(path)],
        cwd=cwd,
        check=True,
        timeout=30,
        capture_output=True,
    )
    pairs = (entry.partition("=") for entry in out.read_bytes().decode().split("\0") if entry)
    return {name: value for name, _, value in pairs}


def environment_section(deffile: str) -> str:
    return deffile.split("\n%environment\n", 1)[1].split("\n%", 1)[0]


def exercise_image(client: docker.DockerClient, image: str) -> tuple[set[str], set[str], str]:
    """(paths in the image, paths its default command changed, what it printed)."""
    config = client.api.inspect_image(image)["Config"]
    command = None if config.get("Cmd") or config.get("Entrypoint") else ["true"]
    host_config = client.api.create_host_config(network_mode="none")
    container = client.api.create_container(image, command, host_config=host_config)
    try:
        client.api.start(container["Id"])
        client.api.wait(container["Id"], timeout=60)
        output = client.api.logs(container["Id"]).decode("utf-8", "replace")
        changed = {c["Path"] for c in client.api.diff(container["Id"]) or []}
        stream = b"".join(client.api.export(container["Id"]))
    finally:
        client.api.remove_container(container["Id"], force=True)
    with tarfile.open(fileobj=io.BytesIO(stream)) as tar:
        names = {"/" + m.name.strip("./").rstrip("/") for m in tar.getmembers()}
    return names, changed, output


def exercise(
    client: docker.DockerClient, recipe: Path, out: Path, scratch: Path, *, sif: bool
) -> Exercised:
    name = recipe.stem
    directory = out / name
    manifest = json.loads((directory / "manifest.json").read_text())
    image = client.api.inspect_image(manifest["docker_image_id"])
    names, changed, output = exercise_image(client, manifest["docker_image_id"])
    result = Exercised(
        image=image,
        exported=names,
        changed=changed,
        image_output=output,
        log=(directory / "build.log").read_text(),
    )
    env_file = (directory / "imgforge-env.sh").read_text()
    deffile = (directory / f"{name}.def").read_text()
    for shell in SHELLS:
        result.sourced[f"env file ({shell})"] = source(shell, env_file, scratch)
        result.sourced[f".def %environment ({shell})"] = source(
            shell, environment_section(deffile), scratch
        )
    if sif:
        sif_image = SifImage.open(directory / f"{name}.sif")
        for script in ("env/10-docker2singularity.sh", "env/90-environment.sh"):
            text = (sif_image.read_file(f"/.singularity.d/{script}") or b"").decode()
            result.sif_env[script] = dict(parse_exports(text))
            for shell in SHELLS:
                result.sourced[f"SIF {script} ({shell})"] = source(shell, text, scratch)
        labels = sif_image.read_file("/.singularity.d/labels.json") or b"{}"
        result.sif_labels = json.loads(labels)
        runscript = write(
            scratch / "runscript", sif_image.read_file("/.singularity.d/runscript") or b""
        )
        result.runscript_output = subprocess.run(
            ["env", "-i", "PATH=/usr/bin:/bin", "sh", str(runscript)],
            cwd=scratch,
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout
    return result


@pytest.fixture(scope="module")
def exercised(
    tmp_path_factory: pytest.TempPathFactory, mini_image: str, client: docker.DockerClient
) -> Iterator[dict[tuple[str, str], Exercised]]:
    """Every group built with both strategies (a native SIF on the tiny image; the pip
    groups, on the stand-in, without one), then exercised."""
    root = tmp_path_factory.mktemp("hostile")
    scratch = tmp_path_factory.mktemp("hostile-scratch")
    results: dict[tuple[str, str], Exercised] = {}
    for group in GROUPS:
        recipe = group_recipe(root, group)
        for strategy in STRATEGIES:
            out = root / f"out-{strategy}"
            sif = not group.startswith("pip")
            argv = build_argv(
                recipe, out, "--strategy", strategy, singularity="native" if sif else "none"
            )
            assert main(argv) == 0, f"{group} ({strategy}) did not build"
            results[group, strategy] = exercise(client, recipe, out, scratch, sif=sif)
    yield results
    for group in GROUPS:
        with contextlib.suppress(docker.errors.APIError):
            client.api.remove_image(f"rel-hostile-{group}:latest", force=True)


@pytest.mark.integration
def test_the_marker_checks_see_a_command_that_does_run(
    exercised: dict[tuple[str, str], Exercised], tmp_path: Path
) -> None:
    for (group, strategy), result in exercised.items():
        assert CANARY in result.exported, (group, strategy)
    canary = tmp_path / "sourced-canary"
    source("sh", f"export X=$(touch {canary})", tmp_path)  # unquoted: it runs
    assert canary.exists()


@pytest.mark.integration
def test_no_marker_anywhere_on_the_host(exercised: dict[tuple[str, str], Exercised]) -> None:
    assert not list(Path("/tmp").glob(f"imgforge-pwned-{RUN}-*"))


@pytest.mark.integration
@pytest.mark.parametrize("case", [c for c in CASES if c.group], ids=ids)
def test_harmless(case: Case, exercised: dict[tuple[str, str], Exercised]) -> None:
    assert case.group is not None
    assert load_ok(case)
    assert not Path(case.marker).exists(), "the payload ran on the host"
    for strategy in STRATEGIES:
        result = exercised[case.group, strategy]
        where = f"{case.group} ({strategy})"
        assert case.marker not in result.exported, f"the payload ran during the build: {where}"
        assert case.marker not in result.changed, f"the payload ran in the image: {where}"
        check_value(case, result, where)


def load_ok(case: Case) -> bool:
    """The case alone is accepted by the loader (else it would be a 'refused' case)."""
    directory = Path(os.environ.get("TMPDIR", "/tmp")) / f"imgforge-hostile-load-{RUN}"
    shutil.rmtree(directory, ignore_errors=True)
    doc = recipe_doc("rel-hostile", MINI)
    apply(doc, case)
    if case.section == "files":
        write(directory / case.where[1], "x")
    load(write(directory / "rel-hostile.toml", toml_dumps(doc)))
    shutil.rmtree(directory)
    return True


def check_value(case: Case, result: Exercised, where: str) -> None:
    """The accepted value arrives byte for byte wherever it should."""
    config = result.image["Config"]
    if case.section == "env":
        key, value = case.where[1], case.resolved()
        assert dict(map(split_env, config["Env"]))[key] == value, where
        for what, env in {**result.sourced, **result.sif_env}.items():
            assert env.get(key) == value, f"{what}: {where}"
    elif case.section == "labels":
        key, value = case.where[1], case.resolved()
        assert config["Labels"][key] == value, where
        if result.sif_labels:
            assert result.sif_labels[key] == value, where
    elif case.section == "runscript":
        words = shlex.split(case.resolved())
        assert config["Cmd"] == words, where
        if case.id != "runscript-sh-arg":
            expected = " ".join(words[1:])
            assert result.image_output.strip() == expected, where
            assert result.runscript_output.strip() == expected, where
        else:
            assert result.image_output.strip() == words[-1], where
    elif case.section == "files":
        assert (
            case.resolved() in result.exported
            or case.resolved().rstrip("/") + "/" + Path(case.where[1]).name in result.exported
        ), where
    elif case.section == "pip":  # pip got the value as one literal word
        lines = result.log.splitlines()
        if case.where[1] == "packages":
            assert "Requirement already satisfied: pip" in result.log, where
        else:
            value = case.resolved()
            for url in value if isinstance(value, list) else [value]:
                assert any(
                    line.startswith("Looking in indexes: ") and url in line for line in lines
                ), where
