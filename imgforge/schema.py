"""The recipe schema: pydantic models that check every key of a recipe file."""

from __future__ import annotations

import shlex
from typing import Annotated, Literal

from packaging.requirements import InvalidRequirement, Requirement
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from imgforge.patterns import (
    APT_RE,
    ENV_KEY_RE,
    IMAGE_REF_RE,
    LABEL_KEY_RE,
    NAME_RE,
    PATH_RE,
    RECIPE_PREFIX,
    TAG_RE,
    URL_RE,
)


def _no_control(value: str) -> str:
    if "\0" in value:
        raise ValueError("must not contain a NUL character")
    if "\n" in value or "\r" in value:
        raise ValueError("must not contain a newline")
    return value


def _name(value: str) -> str:
    if not NAME_RE.match(value) or len(value) > 128:
        raise ValueError(
            f"{value!r} is not a valid name (lower-case letters, digits and . _ - "
            "between them, as in a Docker repository name)"
        )
    return value


def _tag(value: str) -> str:
    if not TAG_RE.match(value):
        raise ValueError(f"{value!r} is not a valid Docker tag")
    return value


def _base(value: str) -> str:
    if value.startswith(RECIPE_PREFIX):
        _name(value[len(RECIPE_PREFIX) :])
    elif not IMAGE_REF_RE.match(value):
        raise ValueError(f"{value!r} is neither a Docker image reference nor recipe:NAME")
    return value


def _apt_package(value: str) -> str:
    if not APT_RE.match(value):
        raise ValueError(f"{value!r} is not a valid Debian package name")
    return value


def _pip_requirement(value: str) -> str:
    _no_control(value)
    try:
        Requirement(value)
    except InvalidRequirement as exc:
        first_line = str(exc).splitlines()[0]
        raise ValueError(f"{value!r} is not a valid PEP 508 requirement ({first_line})") from None
    return value


def _relative_path(value: str) -> str:
    if not value or not PATH_RE.match(value):
        raise ValueError(
            f"{value!r} is not an allowed path (letters, digits and . _ @ + , = / - only)"
        )
    if value.startswith("/"):
        raise ValueError(f"{value!r} must be relative to the recipe's directory")
    if ".." in value.split("/"):
        raise ValueError(f"{value!r} must not contain '..'")
    return value


def _absolute_path(value: str) -> str:
    if not value or not PATH_RE.match(value):
        raise ValueError(
            f"{value!r} is not an allowed path (letters, digits and . _ @ + , = / - only)"
        )
    if not value.startswith("/"):
        raise ValueError(f"{value!r} must be an absolute path in the image")
    if ".." in value.split("/"):
        raise ValueError(f"{value!r} must not contain '..'")
    return value


def _url(value: str) -> str:
    if not URL_RE.match(value):
        raise ValueError(f"{value!r} is not an http(s) URL")
    return value


def _command_words(value: str) -> str:
    _no_control(value)
    try:
        words = shlex.split(value)
    except ValueError as exc:
        raise ValueError(f"cannot be split into words: {exc}") from None
    if not words:
        raise ValueError("must not be empty")
    return value


def _shell_command(value: str) -> str:
    if "\0" in value:
        raise ValueError("must not contain a NUL character")
    if not value.strip():
        raise ValueError("must not be empty")
    return value


Text = Annotated[str, AfterValidator(_no_control)]
Name = Annotated[str, AfterValidator(_name)]
AptPackage = Annotated[str, AfterValidator(_apt_package)]
PipRequirement = Annotated[str, AfterValidator(_pip_requirement)]
RelativePath = Annotated[str, AfterValidator(_relative_path)]
AbsolutePath = Annotated[str, AfterValidator(_absolute_path)]
Url = Annotated[str, AfterValidator(_url)]
ShellCommand = Annotated[str, AfterValidator(_shell_command)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class AptSection(_Section):
    packages: list[AptPackage] = Field(default_factory=list)


class PipSection(_Section):
    packages: list[PipRequirement] = Field(default_factory=list)
    requirements: list[RelativePath] = Field(default_factory=list)
    index_url: Url | None = None
    extra_index_urls: list[Url] = Field(default_factory=list)


class RunSection(_Section):
    commands: list[ShellCommand] = Field(default_factory=list)


class RunscriptSection(_Section):
    command: Annotated[str, AfterValidator(_command_words)]


class BuildSection(_Section):
    strategy: Literal["dockerfile", "commit"] = "dockerfile"
    gpus: bool = False


class RecipeModel(_Section):
    """A recipe file as written, checked key by key."""

    name: Name | None = None
    tag: Annotated[str, AfterValidator(_tag)] = "latest"
    base: Annotated[str, AfterValidator(_base)]
    apt: AptSection = Field(default_factory=AptSection)
    pip: PipSection = Field(default_factory=PipSection)
    env: dict[str, Text] = Field(default_factory=dict)
    files: dict[RelativePath, AbsolutePath] = Field(default_factory=dict)
    run: RunSection = Field(default_factory=RunSection)
    labels: dict[str, Text] = Field(default_factory=dict)
    runscript: RunscriptSection | None = None
    build: BuildSection = Field(default_factory=BuildSection)


class ProjectModel(_Section):
    """``imgforge.toml`` beside the recipes: project-wide settings."""

    base_map: dict[Annotated[str, AfterValidator(_base)], Annotated[str, AfterValidator(_base)]] = (
        Field(default_factory=dict)
    )


def check_env_key(key: str) -> str | None:
    """Return why ``key`` is not a valid environment variable name, or None."""
    if ENV_KEY_RE.match(key):
        return None
    return f"{key!r} is not a valid variable name ([A-Za-z_][A-Za-z0-9_]*)"


def check_label_key(key: str) -> str | None:
    """Return why ``key`` is not a valid label key, or None."""
    if LABEL_KEY_RE.match(key) and len(key) <= 255:
        return None
    return f"{key!r} is not a valid label key (letters, digits and . _ / -)"
