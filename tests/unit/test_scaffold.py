"""imgforge init and imgforge import: recipes that load, and clear refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from imgforge.cli import main
from imgforge.recipes.model import load
from imgforge.recipes.schema import recipe_json_schema

NGC = "nvcr.io/nvidia/pytorch:24.01-py3"
DOCKERFILE = f"""FROM {NGC}
# tools
RUN apt-get update && apt-get install -y --no-install-recommends \\
      ffmpeg libgl1 \\
 && rm -rf /var/lib/apt/lists/*
RUN pip install --no-cache-dir einops "timm==0.9.16" -r requirements.txt
ENV MYVAR="hello world" OTHER=1
ENV LEGACY value with spaces
COPY src/ /opt/src/
RUN python -m compileall /opt/src && echo done
LABEL maintainer="me@example.org"
CMD ["python", "/opt/src/a.py", "--flag value"]
"""


def test_init_writes_a_commented_recipe_that_loads(tmp_path: Path) -> None:
    assert main(["init", "demo", "--base", NGC, "--dir", str(tmp_path)]) == 0
    recipe = load(tmp_path / "demo.toml")
    assert (recipe.name, recipe.tag, recipe.base) == ("demo", "latest", NGC)
    assert "#:schema" in (tmp_path / "demo.toml").read_text()


def test_init_never_overwrites(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "demo.toml").write_text("keep")
    assert main(["init", "demo", "--base", NGC, "--dir", str(tmp_path)]) == 2
    assert (tmp_path / "demo.toml").read_text() == "keep"
    assert "exists" in capsys.readouterr().err


def test_import_converts_a_simple_dockerfile(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.py").write_text("print(1)\n")
    (tmp_path / "requirements.txt").write_text("six\n")
    (tmp_path / "Dockerfile").write_text(DOCKERFILE)
    assert main(["import", str(tmp_path / "Dockerfile"), "--name", "proj"]) == 0
    recipe = load(tmp_path / "proj.toml")
    assert recipe.base == NGC
    assert recipe.apt_packages == ("ffmpeg", "libgl1")
    assert recipe.pip_packages == ("einops", "timm==0.9.16")
    assert recipe.pip_requirements == ("requirements.txt",)
    assert dict(recipe.env) == {
        "MYVAR": "hello world", "OTHER": "1", "LEGACY": "value with spaces"
    }  # fmt: skip
    assert recipe.files == (("src/", "/opt/src/"),)
    assert recipe.run_commands == ("python -m compileall /opt/src", "echo done")
    assert dict(recipe.labels) == {"maintainer": "me@example.org"}
    assert recipe.runscript == "python /opt/src/a.py '--flag value'"


def test_import_lists_everything_it_cannot_express(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(
        "FROM a AS build\nRUN make\nFROM b\nCOPY --from=build /x /x\nUSER nobody\n"
        "WORKDIR /w\nENTRYPOINT [\"/x\"]\nEXPOSE 80\n"
    )
    assert main(["import", str(dockerfile), "--name", "x"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    for expected in ["FROM a AS build", "a second FROM", "COPY --from=build", "USER nobody",
                     "WORKDIR /w", "ENTRYPOINT", "EXPOSE 80"]:  # fmt: skip
        assert expected in err
    assert not (tmp_path / "x.toml").exists()


@pytest.mark.parametrize("source", ["Dockerfile", "legacy.def"])
def test_the_schema_reference_resolves_from_where_the_recipe_is_written(
    tmp_path: Path, source: str
) -> None:
    """``-o`` elsewhere: the ``#:schema`` path is relative to the written recipe."""
    (tmp_path / "src").mkdir()
    (tmp_path / "project" / "schema").mkdir(parents=True)
    (tmp_path / "project" / "schema" / "recipe.schema.json").write_text("{}")
    text = f"FROM {NGC}\n" if source == "Dockerfile" else f"Bootstrap: docker\nFrom: {NGC}\n"
    (tmp_path / "src" / source).write_text(text)
    target = tmp_path / "project" / "recipes" / "out.toml"
    target.parent.mkdir()
    argv = ["import", str(tmp_path / "src" / source), "--name", "out", "-o", str(target)]
    assert main(argv) == 0
    first = target.read_text().splitlines()[0]
    assert first == "#:schema ../schema/recipe.schema.json"
    assert not (tmp_path / "src" / "recipe.schema.json").exists()


def test_init_finds_the_project_schema_or_writes_one(tmp_path: Path) -> None:
    (tmp_path / "schema").mkdir()
    (tmp_path / "schema" / "recipe.schema.json").write_text("{}")
    (tmp_path / "recipes").mkdir()
    assert main(["init", "a", "--base", NGC, "--dir", str(tmp_path / "recipes")]) == 0
    assert (tmp_path / "recipes" / "a.toml").read_text().startswith(
        "#:schema ../schema/recipe.schema.json\n"
    )
    assert main(["init", "b", "--base", NGC, "--dir", str(tmp_path)]) == 0
    assert (tmp_path / "b.toml").read_text().startswith("#:schema ./schema/recipe.schema.json\n")
    elsewhere = tmp_path / "other" / "elsewhere"
    elsewhere.mkdir(parents=True)
    assert main(["init", "c", "--base", NGC, "--dir", str(elsewhere)]) == 0
    assert (elsewhere / "c.toml").read_text().startswith("#:schema ./recipe.schema.json\n")
    written = json.loads((elsewhere / "recipe.schema.json").read_text())
    assert written == recipe_json_schema()
