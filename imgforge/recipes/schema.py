"""The recipe schema: pydantic models that check every key of a recipe file."""

from __future__ import annotations

import json
import re
import shlex
from typing import Annotated, Any, Literal

from packaging.requirements import InvalidRequirement, Requirement
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema, model_validator

from imgforge import reference
from imgforge.patterns import (
    APT_RE,
    ENV_KEY_RE,
    LABEL_KEY_RE,
    NAME_RE,
    PATH_RE,
    RECIPE_PREFIX,
    TAG_RE,
    URL_RE,
)
from imgforge.recipes.envnames import why_not_carried
from imgforge.sif.metadata import is_build_label

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


def _optional_command_words(value: str | None) -> str | None:
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


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class AptSection(_Section):
    """Debian packages: one RUN, --no-install-recommends, apt lists removed."""

    packages: list[AptPackage] = Field(default_factory=list, description="Packages to install.")


class PipSection(_Section):
    """pip installs (--no-cache-dir); the base image's pip configuration still applies."""

    packages: list[PipRequirement] = Field(
        default_factory=list, description="PEP 508 requirement strings."
    )
    requirements: list[RelativePath] = Field(
        default_factory=list, description="Requirements files, relative to the recipe."
    )
    index_url: Url | None = Field(default=None, description="pip --index-url.")
    extra_index_urls: list[Url] = Field(
        default_factory=list, description="pip --extra-index-url, each."
    )


class RunSection(_Section):
    """Shell commands, after apt, pip and files, in order."""

    commands: list[ShellCommand] = Field(
        default_factory=list, description="Each runs as /bin/sh -c in the base's WORKDIR."
    )


class RunscriptSection(_Section):
    """What the image runs, the same way in the Docker image and the SIF: the base's
    ENTRYPOINT, then ``entrypoint``'s words, then the run's arguments or else ``command``."""

    command: Annotated[str | None, AfterValidator(_optional_command_words)] = Field(
        default=None,
        description=(
            "The image's CMD (and the SIF's): the default arguments, replaced by the "
            "arguments of docker run / apptainer run. Split into words with Python's shlex "
            "(POSIX quoting rules; no expansion, no comments)."
        ),
    )
    entrypoint: Annotated[str | None, AfterValidator(_optional_command_words)] = Field(
        default=None,
        description=(
            "Words appended to the base image's ENTRYPOINT: the arguments of docker run / "
            "apptainer run are appended after them. Split like command."
        ),
    )

    @model_validator(mode="after")
    def _one_given(self) -> RunscriptSection:
        if self.command is None and self.entrypoint is None:
            raise ValueError("give command, entrypoint or both")
        return self


class BuildSection(_Section):
    """How the image is built."""

    strategy: Literal["dockerfile", "commit"] = Field(
        default="dockerfile",
        description="dockerfile: docker build; commit: the steps in one container, committed.",
    )
    gpus: bool = Field(
        default=False, description="commit strategy only: run the steps with all GPUs visible."
    )


class RecipeModel(_Section):
    """An imgforge recipe: apt/pip packages, files, env and commands on a base image."""

    name: Name | None = Field(default=None, description="Image name; default: the file name.")
    tag: Tag = Field(default="latest", description="Image tag.")
    base: Base = Field(description="The base image, or recipe:NAME (a DAG edge).")
    apt: AptSection = Field(default_factory=AptSection)
    pip: PipSection = Field(default_factory=PipSection)
    env: dict[str, Text] = Field(
        default_factory=dict,
        description="Environment variables, kept byte for byte (no $VAR expansion).",
        json_schema_extra={"propertyNames": {"pattern": ENV_KEY_RE.pattern}},
    )
    files: dict[RelativePath, AbsolutePath] = Field(
        default_factory=dict,
        description="Source (relative to the recipe) -> absolute path in the image (COPY).",
        json_schema_extra={"propertyNames": {"pattern": f"^(?!/){NO_DOTDOT}{SAFE_PATH}+$"}},
    )
    run: RunSection = Field(default_factory=RunSection)
    labels: dict[str, Text] = Field(
        default_factory=dict,
        description="Image labels.",
        json_schema_extra={"propertyNames": {"pattern": LABEL_KEY_RE.pattern}},
    )
    runscript: RunscriptSection | None = None
    build: BuildSection = Field(default_factory=BuildSection)


class ProjectModel(_Section):
    """``imgforge.toml`` beside the recipes: project-wide settings."""

    base_map: dict[Base, Base] = Field(default_factory=dict)


def check_env_key(key: str) -> str | None:
    """Return why ``key`` can't be a recipe's environment variable, or None."""
    return why_not_carried(key)


def check_label_key(key: str) -> str | None:
    """Return why ``key`` is not a valid label key, or None."""
    if not LABEL_KEY_RE.fullmatch(key) or len(key) > 255:
        return f"{key!r} is not a valid label key (letters, digits and . _ / -)"
    if is_build_label(key):
        return f"{key!r} is a label the SIF build writes (Apptainer's build labels)"
    return None


SCHEMA_URL = "https://json-schema.org/draft/2020-12/schema"


def recipe_json_schema_text() -> str:
    """The JSON Schema of recipes as ``imgforge schema`` prints and writes it."""
    return json.dumps(recipe_json_schema(), indent=2, ensure_ascii=False) + "\n"


def recipe_json_schema() -> dict[str, object]:
    """The JSON Schema of recipes, for editors (taplo / Even Better TOML)."""
    # No relative "$id": taplo refuses a schema whose $id is not an absolute URI.
    schema: dict[str, object] = {"$schema": SCHEMA_URL}
    schema.update(RecipeModel.model_json_schema())
    schema["title"] = "imgforge recipe"
    return schema


def _type(prop: dict[str, Any]) -> str:
    if "anyOf" in prop:
        return " or ".join(_type(p) for p in prop["anyOf"] if p.get("type") != "null")
    if "$ref" in prop:
        return "table"
    kind = prop.get("type", "")
    if kind == "array":
        return f"array of {_type(prop.get('items', {}))}"
    if kind == "object":
        return "table of strings"
    if "enum" in prop:
        return " or ".join(f"`{v}`" for v in prop["enum"])
    return str(kind)


def _row(key: str, prop: dict[str, Any], required: bool) -> dict[str, str]:
    inner = next((p for p in prop.get("anyOf", []) if p.get("type") != "null"), prop)
    description = prop.get("description") or inner.get("description", "")
    pattern = inner.get("pattern") or (inner.get("items") or {}).get("pattern")
    names = (prop.get("propertyNames") or {}).get("pattern")
    if names:
        description += f" Keys match `{names}`."
    elif pattern and "u0000" not in pattern:
        description += f" Pattern: `{pattern}`."
    default = (
        "required" if required else f"`{json.dumps(prop['default'])}`" if "default" in prop else ""
    )
    return {"key": key, "type": _type(prop), "default": default, "description": description}


def reference_sections() -> list[dict[str, Any]]:
    """The recipe schema as sections of rows, for the Markdown reference."""
    schema = RecipeModel.model_json_schema()
    defs = schema.get("$defs", {})
    top = {"title": "Top level", "description": schema.get("description", ""), "rows": []}
    sections = [top]
    for key, prop in schema["properties"].items():
        ref = prop.get("$ref") or next(
            (p["$ref"] for p in prop.get("anyOf", []) if "$ref" in p), None
        )
        if ref is None:
            top["rows"].append(_row(key, prop, key in schema.get("required", [])))
            continue
        model = defs[ref.rsplit("/", 1)[-1]]
        rows = [
            _row(name, sub, name in model.get("required", []))
            for name, sub in model["properties"].items()
        ]
        sections.append(
            {"title": f"[{key}]", "description": model.get("description", ""), "rows": rows}
        )
    return sections
