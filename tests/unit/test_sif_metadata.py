"""The metadata of a SIF built from a Docker image, as Apptainer 1.5 writes it: Go JSON
text, build labels, the embedded definition, inspect-metadata.json and oci-config.json."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imgforge import __version__, gojson
from imgforge.recipes.image import ImageConfig
from imgforge.recipes.labels import is_build_label
from imgforge.sif import definition as deffile
from imgforge.sif import metadata
from imgforge.sif.assemble import oci_config

# --- Go's encoding/json -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ({"a": "<b> & c"}, '{"a":"\\u003cb\\u003e \\u0026 c"}'),
        ({"s": "\u2028\u2029"}, '{"s":"\\u2028\\u2029"}'),
        ({"c": '\x00\x1b\x7f\b\f\n\r\t"\\'}, '{"c":"\\u0000\\u001b\x7f\\b\\f\\n\\r\\t\\"\\\\"}'),
        ({"u": "héllo ✓ 日本"}, '{"u":"héllo ✓ 日本"}'),
        ({"e": {}, "l": []}, '{"e":{},"l":[]}'),
    ],
)
def test_go_json_escapes(value: object, text: str) -> None:
    assert gojson.dumps(value) == text


def test_go_json_indent_is_marshal_indent_with_a_tab() -> None:
    assert gojson.dumps({"a": "1", "b": {}}, indent=True) == '{\n\t"a": "1",\n\t"b": {}\n}'
    assert gojson.dumps({}, indent=True) == "{}"


@given(st.dictionaries(st.text(), st.text()))
def test_go_json_reads_back_as_the_same_value(value: dict[str, str]) -> None:
    assert json.loads(gojson.dumps(value)) == value
    assert json.loads(gojson.dumps(value, indent=True)) == value


# --- build labels and the definition ------------------------------------------------------------


@pytest.fixture
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (1700000000, "Tuesday_14_November_2023_22:13:20_UTC"),
        (0, "Thursday_1_January_1970_0:0:0_UTC"),
        (1709251205, "Friday_1_March_2024_0:0:5_UTC"),
    ],
)
def test_build_date_is_apptainers_format(utc: None, seconds: int, text: str) -> None:
    assert metadata.build_date(seconds) == text


def test_build_date_uses_the_local_time_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "Europe/Berlin")
    time.tzset()
    try:
        assert metadata.build_date(1700000000) == "Tuesday_14_November_2023_23:13:20_CET"
    finally:
        monkeypatch.undo()
        time.tzset()


def test_build_labels(utc: None) -> None:
    header = metadata.deffile_header("proj:1.0")
    assert header == {"bootstrap": "docker-daemon", "from": "proj:1.0"}
    labels = metadata.build_labels(
        header=header, arch="arm64", built_at=1700000000, version=__version__
    )
    assert labels == {
        "org.label-schema.schema-version": "1.0",
        "org.label-schema.build-date": "Tuesday_14_November_2023_22:13:20_UTC",
        "org.label-schema.usage.imgforge.version": __version__,
        "org.label-schema.usage.singularity.deffile.bootstrap": "docker-daemon",
        "org.label-schema.usage.singularity.deffile.from": "proj:1.0",
        "org.label-schema.build-arch": "arm64",
    }
    for key in metadata.build_labels(header=header, arch="amd64", built_at=0, version="1"):
        assert is_build_label(key), key
    assert is_build_label("org.label-schema.usage.apptainer.version")
    assert not is_build_label("org.label-schema.vendor")
    assert not is_build_label("com.nvidia.cuda.version")


def test_the_deffile_labels_come_from_the_header_as_apptainer_parses_it() -> None:
    text = "Bootstrap: docker\nFrom:  ubuntu:22.04 \n# comment: x\n\n%post\n    a: b\n"
    assert deffile.parse(text).header == {"bootstrap": "docker", "from": "ubuntu:22.04"}
    assert deffile.parse("bootstrap: docker-daemon\nfrom: a:b\n\n").header == {
        "bootstrap": "docker-daemon",
        "from": "a:b",
    }


def test_labels_json_is_marshal_indent_without_a_newline() -> None:
    assert metadata.labels_json({"b": "2", "a": "<1>"}) == (
        '{\n\t"a": "\\u003c1\\u003e",\n\t"b": "2"\n}'
    )


# --- inspect-metadata.json ----------------------------------------------------------------------

FILES = {
    ".singularity.d/labels.json": '{\n\t"a": "1"\n}',
    ".singularity.d/Singularity": "bootstrap: docker-daemon\nfrom: p:1\n\n",
    ".singularity.d/runscript": "#!/bin/sh\nexec x\n",
    ".singularity.d/startscript": "#!/bin/sh\n",
    ".singularity.d/env/10-docker2singularity.sh": "#!/bin/sh\nexport A='1'\n",
    ".singularity.d/env/90-environment.sh": "#!/bin/sh\n# nothing\n",
    ".singularity.d/env/01-base.sh": "#!/bin/sh\n",
    ".singularity.d/env/99-base.sh": "#!/bin/sh\n",
}


def test_inspect_metadata_of_imgforges_files() -> None:
    document = metadata.inspect_metadata(FILES)
    assert document == (
        b'{"data":{"attributes":{"environment":{'
        b'"/.singularity.d/env/10-docker2singularity.sh":"#!/bin/sh\\nexport A=\'1\'",'
        b'"/.singularity.d/env/90-environment.sh":"#!/bin/sh\\n# nothing"},'
        b'"labels":{"a":"1"},"runscript":"#!/bin/sh\\nexec x",'
        b'"deffile":"bootstrap: docker-daemon\\nfrom: p:1","startscript":"#!/bin/sh"}},'
        b'"type":"container"}'
    )


def test_inspect_metadata_reads_the_images_own_files_and_apps() -> None:
    files = {
        **FILES,
        ".singularity.d/runscript.help": "Usage: x\n\n",
        ".singularity.d/test": "#!/bin/sh\ntrue\n",
        ".singularity.d/env/10-docker.sh": "old\n",
        ".singularity.d/env/91-environment.sh": "export B=2",
        ".singularity.d/env/94-appsbase.sh": "not read\n",
        "scif/apps/foo/scif/labels.json": '{"x": "<y>", "n": 3}',
        "scif/apps/foo/scif/runscript": "foo\n",
        "scif/apps/foo/scif/env/90-environment.sh": "export F=1\n",
        "scif/apps/foo/scif/env/10-docker.sh": "not read for an app\n",
        "scif/apps/foo/scif/Singularity": "not the deffile\n",
    }
    document = json.loads(metadata.inspect_metadata(files, ["foo", "bar"]))
    attributes = document["data"]["attributes"]
    assert list(attributes) == [
        "apps", "environment", "labels", "runscript", "test", "helpfile", "deffile",
        "startscript",
    ]  # fmt: skip
    assert attributes["apps"] == {
        "bar": {},
        "foo": {
            "environment": {"/scif/apps/foo/scif/env/90-environment.sh": "export F=1"},
            "labels": {"n": "", "x": "<y>"},
            "runscript": "foo",
        },
    }
    assert attributes["helpfile"] == "Usage: x"
    assert attributes["test"] == "#!/bin/sh\ntrue"
    assert attributes["deffile"] == "bootstrap: docker-daemon\nfrom: p:1"
    assert sorted(attributes["environment"]) == [
        "/.singularity.d/env/10-docker.sh",
        "/.singularity.d/env/10-docker2singularity.sh",
        "/.singularity.d/env/90-environment.sh",
        "/.singularity.d/env/91-environment.sh",
    ]


@pytest.mark.parametrize(
    ("path", "inspected"),
    [
        (".singularity.d/labels.json", True),
        (".singularity.d/runscript.help", True),
        (".singularity.d/env/10-docker.sh", True),
        (".singularity.d/env/9-environment.sh", True),
        (".singularity.d/env/95-apps.sh", False),
        (".singularity.d/env/01-base.sh", False),
        (".singularity.d/env/x/91-environment.sh", False),
        (".singularity.d/actions/run", False),
        ("scif/apps/a/scif/runscript", True),
        ("scif/apps/a/scif/env/91-environment.sh", True),
        ("scif/apps/a/scif/env/10-docker.sh", False),
        ("scif/apps/a/runscript", False),
        ("etc/labels.json", False),
    ],
)
def test_is_inspected(path: str, inspected: bool) -> None:
    assert metadata.is_inspected(path) is inspected


SH = shutil.which("dash") or shutil.which("sh")


@pytest.mark.skipif(SH is None, reason="needs a POSIX shell")
@settings(max_examples=200, deadline=None)
@given(st.text(st.characters(blacklist_characters="\0", blacklist_categories=("Cs",))))
def test_inspect_value_is_a_shell_read_loop_then_trim_right(
    tmp_path_factory: pytest.TempPathFactory, text: str
) -> None:
    """inspect prints a file line by line with ``read -r`` (newline the only separator)
    and trims trailing newlines from what it read: the same as ``rstrip("\\n")``."""
    path = tmp_path_factory.mktemp("inspect") / "file"
    path.write_bytes(text.encode("utf-8"))
    script = (
        'nl="\n"; while IFS="$nl" read -r line; do printf "%s\\n" "$line"; done < "$1"; '
        '[ -n "$line" ] && printf "%s\\n" "$line"; true'
    )
    assert SH is not None
    out = subprocess.run([SH, "-c", script, "sh", str(path)], capture_output=True, check=True)
    assert metadata.inspect_value(text) == out.stdout.decode("utf-8").rstrip("\n")


# --- oci-config.json ----------------------------------------------------------------------------


def test_oci_config_is_the_oci_config_object_in_go_containerregistry_order() -> None:
    config = ImageConfig(
        env=("PATH=/bin", "A=<&>"),
        entrypoint=("/e",),
        cmd=("c",),
        workdir="/w",
        labels=(("z", "1"), ("a", "2")),
        user="u",
        volumes=("/v2", "/v1"),
        exposed_ports=("80/tcp",),
        stop_signal="SIGINT",
        args_escaped=True,
    )
    assert oci_config(config) == (
        b'{"Cmd":["c"],"Entrypoint":["/e"],"Env":["PATH=/bin","A=\\u003c\\u0026\\u003e"],'
        b'"Labels":{"a":"2","z":"1"},"User":"u","Volumes":{"/v1":{},"/v2":{}},'
        b'"WorkingDir":"/w","ExposedPorts":{"80/tcp":{}},"ArgsEscaped":true,'
        b'"StopSignal":"SIGINT"}'
    )
    assert oci_config(ImageConfig()) == b"{}"


def test_image_config_reads_the_rest_of_the_oci_config() -> None:
    config = ImageConfig.from_inspect(
        {
            "Architecture": "arm64",
            "Config": {
                "Volumes": {"/data": {}, "/cache": {}},
                "ExposedPorts": {"8080/tcp": {}},
                "StopSignal": "SIGTERM",
                "ArgsEscaped": True,
                "Healthcheck": {"Test": ["CMD", "true"]},
                "OnBuild": ["RUN x"],
                "Shell": ["/bin/bash", "-c"],
            },
        }
    )
    assert (config.volumes, config.exposed_ports) == (("/cache", "/data"), ("8080/tcp",))
    assert (config.stop_signal, config.args_escaped, config.arch) == ("SIGTERM", True, "arm64")


def test_umask_is_read_without_changing_it(tmp_path: Path) -> None:
    from imgforge.atomic import umask

    old = os.umask(0o027)
    try:
        assert umask() == 0o027
        assert umask() == 0o027
    finally:
        os.umask(old)
