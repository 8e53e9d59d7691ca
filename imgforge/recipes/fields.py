"""The checked string types of recipe keys: each a validator and what editors see of it."""

from __future__ import annotations

import re
import shlex
from typing import Annotated

from packaging.requirements import InvalidRequirement, Requirement
from pydantic import AfterValidator, WithJsonSchema

from imgforge import reference
from imgforge.patterns import (
    APT_RE,
    NAME_RE,
    PATH_RE,
    RECIPE_PREFIX,
    TAG_RE,
    URL_RE,
)

# Patterns are checked with fullmatch: their $ (kept for the JSON schema) also matches
# before a final newline, which would let "name\n" through into a line of its own.


def _no_control(value: str) -> str:
    if "\0" in value:
        raise ValueError("must not contain a NUL character")
    if "\n" in value or "\r" in value:
        raise ValueError("must not contain a newline")
    return value


def _name(value: str) -> str:
    if not NAME_RE.fullmatch(value) or len(value) > 128:
        raise ValueError(
            f"{value!r} is not a valid name (lower-case letters, digits and . _ - "
            "between them, as in a Docker repository name)"
        )
    return value


def _tag(value: str) -> str:
    if not TAG_RE.fullmatch(value):
        raise ValueError(f"{value!r} is not a valid Docker tag")
    return value


def _base(value: str) -> str:
    if value.startswith(RECIPE_PREFIX):
        _name(value[len(RECIPE_PREFIX) :])
    elif why := reference.why_not_reference(value):
        raise ValueError(
            f"{value!r} is neither a Docker image reference ({why}) nor recipe:NAME"
        )
    return value


def _apt_package(value: str) -> str:
    if not APT_RE.fullmatch(value):
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
    if not value or not PATH_RE.fullmatch(value):
        raise ValueError(
            f"{value!r} is not an allowed path (letters, digits and . _ @ + , = / - only)"
        )
    if value.startswith("/"):
        raise ValueError(f"{value!r} must be relative to the recipe's directory")
    if ".." in value.split("/"):
        raise ValueError(f"{value!r} must not contain '..'")
    return value


def _absolute_path(value: str) -> str:
    if not value or not PATH_RE.fullmatch(value):
        raise ValueError(
            f"{value!r} is not an allowed path (letters, digits and . _ @ + , = / - only)"
        )
    if not value.startswith("/"):
        raise ValueError(f"{value!r} must be an absolute path in the image")
    if ".." in value.split("/"):
        raise ValueError(f"{value!r} must not contain '..'")
    return value


def _url(value: str) -> str:
    if not URL_RE.fullmatch(value):
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


def optional_command_words(value: str | None) -> str | None:
    return None if value is None else _command_words(value)


def _shell_command(value: str) -> str:
    if "\0" in value:
        raise ValueError("must not contain a NUL character")
    if not value.strip():
        raise ValueError("must not be empty")
    return value


def _schema(pattern: str, description: str) -> WithJsonSchema:
    """What editors see of a checked string (the loader's own checks stay the authority)."""
    return WithJsonSchema({"type": "string", "pattern": pattern, "description": description})


def _bare(regex: re.Pattern[str]) -> str:
    return regex.pattern.removeprefix("^").removesuffix("$")


NO_CONTROL = "^[^\\u0000\\n\\r]*$"
SAFE_PATH = "[A-Za-z0-9._@+,=/-]"
NO_DOTDOT = "(?!.*(?:^|/)\\.\\.(?:/|$))"

Text = Annotated[
    str, AfterValidator(_no_control), _schema(NO_CONTROL, "Any text without NUL or newline.")
]
Name = Annotated[
    str,
    AfterValidator(_name),
    _schema(NAME_RE.pattern, "Lower-case letters and digits, with . _ - between them."),
]
Tag = Annotated[str, AfterValidator(_tag), _schema(TAG_RE.pattern, "A Docker tag.")]
Base = Annotated[
    str,
    AfterValidator(_base),
    _schema(
        f"^(?:{RECIPE_PREFIX}{_bare(NAME_RE)}|{reference.JSON_PATTERN[1:-1]})$",
        "A Docker image reference, or recipe:NAME for another recipe in the same directory.",
    ),
]
AptPackage = Annotated[
    str, AfterValidator(_apt_package), _schema(APT_RE.pattern, "A Debian package name.")
]
PipRequirement = Annotated[
    str,
    AfterValidator(_pip_requirement),
    _schema(NO_CONTROL, "A PEP 508 requirement, e.g. timm==0.9.16."),
]
RelativePath = Annotated[
    str,
    AfterValidator(_relative_path),
    _schema(f"^(?!/){NO_DOTDOT}{SAFE_PATH}+$", "A path relative to the recipe's directory."),
]
AbsolutePath = Annotated[
    str,
    AfterValidator(_absolute_path),
    _schema(f"^/{NO_DOTDOT}{SAFE_PATH}*$", "An absolute path in the image."),
]
Url = Annotated[str, AfterValidator(_url), _schema(URL_RE.pattern, "An http(s) URL.")]
ShellCommand = Annotated[
    str,
    AfterValidator(_shell_command),
    _schema("^(?=[\\s\\S]*\\S)[^\\u0000]*$", "A shell command (run by /bin/sh -c)."),
]
