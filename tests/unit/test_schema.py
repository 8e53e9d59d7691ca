"""The shipped JSON Schema: up to date, and in agreement with the loader."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import jsonschema
import pytest

from imgforge.cli import main
from imgforge.errors import RecipeError
from imgforge.patterns import recipe_files
from imgforge.recipes.model import load
from imgforge.recipes.schema import recipe_json_schema

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "schema" / "recipe.schema.json"
VALIDATOR = jsonschema.Draft202012Validator(recipe_json_schema())


def test_shipped_schema_is_what_imgforge_schema_prints(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    printed = capsys.readouterr().out
    assert json.loads(printed) == json.loads(SHIPPED.read_text()), (
        "regenerate with: imgforge schema > schema/recipe.schema.json"
    )
    jsonschema.Draft202012Validator.check_schema(json.loads(printed))


@pytest.mark.parametrize("path", recipe_files(REPO / "recipes"), ids=lambda p: p.name)
def test_every_example_recipe_validates(path: Path) -> None:
    VALIDATOR.validate(tomllib.loads(path.read_text()))
    load(path)


BASE = 'base = "nvcr.io/nvidia/pytorch:24.01-py3"\n'
AGREE = [
    ("unknown key", BASE + "colour = 1\n"),
    ("bad name", BASE + 'name = "Has Caps"\n'),
    ("bad tag", BASE + 'tag = "-x"\n'),
    ("bad base", 'base = "not a ref"\n'),
    ("missing base", 'name = "x"\n'),
    ("apt injection", BASE + '[apt]\npackages = ["vim; rm -rf /"]\n'),
    ("pip newline", BASE + '[pip]\npackages = ["a\\nb"]\n'),
    ("env key", BASE + '[env]\n"1X" = "a"\n'),
    ("env newline", BASE + '[env]\nA = "a\\nb"\n'),
    ("env type", BASE + "[env]\nA = 1\n"),
    ("absolute source", BASE + '[files]\n"/etc/passwd" = "/x"\n'),
    ("dotdot source", BASE + '[files]\n"../x" = "/x"\n'),
    ("relative dest", BASE + '[files]\n"x" = "opt/x"\n'),
    ("label key", BASE + '[labels]\n"bad key" = "v"\n'),
    ("strategy", BASE + '[build]\nstrategy = "magic"\n'),
    ("gpus type", BASE + '[build]\ngpus = "yes"\n'),
    ("index url", BASE + '[pip]\nindex_url = "ftp://x"\n'),
    ("empty command", BASE + '[run]\ncommands = ["  "]\n'),
]


@pytest.mark.parametrize(("case", "text"), AGREE, ids=[c for c, _ in AGREE])
def test_schema_and_loader_refuse_the_same_input(case: str, text: str, tmp_path: Path) -> None:
    path = tmp_path / "r.toml"
    path.write_text(text)
    assert not VALIDATOR.is_valid(tomllib.loads(text)), case
    with pytest.raises(RecipeError):
        load(path)


def test_shipped_reference_is_generated_from_the_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema", "--format", "markdown"]) == 0
    assert capsys.readouterr().out == (REPO / "docs" / "RECIPES.md").read_text(), (
        "regenerate with: imgforge schema --format markdown > docs/RECIPES.md"
    )
