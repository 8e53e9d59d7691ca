"""In-memory stand-ins for the engine and an image source, so that job status, the
builder and the SIF backends are tested without a Docker Engine."""

from __future__ import annotations

import contextlib
import hashlib
import io
import tarfile
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from imgforge.engine.protocol import ContainerSpec, Engine
from imgforge.errors import BuildError
from imgforge.log import STEP, Log
from imgforge.recipes.image import ImageConfig
from imgforge.squashfs.members import Member


def tar_of(files: Mapping[str, bytes]) -> bytes:
    """A tar stream holding ``files`` (path -> content) under their parent directories."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        directories = sorted({str(Path(p).parent) for p in files} - {"."})
        for name in directories:
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 1000
            tar.addfile(info)
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 1000
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


# What a fake image's filesystem holds unless a test says otherwise.
ROOTFS = tar_of({"bin/sh": b"#!fake\n", "etc/os-release": b"ID=fake\n"})
ARCHIVE_BYTES = b"docker save archive\n"


@dataclass
class FakeImage:
    """An ``ImageSource`` in memory; ``docker_archive`` fails with ``error`` if set."""

    image_id: str
    config: ImageConfig = field(default_factory=ImageConfig)
    rootfs: bytes = ROOTFS
    error: str | None = None
    archived: list[Path] = field(default_factory=list)

    def filesystem(self) -> contextlib.AbstractContextManager[IO[bytes]]:
        return contextlib.nullcontext(io.BytesIO(self.rootfs))

    def size(self) -> int | None:
        return len(self.rootfs)

    def layers(self) -> contextlib.AbstractContextManager[Iterator[Member] | None]:
        return contextlib.nullcontext(None)

    def docker_archive(self, path: Path) -> None:
        self.archived.append(path)
        if self.error is not None:
            raise BuildError(f"docker save of image {self.image_id} to {path} failed: {self.error}")
        path.write_bytes(ARCHIVE_BYTES)


def fake_id(*parts: object) -> str:
    return "sha256:" + hashlib.sha256(repr(parts).encode()).hexdigest()


class FakeEngine:
    """An ``Engine`` in memory. Images are inspect dicts by ID, tags point at IDs.

    A build is known by its ``what``, which ends in the recipe's image (NAME:TAG) as the
    strategies make it: the built image gets the config set with :meth:`will_build`, or the
    build fails if the image is in ``failing``. Containers run by the commit strategy
    print ``script_output`` and exit with ``script_status``."""

    def __init__(self) -> None:
        self.cancel = threading.Event()
        self.alive = True
        self.images: dict[str, dict[str, Any]] = {}
        self.tags: dict[str, str] = {}
        self.built: dict[str, ImageConfig] = {}
        self.failing: set[str] = set()
        self.builds: list[str] = []
        self.contexts: list[bytes] = []
        self.pushed: list[str] = []
        self.saved: list[tuple[str, Path]] = []
        self.containers: dict[str, ContainerSpec] = {}
        self.created: list[ContainerSpec] = []
        self.removed: list[str] = []
        self.script_output: Sequence[str] = ("+ true",)
        self.script_status = 0
        self.rootfs = ROOTFS

    # --- setting up -----------------------------------------------------------------

    def add_image(self, ref: str, *, env: Sequence[str] = (), user: str = "") -> str:
        """An image present in the engine (a base), tagged ``ref``; returns its ID."""
        image_id = fake_id("image", ref, tuple(env))
        self.images[image_id] = inspect_dict(image_id, env=env, user=user, size=len(self.rootfs))
        self.tags[ref] = image_id
        return image_id

    def will_build(self, image: str, *, config: ImageConfig) -> None:
        """Builds of ``image`` (NAME:TAG) make an image with ``config``."""
        self.built[image] = config

    # --- Engine ---------------------------------------------------------------------

    def interrupt(self) -> None:
        self.cancel.set()

    def answers(self) -> bool:
        return self.alive

    def version(self) -> str:
        return "fake-1.0"

    def build_network(self, requested: str | None) -> str | None:
        return requested

    def inspect(self, ref: str) -> dict[str, Any] | None:
        return self.images.get(self.tags.get(ref, ref))

    def layers(self, image_id: str) -> contextlib.AbstractContextManager[list[str] | None]:
        return contextlib.nullcontext(None)

    def image_id(self, ref: str) -> str | None:
        found = self.inspect(ref)
        return None if found is None else str(found["Id"])

    def ensure_image(
        self, ref: str, *, why: str, pull: bool = True, auth: dict[str, str] | None = None
    ) -> Any:
        found = self.inspect(ref)
        if found is None and pull:
            raise BuildError(f"{why}: image {ref!r} is not present locally and could not be pulled")
        return found

    def build(
        self,
        context: IO[bytes],
        *,
        dockerfile: str,
        network: str | None,
        log: Log,
        what: str,
        buildargs: dict[str, str] | None = None,
    ) -> str:
        image = what.rsplit(": ", 1)[-1]
        self.builds.append(image)
        self.contexts.append(context.read())
        log(f"Step 1/1 : FROM fake ({image})", kind=STEP)
        if image in self.failing:
            log("ERROR: fake failure")
            raise BuildError(f"{what}: build failed at step 1/1 (FROM fake): fake failure")
        image_id = fake_id("build", image, len(self.builds))
        config = self.built.get(image, ImageConfig())
        self.images[image_id] = inspect_config(image_id, config, size=len(self.rootfs))
        return image_id

    def tag(self, image_id: str, repository: str, tag: str) -> None:
        self.tags[f"{repository}:{tag}"] = image_id

    def push(self, repository: str, tag: str, *, auth: dict[str, str] | None, log: Log) -> str:
        self.pushed.append(f"{repository}:{tag}")
        return fake_id("push", repository, tag)

    def save(self, image_id: str, path: Path) -> None:
        self.saved.append((image_id, path))
        path.write_bytes(ARCHIVE_BYTES)

    @contextlib.contextmanager
    def exported(self, image_id: str) -> Iterator[IO[bytes]]:
        yield io.BytesIO(self.rootfs)

    def create_container(self, spec: ContainerSpec, *, what: str) -> str:
        container = fake_id("container", spec.name)
        self.containers[container] = spec
        self.created.append(spec)
        return container

    def put_archive(self, container: str, path: str, data: IO[bytes]) -> None:
        data.read()

    def start_container(self, container: str, *, gpus: bool, what: str) -> None:
        pass

    def attach(self, container: str, *, what: str) -> None:
        pass

    def output(self, container: str) -> Iterator[str]:
        return iter(self.script_output)

    def wait(self, container: str) -> int:
        return self.script_status

    def changes(self, container: str) -> list[str]:
        return ["A /root/by-hand"]

    def commit(self, container: str) -> str:
        image_id = fake_id("commit", container)
        self.images[image_id] = inspect_dict(image_id, env=[], size=len(self.rootfs))
        return image_id

    def remove_container(self, container: str) -> None:
        self.removed.append(container)
        self.containers.pop(container, None)


def inspect_dict(image_id: str, *, env: Sequence[str], user: str = "", size: int) -> dict[str, Any]:
    """What ``docker image inspect`` says of a fake image."""
    config = {"Env": list(env), "User": user, "Cmd": ["/bin/sh"]}
    return {"Id": image_id, "Config": config, "Architecture": "amd64", "Size": size}


def inspect_config(image_id: str, config: ImageConfig, *, size: int) -> dict[str, Any]:
    """What ``docker image inspect`` says of a fake image built with ``config``."""
    return {
        "Id": image_id,
        "Config": {
            "Env": list(config.env),
            "User": config.user,
            "Entrypoint": list(config.entrypoint) or None,
            "Cmd": list(config.cmd) or None,
            "WorkingDir": config.workdir,
            "Labels": dict(config.labels),
        },
        "Architecture": config.arch,
        "Size": size,
    }


def typed(engine: FakeEngine) -> Engine:
    """``engine`` as an Engine: mypy checks here that the fake keeps up with the protocol."""
    return engine
