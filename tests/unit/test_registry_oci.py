"""The published SIF's OCI documents: the manifest Apptainer writes, and the index whose
children Apptainer and Docker each resolve to their own artifact."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from imgforge.registry import oci
from imgforge.registry.oci import Descriptor, Platform

LAYER = "sha256:e89ad5f79a1acc7c87e98b28e38c63b1a02759b51d925c67c3967ff06dc13e9f"
IMAGE = "sha256:" + "1" * 64


def test_the_sif_manifest_is_the_one_apptainer_push_writes() -> None:
    """`apptainer push` (1.5.3) of a 792293-byte SIF named psh.sif gave this digest."""
    manifest = oci.sif_manifest(LAYER, 792293, "psh.sif")
    assert oci.digest_of(manifest) == (
        "sha256:fb9eb338dd1fcbf9ec360f9bae947cffc40ca8c2494453cb1f4022724e4a5075"
    )
    assert manifest.startswith(b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image')


@given(st.text(min_size=1), st.integers(min_value=0, max_value=2**53))
def test_the_sif_manifest_names_the_file_and_its_one_layer(title: str, size: int) -> None:
    manifest = json.loads(oci.sif_manifest(LAYER, size, title))
    assert manifest["config"] == {
        "mediaType": oci.SIF_CONFIG,
        "size": 2,
        "digest": oci.digest_of(b"{}"),
    }
    assert manifest["layers"] == [
        {
            "mediaType": oci.SIF_LAYER,
            "size": size,
            "digest": LAYER,
            "annotations": {oci.TITLE: title},
        }
    ]


def test_the_title_is_escaped_as_go_writes_it() -> None:
    assert b'"a\\u003cb\\u0026c\\u003e.sif"' in oci.sif_manifest(LAYER, 1, "a<b&c>.sif")


# What the two clients do with an index, after their sources.
def apptainer_pick(index: dict[str, Any], os: str, arch: str) -> dict[str, Any] | None:
    """go-containerregistry's childByPlatform/matchesPlatform for `apptainer pull oras://`
    (which asks for OS and architecture only): the first child that has them, a child
    without a platform counting as linux/amd64."""
    for child in index["manifests"]:
        platform = child.get("platform") or {"os": "linux", "architecture": "amd64"}
        if (platform["os"], platform["architecture"]) == (os, arch):
            return dict(child)
    return None


def normalised(arch: str, variant: str) -> str:
    """containerd's platform normalisation of a variant (the cases Docker folds)."""
    if arch == "arm64" and variant in ("8", "v8"):
        return ""
    if arch == "amd64" and variant == "v1":
        return ""
    return variant


def docker_pick(index: dict[str, Any], wanted: Platform) -> dict[str, Any] | None:
    """Docker 20.10's filterManifests (containerd's platforms.Only), and newer Docker's,
    which keeps children without a platform but sorts them last: the first child with
    the wanted OS, architecture and (normalised) variant, else one without a platform."""
    variant = normalised(wanted.architecture, wanted.variant)
    unplatformed = None
    for child in index["manifests"]:
        platform = child.get("platform")
        if platform is None:
            unplatformed = unplatformed or dict(child)
            continue
        same = (platform["os"], platform["architecture"]) == (wanted.os, wanted.architecture)
        if same and normalised(platform["architecture"], platform.get("variant", "")) == variant:
            return dict(child)
    return unplatformed


ARCHES = st.sampled_from(["amd64", "arm64", "arm", "ppc64le", "s390x", "riscv64", "386"])
VARIANTS = st.sampled_from(["", "v7", "v8", "v6", "v1", "v2"])
PLATFORMS = st.builds(Platform, st.just("linux"), ARCHES, VARIANTS)


@given(PLATFORMS)
def test_apptainer_takes_the_sif_and_docker_the_image(image: Platform) -> None:
    sif = Descriptor(oci.OCI_MANIFEST, 500, "sha256:" + "5" * 64, oci.sif_platform(image))
    entries = oci.image_entries(oci.DOCKER_MANIFEST, b"{}", IMAGE, image)
    index = json.loads(oci.index(sif, entries))
    assert index["mediaType"] == oci.OCI_INDEX
    assert apptainer_pick(index, image.os, image.architecture) == sif.to_json()
    picked = docker_pick(index, image)
    assert picked is not None and picked["digest"] == IMAGE
    assert picked["platform"] == image.to_json()


def test_a_linux_amd64_sif_has_no_platform_and_others_a_variant_no_engine_asks_for() -> None:
    assert oci.sif_platform(Platform("linux", "amd64")) is None
    assert oci.sif_platform(Platform("linux", "arm64", "v8")) == Platform("linux", "arm64", "sif")
    assert oci.sif_platform(Platform("linux", "amd64", "v2")) == Platform("linux", "amd64", "sif")


@given(st.lists(st.fixed_dictionaries({"digest": st.text(), "size": st.integers()}), max_size=4))
def test_the_children_of_an_index_docker_pushed_follow_the_sif(children: list[Any]) -> None:
    body = json.dumps({"schemaVersion": 2, "manifests": children}).encode()
    entries = oci.image_entries(oci.OCI_INDEX, body, IMAGE, Platform("linux", "amd64"))
    sif = Descriptor(oci.OCI_MANIFEST, 1, "sha256:" + "5" * 64)
    assert json.loads(oci.index(sif, entries))["manifests"] == [sif.to_json(), *children]


@pytest.mark.parametrize(
    ("media_type", "body", "message"),
    [
        ("text/plain", b"{}", "its media type is text/plain"),
        ("", b"{}", "its media type is not given"),
        (oci.OCI_INDEX, b"[]", "an index without a list of manifests"),
        (oci.OCI_INDEX, b'{"manifests": [1]}', "an index without a list of manifests"),
    ],
)
def test_what_is_neither_an_image_manifest_nor_an_index_is_refused(
    media_type: str, body: bytes, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        oci.image_entries(media_type, body, IMAGE, Platform("linux", "amd64"))


def test_the_image_manifest_is_described_with_its_platform() -> None:
    body = b'{"schemaVersion":2}'
    [entry] = oci.image_entries(oci.DOCKER_MANIFEST, body, IMAGE, Platform("linux", "arm", "v7"))
    assert entry == {
        "mediaType": oci.DOCKER_MANIFEST,
        "size": len(body),
        "digest": IMAGE,
        "platform": {"architecture": "arm", "os": "linux", "variant": "v7"},
    }


def test_the_platform_is_read_from_docker_inspect() -> None:
    inspected = {"Os": "linux", "Architecture": "arm64", "Variant": "v8"}
    assert Platform.from_inspect(inspected) == Platform("linux", "arm64", "v8")
    assert Platform.from_inspect({}) == Platform("linux", "amd64", "")
