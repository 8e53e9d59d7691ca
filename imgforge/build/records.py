"""The parts of a manifest (base, fingerprint, SIF, inputs, tools, timings, commit,
push, saved archive) as frozen values with their exact JSON form."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from imgforge.build import fields
from imgforge.build.fields import table

# What changes when a file is edited: size, mtime (ns), mode, inode.
Signature = tuple[int, ...]


@dataclass(frozen=True)
class Fingerprint:
    """What a build depended on; equal fingerprints mean nothing changed."""

    recipe: str
    rendered: str
    base_image_id: str
    strategy: str

    def differs(self, other: Fingerprint) -> str | None:
        """Why ``other`` (from a manifest) is not this fingerprint, or None if equal."""
        reasons = {
            "recipe": "recipe or its files changed",
            "rendered": "rendered Dockerfile/.def changed",
            "base_image_id": "base image changed",
            "strategy": "build strategy changed",
        }
        for key, reason in reasons.items():
            if getattr(other, key) != getattr(self, key):
                return reason
        return None

    def to_json(self) -> dict[str, Any]:
        return {
            "recipe": self.recipe,
            "rendered": self.rendered,
            "base_image_id": self.base_image_id,
            "strategy": self.strategy,
        }

    @classmethod
    def from_json(cls, value: object) -> Fingerprint:
        data = table(value)
        keys = ("recipe", "rendered", "base_image_id", "strategy")
        return cls(*(fields.text(data, key) for key in keys))


@dataclass(frozen=True)
class BaseRecord:
    """The base as written, as used after base mapping, and its image ID."""

    ref: str
    resolved: str
    image_id: str

    def to_json(self) -> dict[str, Any]:
        return {"ref": self.ref, "resolved": self.resolved, "image_id": self.image_id}

    @classmethod
    def from_json(cls, value: object) -> BaseRecord:
        data = table(value)
        return cls(*(fields.text(data, key) for key in ("ref", "resolved", "image_id")))


@dataclass(frozen=True)
class SifRecord:
    """The Singularity image made from the built image: reused when its stat matches."""

    path: str
    format: str
    sha256: str
    size: int
    mtime_ns: int
    backend: str
    tool_version: str
    compression: str
    docker_image_id: str
    seconds: float
    # Informational: the squashfs' size, the seconds packing it took (the rest of
    # ``seconds`` is reading it back and its digest), what the squashed-data cache did.
    squashfs_size: int | None = None
    pack_seconds: float | None = None
    cache: dict[str, Any] | None = None

    def reuse(self) -> str:
        """``cache: 41 of 50 blocks reused, ~3.0s saved`` (empty without a cache)."""
        if not self.cache:
            return ""
        hits, misses = self.cache.get("hits", 0), self.cache.get("misses", 0)
        saved = self.cache.get("saved_seconds", 0)
        return f"cache: {hits} of {hits + misses} blocks reused, ~{saved:.1f}s saved"

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "format": self.format,
            "sha256": self.sha256,
            "size": self.size,
            "mtime_ns": self.mtime_ns,
            "backend": self.backend,
            "tool_version": self.tool_version,
            "compression": self.compression,
            "docker_image_id": self.docker_image_id,
            "seconds": self.seconds,
            "squashfs_size": self.squashfs_size,
            "pack_seconds": self.pack_seconds,
            "cache": self.cache,
        }

    @classmethod
    def from_json(cls, value: object) -> SifRecord:
        data = table(value)
        return cls(
            path=fields.text(data, "path"),
            format=fields.text(data, "format"),
            sha256=fields.text(data, "sha256"),
            size=fields.integer(data, "size"),
            mtime_ns=fields.integer(data, "mtime_ns"),
            backend=fields.text(data, "backend"),
            tool_version=fields.text(data, "tool_version"),
            compression=fields.text(data, "compression"),
            docker_image_id=fields.text(data, "docker_image_id"),
            seconds=fields.real(data, "seconds"),
            squashfs_size=fields.informed(fields.integer, data, "squashfs_size"),
            pack_seconds=fields.informed(fields.real, data, "pack_seconds"),
            cache=fields.informed(fields.table_at, data, "cache"),
        )


@dataclass(frozen=True)
class Inputs:
    """Stat signatures of everything a build read, and the option key: while all still
    match, the recipe's content (and so its rendered text) is the recorded build's."""

    options: str
    recipe: Signature
    project: Signature | None
    files: tuple[tuple[str, Signature], ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "options": self.options,
            "recipe": list(self.recipe),
            "project": None if self.project is None else list(self.project),
            "files": {name: list(signature) for name, signature in self.files},
        }

    @classmethod
    def from_json(cls, value: object) -> Inputs:
        data = table(value)
        project = data.get("project")
        return cls(
            options=fields.text(data, "options"),
            recipe=fields.integers(data.get("recipe")),
            project=None if project is None else fields.integers(project),
            files=signatures(data.get("files")),
        )


def signatures(value: object) -> tuple[tuple[str, Signature], ...]:
    """A JSON table of stat signatures, as sorted (name, signature) pairs."""
    return tuple(sorted((name, fields.integers(item)) for name, item in table(value).items()))


@dataclass(frozen=True)
class Tools:
    """The versions that made the image."""

    imgforge: str
    docker_engine: str
    python: str

    def to_json(self) -> dict[str, Any]:
        return {
            "imgforge": self.imgforge,
            "docker_engine": self.docker_engine,
            "python": self.python,
        }

    @classmethod
    def from_json(cls, value: object) -> Tools:
        data = table(value)
        return cls(*(fields.text(data, key) for key in ("imgforge", "docker_engine", "python")))


@dataclass(frozen=True)
class Timings:
    total_seconds: float
    docker_build_seconds: float

    def to_json(self) -> dict[str, Any]:
        return {
            "total_seconds": self.total_seconds,
            "docker_build_seconds": self.docker_build_seconds,
        }

    @classmethod
    def from_json(cls, value: object) -> Timings:
        data = table(value)
        return cls(fields.real(data, "total_seconds"), fields.real(data, "docker_build_seconds"))


@dataclass(frozen=True)
class CommitRecord:
    """The commit strategy's script; an interactive session adds what was changed by hand."""

    script: str
    gpus: bool
    committed: str
    reproducible: bool | None = None
    changed_paths: tuple[str, ...] | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "script": self.script,
            "gpus": self.gpus,
            "committed": self.committed,
        }
        if self.reproducible is not None:
            data["reproducible"] = self.reproducible
        if self.changed_paths is not None:
            data["changed_paths"] = list(self.changed_paths)
        return data

    @classmethod
    def from_json(cls, value: object) -> CommitRecord:
        data = table(value)
        changed = data.get("changed_paths")
        return cls(
            script=fields.text(data, "script"),
            gpus=fields.flag(data, "gpus"),
            committed=fields.text(data, "committed"),
            reproducible=None if "reproducible" not in data else fields.flag(data, "reproducible"),
            changed_paths=None if changed is None else fields.texts(changed),
        )


@dataclass(frozen=True)
class PushRecord:
    """Where ``--push`` put the image, by tag and by digest; with a SIF, the digests of
    the SIF's manifest and of the index at the tag that holds both (absent from
    manifests written before SIFs were published, and where no SIF was)."""

    registry: str
    reference: str
    digest: str
    by_digest: str
    sif_digest: str | None = None
    index_digest: str | None = None

    @property
    def repository(self) -> str:
        return self.by_digest.partition("@")[0]

    def to_json(self) -> dict[str, Any]:
        data = {
            "registry": self.registry,
            "reference": self.reference,
            "digest": self.digest,
            "by_digest": self.by_digest,
        }
        if self.sif_digest is not None and self.index_digest is not None:
            data["sif_digest"] = self.sif_digest
            data["index_digest"] = self.index_digest
        return data

    @classmethod
    def from_json(cls, value: object) -> PushRecord:
        data = table(value)
        keys = ("registry", "reference", "digest", "by_digest")
        sif = [fields.text(data, key) if key in data else None for key in SIF_PUSH_KEYS]
        return cls(*(fields.text(data, key) for key in keys), *sif)


SIF_PUSH_KEYS = ("sif_digest", "index_digest")


@dataclass(frozen=True)
class SavedRecord:
    """The ``--save`` archive beside the SIF, checked by stat."""

    path: str
    size: int
    mtime_ns: int

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "size": self.size, "mtime_ns": self.mtime_ns}

    @classmethod
    def from_json(cls, value: object) -> SavedRecord:
        data = table(value)
        size, mtime_ns = fields.integer(data, "size"), fields.integer(data, "mtime_ns")
        return cls(fields.text(data, "path"), size, mtime_ns)
