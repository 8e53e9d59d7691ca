"""The recipe schema: pydantic models that check every key of a recipe file."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from imgforge.patterns import ENV_KEY_RE, LABEL_KEY_RE
from imgforge.recipes.envnames import why_not_carried
from imgforge.recipes.fields import (
    NO_DOTDOT,
    SAFE_PATH,
    AbsolutePath,
    AptPackage,
    Base,
    Name,
    PipRequirement,
    RelativePath,
    ShellCommand,
    Tag,
    Text,
    Url,
    optional_command_words,
)
from imgforge.recipes.labels import is_build_label


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

    command: Annotated[str | None, AfterValidator(optional_command_words)] = Field(
        default=None,
        description=(
            "The image's CMD (and the SIF's): the default arguments, replaced by the "
            "arguments of docker run / apptainer run. Split into words with Python's shlex "
            "(POSIX quoting rules; no expansion, no comments)."
        ),
    )
    entrypoint: Annotated[str | None, AfterValidator(optional_command_words)] = Field(
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
    outputs: list[Literal["docker", "sif", "sqsh"]] | None = Field(
        default=None,
        description='What the build writes: "docker" (always), "sif", "sqsh" (an enroot image).',
    )

    @model_validator(mode="after")
    def _outputs(self) -> BuildSection:
        if self.outputs is not None:
            if "docker" not in self.outputs:
                raise ValueError('outputs: "docker" is what the other outputs are made from')
            if len(set(self.outputs)) != len(self.outputs):
                raise ValueError("outputs: each output once")
        return self


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
