"""--push for the SIF, without a registry: what is recorded, when it is still to do, and
how a registry's refusal reads."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import requests
from manifests import manifest, sif_record

from imgforge.build import record
from imgforge.build.records import PushRecord
from imgforge.build.sifpush import needs_sif_push, push_sif
from imgforge.errors import BuildError
from imgforge.log import Lines
from imgforge.registry.errors import http_failure

PUSHED = PushRecord(
    "localhost:5000", "localhost:5000/proj:latest", "sha256:d", "localhost:5000/proj@sha256:d"
)
WITH_SIF = replace(PUSHED, sif_digest="sha256:s", index_digest="sha256:i")


def test_a_push_record_without_the_sif_keys_reads_and_writes_as_before() -> None:
    old = PUSHED.to_json()
    assert set(old) == {"registry", "reference", "digest", "by_digest"}
    assert PushRecord.from_json(old) == PUSHED
    assert PushRecord.from_json(WITH_SIF.to_json()) == WITH_SIF
    assert WITH_SIF.to_json()["sif_digest"] == "sha256:s"
    assert PUSHED.repository == "localhost:5000/proj"


def test_a_manifest_records_the_sif_push(tmp_path: Path) -> None:
    path = tmp_path / "manifest.json"
    record.write(path, manifest(push=WITH_SIF))
    assert record.read(path) == manifest(push=WITH_SIF)
    assert json.loads(path.read_text())["push"]["index_digest"] == "sha256:i"


def test_a_malformed_sif_digest_makes_the_record_unreadable(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        PushRecord.from_json({**PUSHED.to_json(), "sif_digest": 7, "index_digest": "x"})


@pytest.mark.parametrize(
    ("push", "sif", "singularity", "needed"),
    [
        (PUSHED, sif_record(), "auto", True),
        (WITH_SIF, sif_record(), "auto", False),
        (None, sif_record(), "auto", False),
        (PUSHED, None, "auto", False),
        (PUSHED, sif_record(format="simg"), "auto", False),
        (PUSHED, sif_record(), "none", False),
    ],
)
def test_an_up_to_date_sif_is_published_where_the_record_lacks_it(
    push: PushRecord | None, sif: Any, singularity: str, needed: bool
) -> None:
    assert needs_sif_push(push, sif, singularity=singularity) is needed


def job(tmp_path: Path) -> Any:
    return SimpleNamespace(
        recipe=SimpleNamespace(path=tmp_path / "proj.toml", tag="latest"),
        artifacts=SimpleNamespace(image_file=tmp_path / "proj.sif"),
    )


def test_without_a_push_or_a_sif_nothing_is_published(tmp_path: Path) -> None:
    log = Lines()
    assert push_sif(job(tmp_path), None, tmp_path, sif_record(), inspected={}, log=log) is None
    assert push_sif(job(tmp_path), PUSHED, None, None, inspected={}, log=log) == PUSHED
    simg = sif_record(format="simg", path="proj.simg")
    assert push_sif(job(tmp_path), PUSHED, tmp_path, simg, inspected={}, log=log) == PUSHED
    assert log == ["--push: proj.simg is not a SIF; only the image is published"]


def test_a_failure_names_the_recipe_the_key_and_the_reference(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refused(*args: object, **kwargs: object) -> None:
        raise BuildError("cannot reach localhost:5000 (Connection refused)")

    monkeypatch.setattr("imgforge.build.sifpush.connect", refused)
    monkeypatch.delenv("IMGFORGE_REGISTRY_USER", raising=False)
    with pytest.raises(BuildError) as raised:
        push_sif(job(tmp_path), PUSHED, tmp_path, sif_record(), inspected={}, log=Lines())
    assert str(raised.value) == (
        f"{tmp_path}/proj.toml: push: publishing the SIF as localhost:5000/proj:latest "
        "failed: cannot reach localhost:5000 (Connection refused)"
    )


def response(status: int, body: object) -> requests.Response:
    answer = requests.Response()
    answer.status_code = status
    answer.reason = "Whatever"
    answer._content = json.dumps(body).encode()
    return answer


@pytest.mark.parametrize(
    ("status", "body", "message"),
    [
        (
            401,
            {"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]},
            "r:5000 refused the upload (HTTP 401 UNAUTHORIZED: authentication required); "
            "credentials come from IMGFORGE_REGISTRY_USER and IMGFORGE_REGISTRY_PASSWORD, "
            "NGC_API_KEY for nvcr.io, or docker login",
        ),
        (
            400,
            {"errors": [{"code": "DIGEST_INVALID", "message": "x"}, {"code": "SIZE_INVALID"}]},
            "r:5000 refused the upload (HTTP 400 DIGEST_INVALID: x; SIZE_INVALID)",
        ),
        (500, "not an error list", "r:5000 refused the upload (HTTP 500 Whatever)"),
    ],
)
def test_a_refusal_says_the_status_and_the_registry_s_words(
    status: int, body: object, message: str
) -> None:
    assert str(http_failure("r:5000", "the upload", response(status, body))) == message
