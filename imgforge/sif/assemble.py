"""Assemble the image file around a packed squashfs: a SIF (header, descriptors, the
Deffile and JSON objects, the partition) or a legacy Singularity 2.x .simg."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import IO, Any

from imgforge import gojson
from imgforge.atomic import copy_range
from imgforge.errors import BuildError
from imgforge.recipes.image import ImageConfig
from imgforge.sif import format as sif
from imgforge.sif import metadata
from imgforge.sif.backend import SifRequest
from imgforge.sif.layout import METADATA_DIR
from imgforge.sif.transfer import Transferred


def oci_fields(config: ImageConfig) -> dict[str, Any]:
    """The OCI image config's ``config`` object for ``config``, every field, in
    go-containerregistry's ``v1.Config`` order (containers/image keeps only these when it
    converts a Docker image); Volumes and ExposedPorts as maps to ``{}``."""
    return {
        "Cmd": list(config.cmd),
        "Entrypoint": list(config.entrypoint),
        "Env": list(config.env),
        "Labels": gojson.sorted_map(dict(config.labels)),
        "User": config.user,
        "Volumes": {path: {} for path in sorted(config.volumes)},
        "WorkingDir": config.workdir,
        "ExposedPorts": {port: {} for port in sorted(config.exposed_ports)},
        "ArgsEscaped": config.args_escaped,
        "StopSignal": config.stop_signal,
    }


OCI_CONFIG_FIELDS = frozenset(oci_fields(ImageConfig()))


def oci_config(config: ImageConfig) -> bytes:
    """The image config as Apptainer's ``oci-config.json``: :func:`oci_fields` marshalled
    as Go marshals ``v1.Config`` (``omitempty``)."""
    fields = oci_fields(config)
    return gojson.dumps({k: v for k, v in fields.items() if v}).encode("utf-8")


def inspect_object(request: SifRequest, image: Transferred | None) -> bytes:
    """``inspect-metadata.json`` from the metadata files as they are in the image:
    imgforge's ``request.files`` and what the image had of its own (``image``)."""
    found = dict(image.inspected) if image is not None else {}
    found.update({f"{METADATA_DIR}/{path}": text for path, text in request.files.items()})
    return metadata.inspect_metadata(found, image.apps if image is not None else ())


def sif_objects(
    request: SifRequest, image: Transferred | None, partition_size: int
) -> tuple[bytes, list[tuple[int, bytes]]]:
    """The SIF's header and descriptors, and each data object but the partition at its
    offset; the partition's offset is the last. The objects in Apptainer's order:
    Deffile, the JSON objects by name (inspect-metadata.json, oci-config.json), the
    squashfs PrimSys partition. Without SOURCE_DATE_EPOCH the header and descriptor times
    are the build time; with it, the nil UUID and Go's zero time (sif.OptCreateDeterministic)."""
    arch = request.config.arch
    if arch not in sif.ARCHES:
        raise BuildError(f"{request.name}: image architecture {arch!r} has no SIF code")
    data = [
        ("Deffile", "", request.deffile.encode("utf-8")),
        ("GenericJSON", "inspect-metadata.json", inspect_object(request, image)),
        ("GenericJSON", "oci-config.json", oci_config(request.config)),
    ]
    objects = [sif.DataObject(kind, len(blob), name=name) for kind, name, blob in data]
    objects.append(
        sif.DataObject(
            "Partition", partition_size, align=sif.PARTITION_ALIGN, extra=sif.partition_extra(arch)
        )
    )
    if request.source_date_epoch is not None:
        image_id, stamp = uuid.UUID(int=0), sif.ZERO_TIME
    else:
        image_id, stamp = uuid.uuid4(), request.timestamp()
    prefix, offsets = sif.encode_prefix(objects, arch=arch, image_id=image_id, timestamp=stamp)
    placed = [(offset, blob) for offset, (_, _, blob) in zip(offsets, data, strict=False)]
    return prefix, [*placed, (offsets[-1], b"")]


def partition_offset(request: SifRequest, image: Transferred | None) -> int:
    """Where the squashfs partition of ``request``'s SIF starts."""
    return sif_objects(request, image, 0)[1][-1][0]


def write_sif_prefix(
    out: IO[bytes], request: SifRequest, image: Transferred | None, partition_size: int
) -> int:
    """Write everything of the SIF but its partition into ``out``; the partition's offset."""
    prefix, placed = sif_objects(request, image, partition_size)
    out.seek(0)
    out.write(prefix)
    for offset, blob in placed:
        out.seek(offset)
        out.write(blob)
    return placed[-1][0]


def write_sif(
    request: SifRequest, squashfs: Path, target: Path, image: Transferred | None = None
) -> None:
    """The SIF of a squashfs file: :func:`write_sif_prefix`, then the partition copied."""
    with target.open("wb") as out:
        offset = write_sif_prefix(out, request, image, squashfs.stat().st_size)
        out.truncate(offset)
        with squashfs.open("rb") as source:
            copy_range(source, out, 0, squashfs.stat().st_size)
        os.fsync(out.fileno())


def write_simg(squashfs: Path, target: Path) -> None:
    """The legacy Singularity 2.x image: the launch line, then the squashfs."""
    with target.open("wb") as out:
        out.write(sif.LAUNCH_SCRIPT)
        with squashfs.open("rb") as source:
            copy_range(source, out, 0, squashfs.stat().st_size)
        os.fsync(out.fileno())
