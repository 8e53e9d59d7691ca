"""The Docker Engine backend (docker SDK): inspect, pull, build from a context, tag."""

from __future__ import annotations

import contextlib
import io
import shutil
import subprocess
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any, overload

from imgforge.engine.guard import check_path_value, guard
from imgforge.engine.local import local_overlay, readable_layers
from imgforge.engine.protocol import ContainerSpec
from imgforge.engine.stream import (
    ChunkReader,
    container_lines,
    first_line,
    follow_build,
    follow_push,
)
from imgforge.errors import BuildError, EngineError
from imgforge.log import Log

LABEL_ROLE = "org.imgforge.role"
EXPORT_CHUNK = 1 << 20


class DockerEngine:
    """A thin, typed wrapper around ``docker.APIClient`` that raises imgforge errors."""

    def __init__(self, api: Any) -> None:
        # A docker.APIClient gets the path guard (test doubles have no URLs to guard).
        self.api = guard(api) if hasattr(api, "_url") else api
        # Set on Ctrl-C/SIGTERM: streams stop, and containers in `active` are removed.
        self.cancel = threading.Event()
        self.active: set[str] = set()
        self._lock = threading.Lock()

    def track(self, container: str, *, running: bool) -> None:
        """Record a container imgforge created (running) or removed (not running)."""
        with self._lock:
            (self.active.add if running else self.active.discard)(container)

    def remove_container(self, container: str) -> None:
        """Remove a container imgforge created, whatever state it is in, with the anonymous
        volumes the engine made for its image's VOLUMEs (nothing else uses them)."""
        from docker.errors import APIError, NotFound

        try:
            self.api.remove_container(container, force=True, v=True)
        except NotFound:
            pass
        except APIError as exc:
            # 409: already being removed (Ctrl-C: the main thread and the build's own
            # cleanup race); anything else is a real failure.
            if exc.status_code != 409:
                raise
        self.track(container, running=False)

    def interrupt(self) -> None:
        """Cancel everything under way: called from the main thread on Ctrl-C."""
        self.cancel.set()
        with self._lock:
            containers = list(self.active)
        for container in containers:
            self.remove_container(container)

    @classmethod
    def connect(cls, timeout: int = 600) -> DockerEngine:
        """Connect using DOCKER_HOST and friends; exit 3 if no engine answers."""
        import docker  # heavy: imported only when an engine is needed
        from docker.errors import DockerException

        try:
            client = docker.from_env(timeout=timeout)
            client.ping()
        except DockerException as exc:
            raise EngineError(
                f"no Docker engine reachable ({first_line(exc)}); start dockerd or set DOCKER_HOST"
            ) from None
        return cls(client.api)

    def answers(self) -> bool:
        """Whether the engine still answers a ping within a few seconds."""
        try:
            return bool(self.api.get(f"{self.api.base_url}/_ping", timeout=5).ok)
        except Exception:  # any failure to get an answer is the answer
            return False

    def version(self) -> str:
        info: Mapping[str, Any] = self.api.version()
        return str(info.get("Version", "unknown"))

    def build_network(self, requested: str | None) -> str | None:
        """The network for build steps: the requested one, else the engine's default,
        else ``host`` when the engine runs without a bridge (``dockerd --bridge=none``),
        where the default would leave build steps with no network at all."""
        if requested:
            return requested
        if self.api.networks(names=["bridge"]):
            return None
        return "host"

    def inspect(self, ref: str) -> dict[str, Any] | None:
        """``docker image inspect``, or None if there is no such image."""
        from docker.errors import ImageNotFound, NotFound

        check_path_value(ref)
        try:
            result: dict[str, Any] = self.api.inspect_image(ref)
        except (ImageNotFound, NotFound):
            return None
        return result

    @contextlib.contextmanager
    def layers(self, image_id: str) -> Iterator[list[str] | None]:  # see Engine.layers
        if not local_overlay(self.api):
            yield None
            return
        with self._held(image_id, "layers"):
            yield readable_layers(self.inspect(image_id))

    def image_id(self, ref: str) -> str | None:
        found = self.inspect(ref)
        return None if found is None else str(found["Id"])

    @overload
    def ensure_image(self, ref: str, *, why: str) -> dict[str, Any]: ...
    @overload
    def ensure_image(
        self, ref: str, *, why: str, pull: bool, auth: dict[str, str] | None = None
    ) -> dict[str, Any] | None: ...

    def ensure_image(
        self, ref: str, *, why: str, pull: bool = True, auth: dict[str, str] | None = None
    ) -> dict[str, Any] | None:
        """Inspect ``ref``, pulling it first if it is not present locally (and ``pull``)."""
        from docker.errors import APIError

        found = self.inspect(ref)
        if found is not None or not pull:
            return found
        try:
            self.api.pull(ref, auth_config=auth)
        except APIError as exc:
            raise BuildError(
                f"{why}: image {ref!r} is not present locally and could not be pulled "
                f"({first_line(exc)})"
            ) from None
        found = self.inspect(ref)
        if found is None:
            raise BuildError(f"{why}: image {ref!r} could not be pulled")
        return found

    def build(
        self, context: IO[bytes], *, dockerfile: str, network: str | None, log: Log, what: str,
        buildargs: dict[str, str] | None = None,
    ) -> str:  # fmt: skip
        """Build from a tar context; return the image ID. Untagged until it succeeds."""
        from docker.errors import APIError

        try:
            stream = self.api.build(fileobj=context, custom_context=True, dockerfile=dockerfile,
                rm=True, forcerm=True, pull=False, network_mode=network, buildargs=buildargs,
                decode=True)  # fmt: skip
            return follow_build(stream, log=log, what=what, cancel=self.cancel)
        except APIError as exc:
            raise BuildError(f"{what}: the engine refused the build: {first_line(exc)}") from None

    def push(self, repository: str, tag: str, *, auth: dict[str, str] | None, log: Log) -> str:
        """Push ``repository:tag``; return the registry's manifest digest."""
        from docker.errors import APIError

        what = f"push of {repository}:{tag}"
        try:
            stream = self.api.push(repository, tag, stream=True, decode=True, auth_config=auth)
            return follow_push(stream, log=log, what=what, cancel=self.cancel)
        except APIError as exc:
            raise BuildError(f"{what} failed: {first_line(exc)}") from None

    def tag(self, image_id: str, repository: str, tag: str) -> None:
        from docker.errors import APIError

        try:
            self.api.tag(image_id, repository, tag, force=True)
        except APIError as exc:  # the image removed meanwhile (`docker rmi -f`)
            why = f"cannot tag image {image_id[:19]} as {repository}:{tag}: {first_line(exc)}"
            raise BuildError(why) from None

    def save(self, image_id: str, path: Path) -> None:
        """``docker save`` one image to ``path`` (a docker-archive tar), streamed; a partial
        file is removed on failure, callers own (and remove) a complete one."""
        from docker.errors import APIError

        try:
            with path.open("wb") as archive:
                for chunk in self.api.get_image(image_id):
                    archive.write(chunk)
        # OSError also covers requests' errors (a dropped connection mid-stream) and a full disk.
        except (APIError, OSError) as exc:
            path.unlink(missing_ok=True)
            raise BuildError(
                f"docker save of image {image_id} to {path} failed: {first_line(exc)}"
            ) from None

    @contextlib.contextmanager
    def exported(self, image_id: str) -> Iterator[IO[bytes]]:
        """The image's flattened filesystem as a tar stream (``docker export``)."""
        with self._held(image_id, "export") as container:
            chunks = self.api.export(container, chunk_size=EXPORT_CHUNK)
            yield io.BufferedReader(ChunkReader(chunks, self.cancel), buffer_size=EXPORT_CHUNK)

    @contextlib.contextmanager
    def _held(self, image_id: str, role: str) -> Iterator[str]:
        """A container of the image, created, never started, and always removed: while
        it exists, the engine keeps the image and its layers (``docker image prune``,
        ``docker rmi`` leave them)."""
        from docker.errors import APIError

        try:
            container = self.api.create_container(image_id, command=["/.imgforge-export"],
                entrypoint=[], network_disabled=True, labels={LABEL_ROLE: role})  # fmt: skip
        except APIError as exc:
            why = first_line(exc)
            raise BuildError(f"{image_id[:19]}: cannot create a container: {why}") from None
        self.track(container["Id"], running=True)
        try:
            yield container["Id"]
        finally:
            self.remove_container(container["Id"])

    def create_container(self, spec: ContainerSpec, *, what: str) -> str:
        """Create the container ``spec`` describes (tracked until removed); return its ID."""
        from docker.errors import APIError
        from docker.types import DeviceRequest

        gpus = [DeviceRequest(count=-1, capabilities=[["gpu"]])] if spec.gpus else None
        try:
            created = self.api.create_container(
                spec.image,
                entrypoint=["/bin/sh", "-c", spec.script],
                environment=list(spec.env),
                working_dir=spec.workdir or None,
                name=spec.name,
                host_config=self.api.create_host_config(
                    network_mode=spec.network, device_requests=gpus
                ),
                tty=spec.tty,
                stdin_open=spec.interactive,
            )
        except APIError as exc:
            raise BuildError(
                f"{what}: cannot create the build container: {first_line(exc)}"
            ) from None
        self.track(created["Id"], running=True)
        return str(created["Id"])

    def put_archive(self, container: str, path: str, data: IO[bytes]) -> None:
        self.api.put_archive(container, path, data)

    def start_container(self, container: str, *, gpus: bool, what: str) -> None:
        from docker.errors import APIError

        try:
            self.api.start(container)
        except APIError as exc:
            message = first_line(exc)
            if gpus and ("device driver" in message or "nvidia" in message.lower()):
                raise EngineError(
                    f"{what}: build.gpus = true needs GPUs and the NVIDIA container runtime, "
                    f"which this engine lacks ({message})"
                ) from None
            raise BuildError(f"{what}: cannot start the build container: {message}") from None

    def attach(self, container: str, *, what: str) -> None:
        """Hand the terminal to the container (the docker CLI does TTY handling well;
        DOCKER_HOST and friends reach it through the environment)."""
        docker = shutil.which("docker")
        if docker is None:
            raise EngineError(f"{what}: an interactive shell needs the docker command-line client")
        subprocess.run([docker, "start", "--attach", "--interactive", container], check=False)

    def output(self, container: str) -> Iterator[str]:
        return container_lines(self.api.logs(container, stream=True, follow=True))

    def wait(self, container: str) -> int:
        return int(self.api.wait(container).get("StatusCode", 1))

    def changes(self, container: str) -> list[str]:
        kinds = {0: "C", 1: "A", 2: "D"}
        return [f"{kinds.get(c['Kind'], '?')} {c['Path']}" for c in self.api.diff(container) or []]

    def commit(self, container: str) -> str:
        return str(self.api.commit(container)["Id"])
