"""imgforge.render.deffile, the port of Apptainer's .def parser, against Apptainer's own
test table (tests/data/apptainer-deffile, from pkg/build/types/parser/testdata_good) and
the cases that matter to imgforge: section starts, build variables, %labels trimming."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from imgforge.sif import definition as deffile

TABLE = Path(__file__).parents[1] / "data" / "apptainer-deffile"
CASES = sorted(p.name for p in TABLE.iterdir() if p.is_dir())
SCRIPTS = {
    "help": ("imageData", "imageScripts", "help"),
    "environment": ("imageData", "imageScripts", "environment"),
    "runscript": ("imageData", "imageScripts", "runScript"),
    "startscript": ("imageData", "imageScripts", "startScript"),
    "pre": ("buildData", "buildScripts", "pre"),
    "setup": ("buildData", "buildScripts", "setup"),
    "post": ("buildData", "buildScripts", "post"),
    "test": ("buildData", "buildScripts", "test"),
}


def expected(case: str) -> dict[str, object]:
    data: dict[str, object] = json.loads((TABLE / case / f"{case}.json").read_text())
    return data


def test_the_table_is_there() -> None:
    assert len(CASES) >= 10


@pytest.mark.parametrize("case", CASES)
def test_header_labels_files_and_scripts_match_apptainer(case: str) -> None:
    want = expected(case)
    got = deffile.parse((TABLE / case / case).read_text())
    assert got.header == (want.get("header") or {})
    image_data = want["imageData"]
    assert isinstance(image_data, dict)
    assert got.labels == (image_data.get("labels") or {})
    build_data = want["buildData"]
    assert isinstance(build_data, dict)
    groups = build_data["files"] or []
    files = [(f["source"], f["destination"]) for group in groups for f in group["files"]]
    assert got.files == files
    for name, (top, kind, key) in SCRIPTS.items():
        script = want[top][kind][key]  # type: ignore[index]
        assert got.body(name) == script["script"], name
        args = [s.args for s in got.sections if s.name == name]
        assert (args[-1] if args else "") == script["args"], name


@pytest.mark.parametrize("case", [c for c in CASES if (TABLE / c / f"{c}_sections.json").exists()])
def test_header_token_matches_apptainer(case: str) -> None:
    want = json.loads((TABLE / case / f"{case}_sections.json").read_text())[0]["Header"]
    token, _ = deffile.tokens((TABLE / case / case).read_text())[0]
    assert token == want
