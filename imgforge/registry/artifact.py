"""The SIF as an OCI artifact beside its image: its blobs and manifest, then the index
at the image's tag that both ``docker pull`` and ``apptainer pull oras://`` resolve."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from imgforge.errors import BuildError
from imgforge.log import STEP, Log
from imgforge.registry import oci
from imgforge.registry.client import Remote
from imgforge.registry.oci import EMPTY_CONFIG, OCI_INDEX, OCI_MANIFEST, Descriptor, Platform


@dataclass(frozen=True)
class SifFile:
    """The SIF to publish: where its bytes are now, the name it is published under (the
    title Apptainer gives its layer), and its recorded digest and size."""

    path: Path
    title: str
    sha256: str
    size: int


@dataclass(frozen=True)
class Published:
    """The digests of the SIF's manifest and of the index at the tag."""

    manifest: str
    index: str


def publish_sif(
    remote: Remote,
    *,
    repository: str,
    tag: str,
    sif: SifFile,
    image_digest: str,
    platform: Platform,
    log: Log,
) -> Published:
    """Upload the SIF (unless the registry has it) and its manifest, then point ``tag`` at
    an index of the SIF's manifest and the image Docker pushed as ``image_digest``."""
    # The config first: opening an upload session gets a token with push access, which
    # the other requests to the repository then reuse.
    remote.put_blob(repository, EMPTY_CONFIG)
    layer = f"sha256:{sif.sha256}"
    if remote.has_blob(repository, layer):
        log(f"{sif.title}: the registry already has {layer}")
    else:
        log(f"uploading {sif.title} ({sif.size} bytes)", kind=STEP)
        remote.put_blob_file(repository, sif.path, layer)
    manifest = oci.sif_manifest(layer, sif.size, sif.title)
    sif_digest = remote.put_manifest(repository, oci.digest_of(manifest), OCI_MANIFEST, manifest)
    image = remote.get_manifest(repository, image_digest)
    try:
        entries = oci.image_entries(image.media_type, image.body, image_digest, platform)
    except ValueError as exc:
        raise BuildError(f"the image's manifest {image_digest} is not readable: {exc}") from None
    child = Descriptor.of(OCI_MANIFEST, manifest, oci.sif_platform(platform))
    index_digest = remote.put_manifest(repository, tag, OCI_INDEX, oci.index(child, entries))
    return Published(sif_digest, index_digest)
