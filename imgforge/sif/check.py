"""Compare a Singularity image with the Docker image it was made from."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from imgforge.recipes.image import ImageConfig
from imgforge.recipes.labels import DEFFILE_LABEL, IMGFORGE_LABEL, is_build_label
from imgforge.sif import runtime_env
from imgforge.sif.assemble import OCI_CONFIG_FIELDS, oci_config
from imgforge.sif.definition import parse
from imgforge.sif.format import SIFFormatError
from imgforge.sif.layout import (
    METADATA_DIR,
    MOUNT_POINTS,
    WRITTEN,
)
from imgforge.sif.metadata import inspect_metadata, is_app_directory, is_inspected
from imgforge.sif.read import SifImage, parse_exports, parse_runscript
from imgforge.sif.texts import Expected

if TYPE_CHECKING:
    from imgforge.sif.runtime import Runtime

ENV_SCRIPTS = ("env/10-docker2singularity.sh", "env/90-environment.sh")
REQUIRED = (
    ".singularity.d/env/99-base.sh",
    ".singularity.d/runscript",
    ".singularity.d/libs",
    "etc/hosts",
    "etc/resolv.conf",
    *MOUNT_POINTS,
)


def _show(value: str | None) -> str:
    return "(unset)" if value is None else repr(value)


def compare_maps(what: str, expected: Mapping[str, str], actual: Mapping[str, str]) -> list[str]:
    """One line per key whose value differs, in key order."""
    return [
        f"{what} {key}: image {_show(expected.get(key))}, SIF {_show(actual.get(key))}"
        for key in sorted(expected.keys() | actual.keys())
        if expected.get(key) != actual.get(key)
    ]


def sif_env(
    image: SifImage, scripts: Iterable[str] = ENV_SCRIPTS
) -> tuple[dict[str, str], list[str]]:
    """The environment the SIF's env ``scripts`` set, sourced in the order given."""
    env: dict[str, str] = {}
    problems = []
    for script in scripts:
        data = image.read_file(f"/.singularity.d/{script}")
        if data is None:
            problems.append(f"file /.singularity.d/{script}: missing")
            continue
        try:
            env.update(parse_exports(data.decode("utf-8")))
        except (ValueError, UnicodeDecodeError) as exc:
            problems.append(f"file /.singularity.d/{script}: {exc}")
    return env, problems


def check_runscript(image: SifImage, config: ImageConfig, body: str) -> list[str]:
    """The runscript runs the image's ENTRYPOINT and CMD, and is ``body`` from its
    ``OCI_ENTRYPOINT=`` line on."""
    data = image.read_file("/.singularity.d/runscript")
    if data is None:
        return ["file /.singularity.d/runscript: missing"]
    expected = (list(config.run_entrypoint()), list(config.cmd))
    text = data.decode("utf-8", "replace")
    actual = parse_runscript(text)
    if actual != expected:
        shown = (
            "an unreadable runscript"
            if actual is None
            else f"ENTRYPOINT {actual[0]}, CMD {actual[1]}"
        )
        return [
            f"runscript: image has ENTRYPOINT {expected[0]}, CMD {expected[1]}; SIF has {shown}"
        ]
    # The --no-eval branch spells the words again: the whole script must be the one for
    # this ENTRYPOINT and CMD.
    found = text[text.index("OCI_ENTRYPOINT=") :].rstrip("\n")
    if found != body.rstrip("\n"):
        return ["runscript: not the Docker-style runscript of the image's ENTRYPOINT and CMD"]
    return []


def check_labels(image: SifImage, config: ImageConfig, fixed: Mapping[str, str]) -> list[str]:
    """labels.json holds the image's labels, with the build labels of a SIF build over
    them (as Apptainer writes them: a build label wins a collision), and nothing else;
    the deffile labels say what the SIF's definition says."""
    data = image.read_file("/.singularity.d/labels.json")
    try:
        labels = json.loads(data or b"")
    except ValueError:
        return ["file /.singularity.d/labels.json: missing or not JSON"]
    if not isinstance(labels, dict):
        return ["file /.singularity.d/labels.json: not a JSON object"]
    found = {k: str(v) for k, v in labels.items()}
    image_labels = {k: v for k, v in config.labels if not is_build_label(k)}
    problems = compare_maps(
        "label", image_labels, {k: v for k, v in found.items() if not is_build_label(k)}
    )
    # build-arch is not compared: Apptainer writes its own host's, whatever the image's.
    return problems + check_deffile(image, found) + check_fixed_files(image, found, fixed)


def check_deffile(image: SifImage, labels: Mapping[str, str]) -> list[str]:
    """The SIF's Deffile object is /.singularity.d/Singularity (Apptainer writes both from
    one text), and the deffile labels are its header."""
    deffile = image.object_text("Deffile")
    if deffile is None:
        return []
    problems = []
    inside = image.read_file("/.singularity.d/Singularity")
    if inside is None or inside.decode("utf-8", "replace") != deffile:
        problems.append("Deffile: the SIF object differs from /.singularity.d/Singularity")
    said = {k: v for k, v in labels.items() if k.startswith(DEFFILE_LABEL)}
    parsed = parse(deffile).header if said else {}
    header = {DEFFILE_LABEL + k: v for k, v in parsed.items()}
    # Other deffile labels are the image's own (a base Apptainer built from a .def).
    return problems + [
        f"label {key}: {_show(said.get(key))}, but the SIF's definition says {_show(value)}"
        for key, value in sorted(header.items())
        if said.get(key) != value
    ]


def check_fixed_files(
    image: SifImage, labels: Mapping[str, str], fixed: Mapping[str, str]
) -> list[str]:
    """In a SIF imgforge wrote itself (it says so in its build labels), the metadata files
    that are the same for every image are exactly imgforge's (``fixed``): the env scripts
    the runtime sources, the action scripts `apptainer test` and old runtimes run, the
    startscript."""
    if IMGFORGE_LABEL not in labels:
        return []
    return [
        f"file /{METADATA_DIR}/{path}: not the one imgforge writes"
        for path, text in fixed.items()
        if image.read_file(f"/{METADATA_DIR}/{path}") != text.encode("utf-8")
    ]


def check_oci_config(image: SifImage, config: ImageConfig) -> list[str]:
    """The SIF's oci-config.json holds the image's OCI config, field by field (a SIF
    without one, as older tools wrote them, has nothing to compare). Fields outside the OCI
    config (Docker's Image, Hostname, ... which Apptainer's own build keeps) are not
    compared."""
    text = image.object_text("GenericJSON", "oci-config.json")
    if text is None:
        return []
    try:
        recorded = json.loads(text)
    except ValueError:
        recorded = None
    if not isinstance(recorded, dict):
        return ["oci-config.json: not a JSON object"]
    expected = json.loads(oci_config(config))
    return [
        f"oci-config.json {key}: image {json.dumps(expected.get(key), ensure_ascii=False)}, "
        f"SIF {json.dumps(recorded.get(key), ensure_ascii=False)}"
        for key in sorted(expected.keys() | (recorded.keys() & OCI_CONFIG_FIELDS))
        if expected.get(key) != recorded.get(key)
    ]


def check_required(names: set[str]) -> list[str]:
    return [f"path /{name}: missing" for name in REQUIRED if name not in names]


def check_inspect(image: SifImage, names: set[str]) -> list[str]:
    """inspect-metadata.json says what ``apptainer inspect --all`` reads from the SIF's
    own metadata files (a SIF without one has nothing to compare)."""
    text = image.object_text("GenericJSON", "inspect-metadata.json")
    if text is None:
        return []
    files = {}
    for name in sorted(n for n in names if is_inspected(n)):
        data = image.read_file("/" + name)
        if data is not None:
            files[name] = data.decode("utf-8", "replace")
    apps = [name.split("/")[2] for name in names if is_app_directory(name)]
    expected = json.loads(inspect_metadata(files, apps))["data"]["attributes"]
    try:
        recorded = json.loads(text)["data"]["attributes"]
    except (ValueError, KeyError, TypeError):
        return ["inspect-metadata.json: not an inspect document"]
    return [
        f"inspect-metadata.json {key}: differs from the SIF's files"
        for key in sorted(expected.keys() | recorded.keys())
        if expected.get(key) != recorded.get(key)
    ]


def shallow(
    image: SifImage, config: ImageConfig, written: Expected, names: set[str] | None = None
) -> list[str]:
    """Env (byte for byte), runscript, labels and imgforge's own files (as ``written``
    says), the OCI config and required paths (``names``: the SIF's paths, when the caller
    has listed them already)."""
    expected_env = {name: value for name, value, _ in config.script_env()}
    problems: list[str] = []
    # Each script must hold the whole Env by itself (90-environment.sh all but PATH, which
    # the runtime completes before sourcing it): %post of a localimage build (and
    # Singularity < 3.6) sources only the 10- file.
    for script in ENV_SCRIPTS:
        env, found = sif_env(image, [script])
        expected = expected_env
        if script == "env/90-environment.sh":
            expected = {k: v for k, v in expected_env.items() if k != "PATH"}
        differences = compare_maps("env", expected, env)
        problems += found or [f"{line} (in /.singularity.d/{script})" for line in differences]
    problems += check_runscript(image, config, written.runscript_body)
    problems += check_labels(image, config, written.fixed)
    problems += check_oci_config(image, config)
    names = image.names() if names is None else names
    problems += check_inspect(image, names)
    problems += check_required(names)
    return problems


def verify_file(path: Path, config: ImageConfig, written: Expected) -> list[str]:
    """:func:`shallow` on the file at ``path``; a malformed file is one problem."""
    try:
        image = SifImage.open(path)
    except (OSError, SIFFormatError) as exc:
        return [f"format: {exc}"]
    return shallow(image, config, written)


def run_compare(
    image: SifImage, names: set[str], config: ImageConfig, runtime: Runtime
) -> list[str]:
    """What the real runtime shows of the SIF: its environment under ``exec --cleanenv``
    (runtime_env's documented differences aside) and the labels ``inspect`` reports (the
    build labels aside). EngineError when the runtime can't run ``env`` in it."""
    scripts = {n for n in names if n.startswith(f"{METADATA_DIR}/env/")}
    more_scripts = any(n.removeprefix(f"{METADATA_DIR}/") not in WRITTEN for n in scripts)
    problems = runtime_env.differences(
        config.env_pairs(), runtime.exec_env(image.path), more_scripts=more_scripts
    )
    labels = runtime.inspect(image.path).get("labels") or {}
    expected = {k: v for k, v in config.labels if not is_build_label(k)}
    present = {k: str(v) for k, v in labels.items() if k in expected}
    found = compare_maps("label", expected, present)
    problems += [f"{line} ({runtime.label} inspect)" for line in found]
    return problems
