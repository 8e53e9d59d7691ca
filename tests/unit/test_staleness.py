"""Staleness without an engine: every reason a recipe rebuilds, and the up-to-date case,
for stale_reason itself and for the no-op fast path on a temporary directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from manifests import BASE_ID, IMAGE_ID, manifest, sif_record

from imgforge.build import fastpath, record
from imgforge.build.inputs import input_record
from imgforge.build.records import Fingerprint
from imgforge.build.staleness import Facts, SifState, stale_reason
from imgforge.options import Options

FINGERPRINT = Fingerprint("r" * 64, "d" * 64, BASE_ID, "dockerfile")
SIF = SifState("proj.sif", "sif", (0, 0))
OTHER = "sha256:" + "2" * 64
PARENT_ID = "sha256:" + "3" * 64


def facts(**changes: object) -> Facts:
    """The facts of an up-to-date recipe, with ``changes`` over them."""
    value = Facts(
        image="proj:latest",
        fingerprint=FINGERPRINT,
        recorded=manifest(),
        image_id=IMAGE_ID,
        sif=SIF,
    )
    return replace(value, **changes)  # type: ignore[arg-type]


CASES: dict[str, tuple[Facts, str | None]] = {
    "up to date": (facts(), None),
    "up to date, no SIF wanted": (facts(sif=None, recorded=manifest(sif=None)), None),
    "--force": (facts(force=True), "--force"),
    "interactive": (facts(interactive=True), "interactive session"),
    "parent rebuilds": (facts(parents_rebuilding=("a", "b")), "parent a, b rebuilds"),
    "no manifest": (facts(recorded=None), "no manifest"),
    "recipe changed": (
        facts(fingerprint=replace(FINGERPRINT, recipe="x")),
        "recipe or its files changed",
    ),
    "rendered changed": (
        facts(fingerprint=replace(FINGERPRINT, rendered="x")),
        "rendered Dockerfile/.def changed",
    ),
    "base changed": (
        facts(fingerprint=replace(FINGERPRINT, base_image_id=OTHER)),
        "base image changed",
    ),
    "strategy changed": (
        facts(fingerprint=replace(FINGERPRINT, strategy="commit")),
        "build strategy changed",
    ),
    "image missing": (facts(image_id=None), "image proj:latest is missing"),
    "image not recorded": (facts(image_id=OTHER), "image proj:latest is not the one recorded"),
    "no SIF recorded": (facts(recorded=manifest(sif=None)), "no sif recorded"),
    "SIF of another format": (facts(sif=replace(SIF, format="simg")), "no simg recorded"),
    "SIF missing": (facts(sif=replace(SIF, stat=None)), "proj.sif is missing"),
    "SIF changed": (facts(sif=replace(SIF, stat=(1, 0))), "proj.sif changed since it was built"),
    "SIF from another image": (
        facts(recorded=manifest(sif=sif_record(docker_image_id=OTHER))),
        "proj.sif was made from another image",
    ),
    "SIF of another compression": (
        facts(sif=replace(SIF, compression="xz")),
        "proj.sif was compressed with gzip, not xz",
    ),
    "SIF of the same compression": (facts(sif=replace(SIF, compression="gzip")), None),
}


@pytest.mark.parametrize("case", list(CASES))
def test_stale_reason(case: str) -> None:
    given, reason = CASES[case]
    assert stale_reason(given) == reason


def test_the_first_reason_wins() -> None:
    assert stale_reason(facts(force=True, recorded=None, image_id=None)) == "--force"
    assert stale_reason(facts(recorded=None, image_id=None)) == "no manifest"


def test_sif_state_is_read_by_stat(tmp_path: Path) -> None:
    assert SifState.of(tmp_path / "x.sif", "sif") == SifState("x.sif", "sif", None)
    (tmp_path / "x.sif").write_bytes(b"12345")
    state = SifState.of(tmp_path / "x.sif", "sif")
    assert state.stat == (5, (tmp_path / "x.sif").stat().st_mtime_ns)


# --- the manifest record ------------------------------------------------------------------------


def test_manifest_round_trips_with_todays_keys_and_format(tmp_path: Path) -> None:
    path = tmp_path / "manifest.json"
    value = manifest()
    record.write(path, value)
    text = path.read_text()
    data = json.loads(text)
    assert text == json.dumps(data, indent=2, sort_keys=True) + "\n"
    assert data["checksum"] == record.checksum(data)
    assert data["sif"]["docker_image_id"] == IMAGE_ID
    assert data["base"] == {"ref": "ubuntu:22.04", "resolved": "ubuntu:22.04", "image_id": BASE_ID}
    assert "commit" not in data and "push" not in data and "saved" not in data
    assert record.read(path) == value


@pytest.mark.parametrize(
    "edit",
    [
        lambda d: {**d, "fingerprint": "x"},
        lambda d: {**d, "sif": [1]},
        lambda d: {**d, "docker_image_id": 42},
        lambda d: {**d, "inputs": {"options": "x"}},
        lambda d: [d],
    ],
)
def test_a_manifest_of_the_wrong_shape_reads_as_none(tmp_path: Path, edit: object) -> None:
    path = tmp_path / "manifest.json"
    data = manifest().to_json()
    changed = edit(data)  # type: ignore[operator]
    path.write_text(json.dumps(changed))  # no checksum: only the shape is checked
    assert record.read(path) is None


@pytest.mark.parametrize("key", ["timings", "env", "built_at", "tools", "imgforge_version"])
@pytest.mark.parametrize("how", ["missing", "malformed"])
def test_what_only_informs_may_be_missing_or_malformed(
    tmp_path: Path, key: str, how: str
) -> None:
    """A manifest from an older imgforge (no timings, say) still counts: the recipe is not
    rebuilt for a field that decides nothing."""
    path = tmp_path / "manifest.json"
    data = manifest().to_json()
    if how == "missing":
        del data[key]
    else:
        data[key] = {"total_seconds": True} if key == "timings" else 7
    path.write_text(json.dumps({**data, "checksum": record.checksum(data)}))
    found = record.read(path)
    assert found is not None
    assert (found.docker_image_id, found.fingerprint) == (IMAGE_ID, manifest().fingerprint)


def test_an_edited_manifest_reads_as_none(tmp_path: Path) -> None:
    path = tmp_path / "manifest.json"
    record.write(path, manifest())
    path.write_text(path.read_text().replace("proj:latest", "proj:other"))
    assert record.read(path) is None
    path.write_text("{not json")
    assert record.read(path) is None
    assert record.read(tmp_path / "missing.json") is None


# --- the no-op fast path on a temporary directory -----------------------------------------------


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Options]:
    """Recipes ``parent`` and ``proj`` (based on it) with up-to-date manifests, and an
    engine (faked) that holds exactly the recorded images."""
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    (recipes / "data.txt").write_text("data\n")
    (recipes / "parent.toml").write_text('base = "ubuntu:22.04"\n')
    (recipes / "proj.toml").write_text(
        'base = "recipe:parent"\n[files]\n"data.txt" = "/data.txt"\n'
    )
    options = Options(out=tmp_path / "out", singularity="none")
    parent_id = PARENT_ID
    parent_fp = Fingerprint("p" * 64, "q" * 64, BASE_ID, "dockerfile")
    write_manifest(recipes / "parent.toml", options, recipe="parent", image="parent:latest",
                   docker_image_id=parent_id, fingerprint=parent_fp)  # fmt: skip
    write_manifest(
        recipes / "proj.toml",
        options,
        base=record.BaseRecord("recipe:parent", "parent:latest", parent_id),
        fingerprint=replace(FINGERPRINT, base_image_id=parent_id),
        files=["data.txt"],
    )
    engine = {"parent:latest": parent_id, "proj:latest": IMAGE_ID, "ubuntu:22.04": BASE_ID}
    monkeypatch.setenv("DOCKER_HOST", "unix:///fake.sock")
    monkeypatch.setattr(fastpath, "image_ids", lambda sock, refs: {r: engine.get(r) for r in refs})
    return recipes, options


def write_manifest(
    path: Path, options: Options, *, files: list[str] | None = None, **changes: object
) -> None:
    inputs = input_record(path, requirements=[], files=files or [], options=options)
    name = str(changes.get("recipe", "proj"))
    value = replace(manifest(sif=None, recipe_file=str(path), inputs=inputs), **changes)  # type: ignore[arg-type]
    record.write(options.out.absolute() / name / "manifest.json", value)


def test_fast_path_up_to_date(project: tuple[Path, Options]) -> None:
    recipes, options = project
    assert fastpath.up_to_date([recipes / "proj.toml"], options) == ["parent:latest", "proj:latest"]


def test_fast_path_declines_for_every_reason_to_rebuild(
    project: tuple[Path, Options], monkeypatch: pytest.MonkeyPatch
) -> None:
    recipes, options = project
    target = [recipes / "proj.toml"]
    assert fastpath.up_to_date(target, replace(options, force=True)) is None
    assert fastpath.up_to_date(target, replace(options, interactive="proj")) is None
    assert fastpath.up_to_date(target, replace(options, strategy="commit")) is None
    assert fastpath.up_to_date(target, replace(options, singularity="auto")) is None  # no SIF
    assert fastpath.up_to_date(target, replace(options, out=options.out / "x")) is None
    data = recipes / "data.txt"
    os.utime(data, ns=(data.stat().st_atime_ns, data.stat().st_mtime_ns + 10**9))
    assert fastpath.up_to_date(target, options) is None  # an input touched: full path decides


@pytest.mark.parametrize(
    "change",
    [
        "nothing",
        "no manifest",
        "edited",
        "image missing",
        "image not recorded",
        "parent changed",
        "record of another recipe",
        "base changed",
        "base missing",
    ],
)
def test_fast_path_declines_when_the_record_or_engine_disagree(
    project: tuple[Path, Options], monkeypatch: pytest.MonkeyPatch, change: str
) -> None:
    recipes, options = project
    out = options.out.absolute()
    engine = {"parent:latest": PARENT_ID, "proj:latest": IMAGE_ID, "ubuntu:22.04": BASE_ID}
    if change == "nothing":
        pass
    elif change == "no manifest":
        (out / "proj" / "manifest.json").unlink()
    elif change == "edited":
        path = out / "proj" / "manifest.json"
        path.write_text(path.read_text().replace("dockerfile", "commit"))
    elif change == "image missing":
        del engine["proj:latest"]
    elif change == "image not recorded":
        engine["proj:latest"] = OTHER
    elif change == "parent changed":  # the parent's tag moved: both would rebuild
        engine["parent:latest"] = OTHER
    elif change == "record of another recipe":  # checksum valid, names another image
        path = out / "proj" / "manifest.json"
        forged = replace(record.read(path), image="decoy:1")  # type: ignore[arg-type]
        record.write(path, forged)
        engine["decoy:1"] = IMAGE_ID
    elif change == "base changed":  # the parent's base is not the one it was built on
        engine["ubuntu:22.04"] = OTHER
    else:
        del engine["ubuntu:22.04"]
    monkeypatch.setattr(fastpath, "image_ids", lambda sock, refs: {r: engine.get(r) for r in refs})
    expected = ["parent:latest", "proj:latest"] if change == "nothing" else None
    assert fastpath.up_to_date([recipes / "proj.toml"], options) == expected


def test_fast_path_imports_nothing_heavy(project: tuple[Path, Options]) -> None:
    """The no-op path runs before any heavy import: checked in a fresh interpreter."""
    recipes, options = project
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from imgforge.build.fastpath import up_to_date\n"
        "from imgforge.options import Options\n"
        f"target = Path({str(recipes / 'proj.toml')!r})\n"
        f"up_to_date([target], Options(out=Path({str(options.out)!r})))\n"
        "heavy = {'pydantic', 'docker', 'jinja2', 'networkx', 'rich', 'spython'}\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_the_input_record_sees_an_edit_through_a_symbolic_link(
    project: tuple[Path, Options], tmp_path: Path
) -> None:
    """A recipe named through a link: editing the file it names changes the record the
    fast path compares, so the full path decides."""
    recipes, options = project
    real = tmp_path / "real.toml"
    real.write_text('base = "ubuntu:22.04"\n')
    link = recipes / "linked.toml"
    link.symlink_to(real)
    before = input_record(link, requirements=[], files=[], options=options)
    real.write_text('base = "ubuntu:22.04"\n[env]\nV = "2"\n')
    assert input_record(link, requirements=[], files=[], options=options) != before


def test_an_absurdly_deep_manifest_reads_as_none(tmp_path: Path) -> None:
    path = tmp_path / "manifest.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    assert record.read(path) is None


def test_fast_path_declines_when_the_parent_now_has_another_tag(
    project: tuple[Path, Options], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The parent rebuilt alone under a new tag, the old tag still in the engine: the child
    was built on the old one and must rebuild, which only the full path does."""
    recipes, options = project
    (recipes / "parent.toml").write_text('tag = "2"\nbase = "ubuntu:22.04"\n')
    parent_fp = Fingerprint("p" * 64, "q" * 64, BASE_ID, "dockerfile")
    write_manifest(recipes / "parent.toml", options, recipe="parent", image="parent:2",
                   docker_image_id=OTHER, fingerprint=parent_fp)  # fmt: skip
    engine = {"parent:latest": PARENT_ID, "parent:2": OTHER, "proj:latest": IMAGE_ID,
              "ubuntu:22.04": BASE_ID}  # fmt: skip
    monkeypatch.setattr(fastpath, "image_ids", lambda sock, refs: {r: engine.get(r) for r in refs})
    assert fastpath.up_to_date([recipes / "parent.toml"], options) == ["parent:2"]
    assert fastpath.up_to_date([recipes / "proj.toml"], options) is None


@pytest.mark.parametrize(
    "forged",
    [
        {"image": "parent:other"},
        {"base": record.BaseRecord("ubuntu:20.04", "ubuntu:22.04", BASE_ID)},
    ],
)
def test_fast_path_declines_a_record_of_another_tag_or_base(
    project: tuple[Path, Options], monkeypatch: pytest.MonkeyPatch, forged: dict[str, object]
) -> None:
    recipes, options = project
    path = options.out.absolute() / "parent" / "manifest.json"
    record.write(path, replace(record.read(path), **forged))  # type: ignore[arg-type]
    engine = {"parent:latest": PARENT_ID, "proj:latest": IMAGE_ID, "parent:other": PARENT_ID,
              "ubuntu:22.04": BASE_ID}  # fmt: skip
    monkeypatch.setattr(fastpath, "image_ids", lambda sock, refs: {r: engine.get(r) for r in refs})
    assert fastpath.up_to_date([recipes / "parent.toml"], options) is None


def test_numbers_beyond_any_float_and_nesting_too_deep_to_re_encode(tmp_path: Path) -> None:
    path = tmp_path / "manifest.json"
    data = manifest().to_json()
    data["timings"] = {"total_seconds": 10**400, "docker_build_seconds": 1}
    path.write_text(json.dumps({**data, "checksum": record.checksum(data)}))
    assert record.read(path) is not None  # timings only inform
    data = {**manifest().to_json(), "sif": {**sif_record().to_json(), "seconds": 10**400}}
    path.write_text(json.dumps({**data, "checksum": "x"}))
    assert record.read(path) is None
    for depth in range(970, 1000, 3):  # loads succeeds, re-encoding for the checksum may not
        body = json.dumps(manifest().to_json())[:-1] + ', "zz": ' + "[" * depth + "]" * depth
        path.write_text(body + ', "checksum": "x"}')
        assert record.read(path) is None
