"""Load recipe files (TOML) into frozen, fully checked Recipe values."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from imgforge.errors import RecipeError
from imgforge.patterns import LABEL_NAMESPACE, PROJECT_FILE, base_recipe_of
from imgforge.recipes.inputfile import read_toml
from imgforge.recipes.requirements import check_requirements_file
from imgforge.recipes.schema import (
    ProjectModel,
    RecipeModel,
    check_env_key,
    check_label_key,
)
from imgforge.reference import why_not_reference


@dataclass(frozen=True)
class Recipe:
    """One recipe, as loaded: every path resolved, every value checked."""

    path: Path
    name: str
    tag: str
    base: str
    apt_packages: tuple[str, ...] = ()
    pip_packages: tuple[str, ...] = ()
    pip_requirements: tuple[str, ...] = ()
    pip_index_url: str | None = None
    pip_extra_index_urls: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    files: tuple[tuple[str, str], ...] = ()
    run_commands: tuple[str, ...] = ()
    labels: tuple[tuple[str, str], ...] = ()
    runscript: str | None = None
    entrypoint: str | None = None
    strategy: str = "dockerfile"
    gpus: bool = False
    # [build] outputs as the recipe lists them; None where it doesn't say.
    outputs: tuple[str, ...] | None = None

    @property
    def directory(self) -> Path:
        return self.path.parent

    @property
    def image(self) -> str:
        return f"{self.name}:{self.tag}"

    @property
    def base_recipe(self) -> str | None:
        """The parent recipe's name for a ``recipe:`` base, else None."""
        return base_recipe_of(self.base)


def _key_of(loc: tuple[int | str, ...]) -> str:
    key = ""
    for part in loc:
        if isinstance(part, int):
            key += f"[{part}]"
        elif part in {"[key]"}:
            continue
        else:
            key += f".{part}" if key else str(part)
    return key


_TYPE_WORDS = {
    "string_type": "expected a string",
    "bool_type": "expected true or false",
    "list_type": "expected an array",
    "dict_type": "expected a table",
    "model_type": "expected a table",
    "model_attributes_type": "expected a table",
}


def _reason(error: Any) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required key is missing"
    if kind in _TYPE_WORDS:
        return f"{_TYPE_WORDS[kind]}, got {type(error['input']).__name__}"
    if kind == "literal_error":
        return f"{error['input']!r} is not one of {error['ctx']['expected']}"
    message: str = error["msg"]
    return message.removeprefix("Value error, ")


def _translate(path: Path, exc: ValidationError) -> RecipeError:
    error = exc.errors()[0]
    return RecipeError(path, _key_of(tuple(error["loc"])), _reason(error))


def _check_extra(path: Path, model: RecipeModel) -> None:
    for key in model.env:
        if why := check_env_key(key):
            raise RecipeError(path, f"env.{key}", why)
    for key in model.labels:
        if why := check_label_key(key):
            raise RecipeError(path, f"labels.{key}", why)
        if key == LABEL_NAMESPACE or key.startswith(f"{LABEL_NAMESPACE}."):
            raise RecipeError(
                path, f"labels.{key}", f"{LABEL_NAMESPACE}.* labels are imgforge's own"
            )
    if model.build.gpus and model.build.strategy != "commit":
        raise RecipeError(
            path,
            "build.gpus",
            'true needs strategy = "commit" (docker build runs no step with GPUs)',
        )
    _check_sources(path, model)


def _check_sources(path: Path, model: RecipeModel) -> None:
    """Walk every source once (imgforge.tree refuses what escapes or can't be copied
    alike everywhere) and check each requirements file's content."""
    from imgforge.recipes.tree import load_ignore, walk_source

    ignore = load_ignore(path.parent)
    for index, source in enumerate(model.pip.requirements):
        key = f"pip.requirements[{index}]"
        entries = walk_source(path.parent, source, owner=path, key=key, ignore=ignore)
        if entries[0].is_dir:
            raise RecipeError(path, key, f"{source!r} is not a file")
        check_requirements_file(Path(entries[0].path), owner=path, key=key)
    for source in model.files:
        walk_source(path.parent, source, owner=path, key=f"files.{source}", ignore=ignore)


def from_model(path: Path, model: RecipeModel) -> Recipe:
    """Turn a checked model into a Recipe value (sorted, immutable)."""
    name = model.name if model.name is not None else path.stem
    return Recipe(
        path=path,
        name=name,
        tag=model.tag,
        base=model.base,
        apt_packages=tuple(model.apt.packages),
        pip_packages=tuple(model.pip.packages),
        pip_requirements=tuple(model.pip.requirements),
        pip_index_url=model.pip.index_url,
        pip_extra_index_urls=tuple(model.pip.extra_index_urls),
        env=tuple(sorted(model.env.items())),
        files=tuple(model.files.items()),
        run_commands=tuple(model.run.commands),
        labels=tuple(sorted(model.labels.items())),
        runscript=model.runscript.command if model.runscript else None,
        entrypoint=model.runscript.entrypoint if model.runscript else None,
        strategy=model.build.strategy,
        gpus=model.build.gpus,
        outputs=None if model.build.outputs is None else tuple(model.build.outputs),
    )


def load(path: Path) -> Recipe:
    """Load and check one recipe file."""
    path = Path(path).absolute()
    data = read_toml(path)
    try:
        model = RecipeModel.model_validate(data)
    except ValidationError as exc:
        raise _translate(path, exc) from None
    if model.name is None:
        try:
            RecipeModel.model_validate({**data, "name": path.stem})
        except ValidationError:
            raise RecipeError(
                path, "name", f"missing, and the file name {path.stem!r} is not a valid name"
            ) from None
    _check_extra(path, model)
    recipe = from_model(path, model)
    if why := why_not_reference(recipe.image):
        raise RecipeError(path, "name", f"{recipe.image!r} is not a Docker image name ({why})")
    return recipe


def load_project(directory: Path) -> dict[str, str]:
    """Read ``imgforge.toml`` beside the recipes; return its base map."""
    path = Path(directory).absolute() / PROJECT_FILE
    if not path.exists():
        return {}
    try:
        model = ProjectModel.model_validate(read_toml(path))
    except ValidationError as exc:
        raise _translate(path, exc) from None
    return dict(model.base_map)
