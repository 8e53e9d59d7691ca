"""Image configuration values: what an image's Env/Entrypoint/Cmd/Labels are."""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from imgforge.patterns import ENV_KEY_RE


def split_env(entry: str) -> tuple[str, str]:
    """Split ``NAME=value`` at the first ``=``; an entry without one has value ''."""
    name, _, value = entry.partition("=")
    return name, value


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

    @classmethod
    def from_inspect(cls, inspect: Mapping[str, Any]) -> ImageConfig:
        """Read ``docker image inspect`` output (its ``Config`` and ``Architecture``)."""
        config = inspect.get("Config") or {}
        return cls(
            env=tuple(config.get("Env") or ()),
            entrypoint=tuple(config.get("Entrypoint") or ()),
            cmd=tuple(config.get("Cmd") or ()),
            workdir=config.get("WorkingDir") or "",
            labels=tuple(sorted((config.get("Labels") or {}).items())),
            user=config.get("User") or "",
            arch=inspect.get("Architecture") or "amd64",
        )

    def env_pairs(self) -> list[tuple[str, str]]:
        """Env as (name, value) pairs, in image order."""
        return [split_env(entry) for entry in self.env]

    def shell_env(self) -> list[tuple[str, str]]:
        """Env pairs whose names a shell can export (others are skipped, as Apptainer does)."""
        return [(n, v) for n, v in self.env_pairs() if ENV_KEY_RE.fullmatch(n)]

    def derive(
        self,
        *,
        env: Iterable[tuple[str, str]],
        labels: Iterable[tuple[str, str]],
        cmd: tuple[str, ...] | None,
    ) -> ImageConfig:
        """The config of an image built on this one with the given changes."""
        merged = dict(self.labels)
        merged.update(labels)
        return replace(
            self,
            env=update_env(self.env, env),
            labels=tuple(sorted(merged.items())),
            cmd=self.cmd if cmd is None else cmd,
        )


def command_words(command: str | None) -> tuple[str, ...] | None:
    """Split a recipe's runscript command into exec-form words."""
    return None if command is None else tuple(shlex.split(command))
