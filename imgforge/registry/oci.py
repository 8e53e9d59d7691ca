"""The OCI documents of a published SIF: its artifact manifest, byte for byte the one
``apptainer push`` writes, and the index that puts it beside the image at one tag."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from imgforge import gojson

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MANIFESTS = (OCI_MANIFEST, DOCKER_MANIFEST)
INDEXES = (OCI_INDEX, DOCKER_LIST)
# Apptainer's (internal/pkg/client/oras/image.go, layer.go): an empty JSON config and the
# SIF file as the one layer, titled with the file's name.
SIF_CONFIG = "application/vnd.sylabs.sif.config.v1+json"
SIF_LAYER = "application/vnd.sylabs.sif.layer.v1.sif"
EMPTY_CONFIG = b"{}"
TITLE = "org.opencontainers.image.title"
# The platform that a child without one counts as in go-containerregistry's index lookup
# (remote/index.go childByPlatform), which `apptainer pull oras://` uses.
DEFAULT = ("linux", "amd64")
# A variant no container engine asks for: Docker and containerd compare the (normalised)
# variant exactly and skip the SIF, while Apptainer, which asks for OS and architecture
# only, takes the first child that has them, the SIF.
SIF_VARIANT = "sif"


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Platform:
    """An image's OS, architecture and variant, as an index entry names them."""

    os: str
    architecture: str
    variant: str = ""

    @classmethod
    def from_inspect(cls, inspected: Mapping[str, Any]) -> Platform:
        """The platform of an image as the Docker engine's inspect reports it."""
        return cls(
            str(inspected.get("Os") or "linux"),
            str(inspected.get("Architecture") or "amd64"),
            str(inspected.get("Variant") or ""),
        )

    def to_json(self) -> dict[str, str]:
        """In go-containerregistry's field order (architecture, os, variant)."""
        data = {"architecture": self.architecture, "os": self.os}
        if self.variant:
            data["variant"] = self.variant
        return data


@dataclass(frozen=True)
class Descriptor:
    """A reference to a blob or a manifest: its media type, size and digest."""

    media_type: str
    size: int
    digest: str
    platform: Platform | None = None

    @classmethod
    def of(cls, media_type: str, data: bytes, platform: Platform | None = None) -> Descriptor:
        return cls(media_type, len(data), digest_of(data), platform)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "mediaType": self.media_type,
            "size": self.size,
            "digest": self.digest,
        }
        if self.platform is not None:
            data["platform"] = self.platform.to_json()
        return data


def sif_manifest(layer_digest: str, size: int, title: str) -> bytes:
    """The SIF's manifest as Apptainer writes it (go-containerregistry's field order,
    Go's JSON encoding), so its digest is the one ``apptainer push`` of the file gives."""
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": Descriptor(SIF_CONFIG, len(EMPTY_CONFIG), digest_of(EMPTY_CONFIG)).to_json(),
        "layers": [
            {
                **Descriptor(SIF_LAYER, size, layer_digest).to_json(),
                "annotations": {TITLE: title},
            }
        ],
    }
    return gojson.dumps(manifest).encode("utf-8")


def sif_platform(image: Platform) -> Platform | None:
    """The SIF's platform in the index. None (no platform, which Apptainer reads as
    linux/amd64 and Docker skips) for a linux/amd64 image; else the image's OS and
    architecture with a variant no engine asks for."""
    if (image.os, image.architecture) == DEFAULT and not image.variant:
        return None
    return Platform(image.os, image.architecture, SIF_VARIANT)


def image_entries(
    media_type: str, body: bytes, digest: str, platform: Platform
) -> list[dict[str, Any]]:
    """What stands for the image in the index: the manifest Docker pushed, with the
    image's platform, or the children of the index it pushed."""
    if media_type in MANIFESTS:
        return [Descriptor(media_type, len(body), digest, platform).to_json()]
    if media_type not in INDEXES:
        raise ValueError(f"its media type is {media_type or 'not given'}")
    document = json.loads(body)
    children = document.get("manifests") if isinstance(document, dict) else None
    if not isinstance(children, list) or not all(isinstance(c, dict) for c in children):
        raise ValueError("it is an index without a list of manifests")
    return children


def index(sif: Descriptor, images: Sequence[Mapping[str, Any]]) -> bytes:
    """The OCI index at the tag: the SIF's manifest first (the child Apptainer's lookup
    takes), then the image's entries."""
    document = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [sif.to_json(), *images],
    }
    return gojson.dumps(document).encode("utf-8")
