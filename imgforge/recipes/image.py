"""Image configuration values: what an image's Env/Entrypoint/Cmd/Labels are."""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from imgforge.errors import ImageDataError
from imgforge.recipes.envnames import carried, kept_as_default


def split_env(entry: str) -> tuple[str, str]:
    """Split ``NAME=value`` at the first ``=``; an entry without one has value ''."""
    name, _, value = entry.partition("=")
    return name, value


# The PATH Docker's builder adds to a stage whose base has none (moby: dispatchState
# setDefaultPath, system.DefaultPathEnv for Linux; BuildKit does the same).
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def with_default_path(env: tuple[str, ...]) -> tuple[str, ...]:
    """``env`` as a build stage starts with it: Docker appends its default PATH when the
    base image has none."""
    if any(split_env(entry)[0] == "PATH" for entry in env):
        return env
    return (*env, f"PATH={DEFAULT_PATH}")


def update_env(env: Iterable[str], changes: Iterable[tuple[str, str]]) -> tuple[str, ...]:
    """Apply ENV changes the way Docker does: replace in place, append new names."""
    ordered: dict[str, str] = dict(split_env(entry) for entry in env)
    for name, value in changes:
        ordered[name] = value
    return tuple(f"{name}={value}" for name, value in ordered.items())


@dataclass(frozen=True)
class ImageConfig:
    """The parts of a Docker image config that imgforge reads and preserves."""

    env: tuple[str, ...] = ()
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    workdir: str = ""
    labels: tuple[tuple[str, str], ...] = ()
    user: str = ""
    arch: str = "amd64"
    # The rest of an OCI image config's ``config`` object, carried into the SIF's
    # oci-config.json: Volumes and ExposedPorts are sets (sorted keys here).
    volumes: tuple[str, ...] = ()
    exposed_ports: tuple[str, ...] = ()
    stop_signal: str = ""
    args_escaped: bool = False

    @classmethod
    def from_inspect(cls, inspect: Mapping[str, Any], origin: str = "image") -> ImageConfig:
        """Read ``docker image inspect`` output (its ``Config`` and ``Architecture``):
        the one place where what the engine reports about an image becomes a value, so
        it is checked here (``origin`` names the image in messages)."""
        config = inspect.get("Config") or {}
        made = cls(
            env=_strings(config.get("Env"), origin, "Env"),
            entrypoint=_strings(config.get("Entrypoint"), origin, "Entrypoint"),
            cmd=_strings(config.get("Cmd"), origin, "Cmd"),
            workdir=_string(config.get("WorkingDir"), origin, "WorkingDir"),
            labels=_labels(config.get("Labels"), origin),
            user=_string(config.get("User"), origin, "User"),
            arch=_string(inspect.get("Architecture"), origin, "Architecture") or "amd64",
            volumes=_set(config.get("Volumes"), origin, "Volumes"),
            exposed_ports=_set(config.get("ExposedPorts"), origin, "ExposedPorts"),
            stop_signal=_string(config.get("StopSignal"), origin, "StopSignal"),
            args_escaped=_bool(config.get("ArgsEscaped"), origin, "ArgsEscaped"),
        )
        made.check(origin)
        return made

    def check(self, origin: str) -> None:
        """Refuse what no env file, .def or Dockerfile can carry with the same meaning."""
        for index, entry in enumerate(self.env):
            name, sep, value = entry.partition("=")
            key = f"Config.Env[{index}]"
            if not sep or not name:
                raise ImageDataError(origin, key, f"{entry!r} is not NAME=VALUE")
            if not name.isprintable():
                raise ImageDataError(
                    origin, key, f"variable name {name!r} has non-printable characters"
                )
            if "\0" in value:
                raise ImageDataError(
                    origin, f"Config.Env.{name}", "the value holds a NUL character"
                )
        for key, value in [("WorkingDir", self.workdir), ("User", self.user)]:
            if not value.isprintable():
                raise ImageDataError(
                    origin, f"Config.{key}", f"{value!r} has non-printable characters"
                )
        if self.workdir and not self.workdir.startswith("/"):
            raise ImageDataError(origin, "Config.WorkingDir", f"{self.workdir!r} is not absolute")
        for label, value in self.labels:
            if not label or not label.isprintable():
                raise ImageDataError(
                    origin, "Config.Labels", f"label key {label!r} is not printable"
                )
            if "\0" in value:
                raise ImageDataError(
                    origin, f"Config.Labels.{label}", "the value holds a NUL character"
                )
        for word in (*self.entrypoint, *self.cmd):
            if "\0" in word:
                raise ImageDataError(origin, "Config.Cmd", f"{word!r} holds a NUL character")

    def run_entrypoint(self) -> tuple[str, ...]:
        """The ENTRYPOINT a container runs: none for ``[""]``, which is how a Dockerfile
        clears its base's (Docker then runs the CMD)."""
        return () if self.entrypoint == ("",) else self.entrypoint

    def env_pairs(self) -> list[tuple[str, str]]:
        """Env as (name, value) pairs, in image order."""
        return [split_env(entry) for entry in self.env]

    def shell_env(self) -> list[tuple[str, str]]:
        """Env pairs an env file sets unconditionally: portable names no shell or Apptainer
        owns (see :meth:`script_env` for the names it gives as defaults)."""
        return [(n, v) for n, v in self.env_pairs() if carried(n)]

    def script_env(self) -> list[tuple[str, str, bool]]:
        """What an env script writes, in image order: (name, value, as a default). Names
        the runtime sets itself are defaults; names nothing can carry are left out."""
        pairs = self.env_pairs()
        return [(n, v, kept_as_default(n)) for n, v in pairs if carried(n) or kept_as_default(n)]

    def derive(
        self,
        *,
        env: Iterable[tuple[str, str]],
        labels: Iterable[tuple[str, str]],
        cmd: tuple[str, ...] | None,
        entrypoint: tuple[str, ...] | None = None,
    ) -> ImageConfig:
        """The config of an image built on this one with the given changes: ``entrypoint``
        words are appended to this image's ENTRYPOINT, and then, as a Dockerfile's
        ENTRYPOINT does, the CMD is reset unless ``cmd`` gives one."""
        merged = dict(self.labels)
        merged.update(labels)
        if entrypoint is not None:
            return replace(
                self.derive(env=env, labels=labels, cmd=cmd or ()),
                entrypoint=self.run_entrypoint() + entrypoint,
            )
        return replace(
            self,
            env=update_env(with_default_path(self.env), env),
            labels=tuple(sorted(merged.items())),
            cmd=self.cmd if cmd is None else cmd,
        )


def command_words(command: str | None) -> tuple[str, ...] | None:
    """Split a recipe's runscript command into exec-form words."""
    return None if command is None else tuple(shlex.split(command))


def _string(value: object, origin: str, key: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ImageDataError(
            origin, f"Config.{key}", f"expected a string, got {type(value).__name__}"
        )
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ImageDataError(origin, f"Config.{key}", f"{value!r} is not valid Unicode") from None
    return value


def _strings(value: object, origin: str, key: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ImageDataError(
            origin, f"Config.{key}", f"expected a list, got {type(value).__name__}"
        )
    return tuple(_string(item, origin, key) for item in value)


def _set(value: object, origin: str, key: str) -> tuple[str, ...]:
    """A Go ``map[string]struct{}`` (Volumes, ExposedPorts): its keys, sorted."""
    if value is None:
        return ()
    if not isinstance(value, dict):
        raise ImageDataError(origin, f"Config.{key}", f"expected a map, got {type(value).__name__}")
    return tuple(sorted(_string(k, origin, key) for k in value))


def _bool(value: object, origin: str, key: str) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise ImageDataError(
            origin, f"Config.{key}", f"expected true or false, got {type(value).__name__}"
        )
    return value


def _labels(value: object, origin: str) -> tuple[tuple[str, str], ...]:
    if value is None:
        return ()
    if not isinstance(value, dict):
        raise ImageDataError(origin, "Config.Labels", f"expected a map, got {type(value).__name__}")
    return tuple(sorted((str(k), _string(v, origin, f"Labels.{k}")) for k, v in value.items()))
