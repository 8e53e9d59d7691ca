"""The metadata Apptainer adds when it builds a SIF from a Docker image: the embedded
definition, the build labels and the ``inspect-metadata.json`` object.

Each follows Apptainer 1.5 (``apptainer build X.sif docker-daemon:NAME:TAG``):

* the definition is ``types.NewDefinitionFromURI`` + ``populateRaw``: a header of
  ``bootstrap`` and ``from``, then an empty line (pkg/build/types/definition.go);
* labels.json is the image's labels with the build labels of ``addBuildLabels`` set over
  them (internal/pkg/build/metadata.go), written by ``json.MarshalIndent(labels, "", "\\t")``;
* ``inspect-metadata.json`` is what ``apptainer inspect --all`` prints for the bundle,
  re-encoded compactly (insertJSONInspectMetadata; cmd/internal/cli/inspect.go).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from typing import Any

from imgforge import gojson
from imgforge.recipes.labels import DEFFILE_LABEL, IMGFORGE_LABEL

# What ``apptainer build X.sif docker-daemon:NAME:TAG`` embeds as the definition.
BOOTSTRAP = "docker-daemon"
# Go's time.Weekday and time.Month names (Apptainer's date label is not localised).
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MONTHS = (
    "January", "February", "March", "April", "May", "June", "July", "August",
    "September", "October", "November", "December",
)  # fmt: skip


def deffile_header(image: str) -> dict[str, str]:
    """The definition header of a build from the Docker engine's image ``image`` (NAME:TAG)."""
    return {"bootstrap": BOOTSTRAP, "from": image}


def build_date(seconds: int) -> str:
    """Apptainer's ``org.label-schema.build-date``: e.g. ``Tuesday_14_November_2023_22:13:20_UTC``
    (no zero padding, local time zone as Go's ``time.Unix`` and ``time.Now`` give it)."""
    local = time.localtime(seconds)
    return (
        f"{WEEKDAYS[local.tm_wday]}_{local.tm_mday}_{MONTHS[local.tm_mon - 1]}_{local.tm_year}_"
        f"{local.tm_hour}:{local.tm_min}:{local.tm_sec}_{local.tm_zone}"
    )


def build_labels(
    *, header: Mapping[str, str], arch: str, built_at: int, version: str
) -> dict[str, str]:
    """The labels a build from a Docker image adds (``addBuildLabels``): no help section,
    and no base name/digest, which Apptainer records only for ``docker://`` sources."""
    labels = {
        "org.label-schema.schema-version": "1.0",
        "org.label-schema.build-date": build_date(built_at),
        IMGFORGE_LABEL: version,
    }
    labels.update({DEFFILE_LABEL + key: value for key, value in header.items()})
    labels["org.label-schema.build-arch"] = arch
    return labels


def labels_json(labels: Mapping[str, str]) -> str:
    """labels.json as Apptainer writes it (tab-indented, sorted, no final newline)."""
    return gojson.dumps(gojson.sorted_map(dict(labels)), indent=True)


# --- inspect-metadata.json -------------------------------------------------------------------

MAIN = ".singularity.d"
APPS = "scif/apps"
# (attribute, file under a metadata directory) in the order inspect's script reads them.
SINGLE_FILES = (
    ("labels", "labels.json"),
    ("deffile", "Singularity"),
    ("helpfile", "runscript.help"),
    ("runscript", "runscript"),
    ("startscript", "startscript"),
    ("test", "test"),
)
# JSON field order of pkg/inspect's Attributes and AppAttributes structs.
ATTRIBUTE_ORDER = (
    "apps", "environment", "labels", "runscript", "test", "helpfile", "deffile", "startscript"
)  # fmt: skip
APP_ATTRIBUTE_ORDER = ("environment", "labels", "runscript", "startscript", "test", "helpfile")


def inspect_value(text: str) -> str:
    """A file as inspect records it: read line by line by its shell script, then
    ``strings.TrimRight(value, "\\n")``."""
    return text.rstrip("\n")


def inspect_labels(text: str) -> dict[str, str]:
    """labels.json as ``json.Unmarshal`` into map[string]string leaves it: nothing if it is
    not a JSON object; a value of another type becomes ""."""
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    if not isinstance(value, dict):
        return {}
    return {str(k): v if isinstance(v, str) else "" for k, v in value.items()}


def is_inspected(path: str) -> bool:
    """Whether ``apptainer inspect --all`` reads the image file at ``path`` (relative to
    the root): one of the metadata files of the image or of a SCIF app."""
    for prefix in (MAIN, *_app_prefix(path)):
        if not path.startswith(prefix + "/"):
            continue
        name = path[len(prefix) + 1 :]
        if name in {file for _, file in SINGLE_FILES} or _is_env_script(name, main=prefix == MAIN):
            return True
    return False


def is_app_directory(path: str) -> bool:
    """Whether ``path`` (a directory) makes a SCIF app: ``scif/apps/NAME/scif``."""
    parts = path.split("/")
    return len(parts) == 4 and "/".join(parts[:2]) == APPS and parts[3] == "scif"


def _app_prefix(path: str) -> list[str]:
    parts = path.split("/")
    if len(parts) > 4 and "/".join(parts[:2]) == APPS and parts[3] == "scif":
        return ["/".join(parts[:4])]
    return []


def _is_env_script(name: str, *, main: bool) -> bool:
    if not name.startswith("env/") or "/" in name[4:] or not name.endswith(".sh"):
        return False
    base = name[4:]
    return (main and base.startswith("10-docker")) or (
        base.startswith("9") and base.endswith("-environment.sh")
    )


def inspect_metadata(files: Mapping[str, str], apps: Iterable[str] = ()) -> bytes:
    """The ``inspect-metadata.json`` object for an image whose metadata files (path from
    the root -> text) are ``files`` and whose SCIF apps (``scif/apps/NAME/scif`` is a
    directory) are ``apps``."""
    app_names = sorted(set(apps))
    attributes: dict[str, Any] = {}
    app_attributes: dict[str, dict[str, Any]] = {name: {} for name in app_names}
    # The image's own directory first, then each app's, as inspect's script reads them.
    for prefix, app in [(MAIN, None)] + [(f"{APPS}/{name}/scif", name) for name in app_names]:
        target = attributes if app is None else app_attributes[app]
        for attribute, name in SINGLE_FILES:
            text = files.get(f"{prefix}/{name}")
            if text is None:
                continue
            if attribute == "labels":
                target["labels"] = inspect_labels(inspect_value(text))
            elif attribute == "deffile":
                # One definition for all: the first one found that is not empty.
                attributes["deffile"] = attributes.get("deffile") or inspect_value(text)
            else:
                target[attribute] = inspect_value(text)
        target["environment"] = {
            "/" + path: inspect_value(text)
            for path, text in files.items()
            if path.startswith(prefix + "/")
            and _is_env_script(path[len(prefix) + 1 :], main=app is None)
        }
    if app_names:
        attributes["apps"] = {
            name: _ordered(app_attributes[name], APP_ATTRIBUTE_ORDER) for name in app_names
        }
    document = {
        "data": {"attributes": _ordered(attributes, ATTRIBUTE_ORDER)},
        "type": "container",
    }
    return gojson.dumps(document).encode("utf-8")


def _ordered(attributes: Mapping[str, Any], order: tuple[str, ...]) -> dict[str, Any]:
    """Fields in struct order, empty ones left out (``omitempty``), maps sorted."""
    result: dict[str, Any] = {}
    for key in order:
        value = attributes.get(key)
        if value:
            result[key] = gojson.sorted_map(value) if isinstance(value, dict) else value
    return result
