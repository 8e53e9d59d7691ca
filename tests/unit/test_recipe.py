"""imgforge.recipe: every bad recipe is refused with its exact ``PATH: KEY: REASON`` message."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from imgforge.errors import RecipeError
from imgforge.recipes.model import Recipe, load, load_project

BASE = 'base = "nvcr.io/nvidia/pytorch:24.01-py3"\n'
NAME_RULE = (
    "is not a valid name (lower-case letters, digits and . _ - between them, "
    "as in a Docker repository name)"
)
Setup = Callable[[Path], None]


def _nothing(directory: Path) -> None:
    pass


def _escaping_symlink(directory: Path) -> None:
    outside = directory.parent / "outside"
    outside.mkdir()
    (outside / "secret").write_text("s\n")
    os.symlink(outside, directory / "data")


def _requirements_dir(directory: Path) -> None:
    (directory / "reqs").mkdir()


def _requirements_symlink(directory: Path) -> None:
    (directory.parent / "req.txt").write_text("numpy\n")
    os.symlink(directory.parent / "req.txt", directory / "req.txt")


# (id, recipe text, key, reason[, setup]): the message must be exactly f"{path}: {key}: {reason}".
BAD: list[tuple[str, str, str, str] | tuple[str, str, str, str, Setup]] = [
    ("unknown-top-level", BASE + 'colour = "red"\n', "colour", "unknown key"),
    ("unknown-in-pip", BASE + "[pip]\nindex = 1\n", "pip.index", "unknown key"),
    ("unknown-in-build", BASE + "[build]\nnetwork = 'host'\n", "build.network", "unknown key"),
    ("base-missing", 'name = "x"\n', "base", "required key is missing"),
    ("tag-int", BASE + "tag = 1\n", "tag", "expected a string, got int"),
    ("tag-float", BASE + "tag = 1.0\n", "tag", "expected a string, got float"),
    ("apt-packages-str", BASE + '[apt]\npackages = "x"\n', "apt.packages",
     "expected an array, got str"),
    ("apt-not-table", BASE + "apt = 1\n", "apt", "expected a table, got int"),
    ("gpus-str", BASE + '[build]\ngpus = "yes"\n', "build.gpus", "expected true or false, got str"),
    ("env-value-int", BASE + "[env]\nX = 1\n", "env.X", "expected a string, got int"),
    ("env-value-table", BASE + "[env.X]\nY = 'a'\n", "env.X", "expected a string, got dict"),
    ("run-commands-str", BASE + '[run]\ncommands = "ls"\n', "run.commands",
     "expected an array, got str"),
    ("runscript-str", BASE + 'runscript = "x"\n', "runscript", "expected a table, got str"),
    ("runscript-no-command", BASE + "[runscript]\n", "runscript",
     "give command, entrypoint or both"),
    ("files-dest-int", BASE + '[files]\n"f" = 1\n', "files.f", "expected a string, got int"),
    ("bad-name-upper", BASE + 'name = "My_Proj"\n', "name", f"'My_Proj' {NAME_RULE}"),
    ("label-build", BASE + '[labels]\n"org.label-schema.build-arch" = "x"\n',
     "labels.org.label-schema.build-arch",
     "'org.label-schema.build-arch' is a label the SIF build writes (Apptainer's build labels)"),
    ("bad-name-leading-dash", BASE + 'name = "-x"\n', "name", f"'-x' {NAME_RULE}"),
    ("bad-tag", BASE + 'tag = "-x"\n', "tag", "'-x' is not a valid Docker tag"),
    ("bad-tag-space", BASE + 'tag = "1 0"\n', "tag", "'1 0' is not a valid Docker tag"),
    ("bad-base-upper", 'base = "nvcr.io/NVIDIA/pytorch"\n', "base",
     "'nvcr.io/NVIDIA/pytorch' is neither a Docker image reference (invalid reference "
     "format: repository name (NVIDIA/pytorch) must be lowercase) nor recipe:NAME"),
    ("bad-base-shell", 'base = "ubuntu; rm -rf /"\n', "base",
     "'ubuntu; rm -rf /' is neither a Docker image reference (invalid reference format) "
     "nor recipe:NAME"),
    ("bad-base-recipe", 'base = "recipe:Foo"\n', "base", f"'Foo' {NAME_RULE}"),
    ("apt-shell-metachar", BASE + '[apt]\npackages = ["vim; rm -rf /"]\n', "apt.packages[0]",
     "'vim; rm -rf /' is not a valid Debian package name"),
    ("apt-command-subst", BASE + '[apt]\npackages = ["ok", "$(id)"]\n', "apt.packages[1]",
     "'$(id)' is not a valid Debian package name"),
    ("apt-uppercase", BASE + '[apt]\npackages = ["Vim"]\n', "apt.packages[0]",
     "'Vim' is not a valid Debian package name"),
    ("apt-option", BASE + '[apt]\npackages = ["-oAPT::x=1"]\n', "apt.packages[0]",
     "'-oAPT::x=1' is not a valid Debian package name"),
    ("pip-marker-injection", BASE + '[pip]\npackages = ["numpy; echo hi"]\n', "pip.packages[0]",
     "'numpy; echo hi' is not a valid PEP 508 requirement "
     "(Expected a marker variable or quoted string)"),
    ("pip-and-and", BASE + '[pip]\npackages = ["&& curl x"]\n', "pip.packages[0]",
     "'&& curl x' is not a valid PEP 508 requirement "
     "(Expected package name at the start of dependency specifier)"),
    ("pip-option", BASE + '[pip]\npackages = ["--index-url=x"]\n', "pip.packages[0]",
     "'--index-url=x' is not a valid PEP 508 requirement "
     "(Expected package name at the start of dependency specifier)"),
    ("pip-newline", BASE + '[pip]\npackages = ["numpy\\nrm"]\n', "pip.packages[0]",
     "must not contain a newline"),
    ("env-key-digit", BASE + '[env]\n1X = "a"\n', "env.1X",
     "'1X' is not a valid variable name ([A-Za-z_][A-Za-z0-9_]*)"),
    ("env-key-dash", BASE + '[env]\nA-B = "a"\n', "env.A-B",
     "'A-B' is not a valid variable name ([A-Za-z_][A-Za-z0-9_]*)"),
    ("env-key-empty", BASE + '[env]\n"" = "a"\n', "env.",
     "'' is not a valid variable name ([A-Za-z_][A-Za-z0-9_]*)"),
    ("env-value-nul", BASE + '[env]\nX = "a\\u0000b"\n', "env.X",
     "must not contain a NUL character"),
    ("env-value-newline", BASE + '[env]\nX = "a\\nb"\n', "env.X", "must not contain a newline"),
    ("env-value-multiline", BASE + '[env]\nX = """a\nb"""\n', "env.X",
     "must not contain a newline"),
    ("env-value-cr", BASE + '[env]\nX = "a\\rb"\n', "env.X", "must not contain a newline"),
    ("label-value-newline", BASE + '[labels]\nm = "a\\nb"\n', "labels.m",
     "must not contain a newline"),
    ("label-key-space", BASE + '[labels]\n"a b" = "x"\n', "labels.a b",
     "'a b' is not a valid label key (letters, digits and . _ / -)"),
    ("files-absolute-source", BASE + '[files]\n"/etc/passwd" = "/x"\n', "files./etc/passwd",
     "'/etc/passwd' must be relative to the recipe's directory"),
    ("files-dotdot-source", BASE + '[files]\n"../x" = "/x"\n', "files.../x",
     "'../x' must not contain '..'"),
    ("files-inner-dotdot", BASE + '[files]\n"a/../../x" = "/x"\n', "files.a/../../x",
     "'a/../../x' must not contain '..'"),
    ("files-glob-source", BASE + '[files]\n"*.py" = "/x/"\n', "files.*.py",
     "'*.py' is not an allowed path (letters, digits and . _ @ + , = / - only)"),
    ("files-missing-source", BASE + '[files]\n"nothere" = "/x"\n', "files.nothere",
     "'nothere' does not exist"),
    ("files-relative-dest", BASE + '[files]\n"f" = "x"\n', "files.f",
     "'x' must be an absolute path in the image"),
    ("files-dest-variable", BASE + '[files]\n"f" = "/opt/$HOME"\n', "files.f",
     "'/opt/$HOME' is not an allowed path (letters, digits and . _ @ + , = / - only)"),
    ("files-symlink-escape", BASE + '[files]\n"data" = "/data/"\n', "files.data",
     "'data' leads outside the recipe's directory", _escaping_symlink),
    ("requirements-missing", BASE + '[pip]\nrequirements = ["req.txt"]\n',
     "pip.requirements[0]", "'req.txt' does not exist"),
    ("requirements-dir", BASE + '[pip]\nrequirements = ["reqs"]\n', "pip.requirements[0]",
     "'reqs' is not a file", _requirements_dir),
    ("requirements-symlink-escape", BASE + '[pip]\nrequirements = ["req.txt"]\n',
     "pip.requirements[0]", "'req.txt' leads outside the recipe's directory",
     _requirements_symlink),
    ("requirements-absolute", BASE + '[pip]\nrequirements = ["/etc/req.txt"]\n',
     "pip.requirements[0]", "'/etc/req.txt' must be relative to the recipe's directory"),
    ("index-url-ftp", BASE + '[pip]\nindex_url = "ftp://x"\n', "pip.index_url",
     "'ftp://x' is not an http(s) URL"),
    ("index-url-quote", BASE + "[pip]\nindex_url = \"https://x/'$(id)'\"\n", "pip.index_url",
     "\"https://x/'$(id)'\" is not an http(s) URL"),
    ("extra-index-file", BASE + '[pip]\nextra_index_urls = ["file:///x"]\n',
     "pip.extra_index_urls[0]", "'file:///x' is not an http(s) URL"),
    ("strategy-enum", BASE + '[build]\nstrategy = "magic"\n', "build.strategy",
     "'magic' is not one of 'dockerfile' or 'commit'"),
    ("runscript-unbalanced-quote", BASE + "[runscript]\ncommand = \"python 'a\"\n",
     "runscript.command", "cannot be split into words: No closing quotation"),
    ("runscript-empty", BASE + '[runscript]\ncommand = ""\n', "runscript.command",
     "must not be empty"),
    ("runscript-newline", BASE + '[runscript]\ncommand = "a\\nb"\n', "runscript.command",
     "must not contain a newline"),
    ("run-blank-command", BASE + '[run]\ncommands = ["  "]\n', "run.commands[0]",
     "must not be empty"),
]


@pytest.mark.parametrize("case", BAD, ids=[case[0] for case in BAD])
def test_bad_recipe_message(
    tmp_path: Path, case: tuple[str, str, str, str] | tuple[str, str, str, str, Setup]
) -> None:
    _, text, key, reason, *rest = case
    directory = tmp_path / "recipes"
    directory.mkdir()
    (directory / "f").write_text("a file\n")
    setup = rest[0] if rest else _nothing
    setup(directory)
    path = directory / "proj.toml"
    path.write_text(text)
    with pytest.raises(RecipeError) as info:
        load(path)
    assert str(info.value) == f"{path}: {key}: {reason}"
    assert (info.value.path, info.value.key, info.value.reason) == (str(path), key, reason)


def test_name_missing_and_file_stem_invalid(tmp_path: Path) -> None:
    path = tmp_path / "My Recipe.toml"
    path.write_text(BASE)
    with pytest.raises(RecipeError) as info:
        load(path)
    assert str(info.value) == (
        f"{path}: name: missing, and the file name 'My Recipe' is not a valid name"
    )


@pytest.mark.parametrize(
    ("text", "line"),
    [(BASE + "tag = \n", 2), (BASE + "[env\n", 2), ('name = "a"\n\n\n' + BASE + 'x = "a\n', 5)],
)
def test_toml_syntax_error_names_the_line(tmp_path: Path, text: str, line: int) -> None:
    path = tmp_path / "proj.toml"
    path.write_text(text)
    with pytest.raises(RecipeError) as info:
        load(path)
    message = str(info.value)
    assert message.startswith(f"{path}: TOML syntax error: ")
    assert f"(at line {line}, column " in message
    assert "\n" not in message


def test_toml_duplicate_key_is_a_syntax_error(tmp_path: Path) -> None:
    path = tmp_path / "proj.toml"
    path.write_text(BASE + 'tag = "1"\ntag = "2"\n')
    with pytest.raises(RecipeError, match=r": TOML syntax error: .*line 3"):
        load(path)


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "proj.toml"
    path.write_bytes(BASE.encode() + b'tag = "\xff"\n')
    with pytest.raises(RecipeError) as info:
        load(path)
    assert str(info.value) == f"{path}: not valid UTF-8"


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    with pytest.raises(RecipeError) as info:
        load(path)
    assert str(info.value) == f"{path}: cannot read file: No such file or directory"


def test_relative_path_is_reported_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "proj.toml").write_text(BASE + "tag = 1\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(RecipeError) as info:
        load(Path("proj.toml"))
    assert str(info.value) == f"{tmp_path / 'proj.toml'}: tag: expected a string, got int"


# Good recipes.


def test_defaults(tmp_path: Path) -> None:
    path = tmp_path / "my-proj.toml"
    path.write_text(BASE)
    recipe = load(path)
    assert recipe == Recipe(
        path=path, name="my-proj", tag="latest", base="nvcr.io/nvidia/pytorch:24.01-py3"
    )
    assert recipe.image == "my-proj:latest"
    assert recipe.directory == tmp_path
    assert recipe.base_recipe is None
    assert (recipe.strategy, recipe.gpus, recipe.runscript) == ("dockerfile", False, None)


def test_full_recipe(tmp_path: Path) -> None:
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "train.py").write_text("print(1)\n")
    (tmp_path / "requirements.txt").write_text("numpy\n")
    path = tmp_path / "whatever.toml"
    path.write_text(
        'name = "proj"\ntag = "1.0"\nbase = "recipe:common"\n'
        '[apt]\npackages = ["ffmpeg", "libgl1", "libc6:amd64", "vim=2:9.0.1378-2"]\n'
        '[pip]\npackages = ["einops", "timm==0.9.16", "torch[cuda]>=2; python_version>\'3\'"]\n'
        'requirements = ["requirements.txt"]\nindex_url = "https://pypi.example.org/simple"\n'
        'extra_index_urls = ["http://mirror.example.org/simple"]\n'
        '[env]\nZED = "z"\nALPHA = "a $HOME \\"q\\" \\\\ é"\nMID = ""\n'
        '[files]\n"app/" = "/opt/app/"\n"requirements.txt" = "/opt/req.txt"\n'
        '[run]\ncommands = ["echo 1", "echo 2\\necho 3"]\n'
        '[labels]\n"z.label" = "1"\nmaintainer = "me@example.org"\n'
        '[runscript]\ncommand = "python /opt/app/train.py --x \'a b\'"\n'
        '[build]\nstrategy = "commit"\ngpus = true\n'
    )
    recipe = load(path)
    assert recipe.name == "proj"
    assert recipe.image == "proj:1.0"
    assert recipe.base_recipe == "common"
    assert recipe.apt_packages == ("ffmpeg", "libgl1", "libc6:amd64", "vim=2:9.0.1378-2")
    assert recipe.pip_packages[2] == "torch[cuda]>=2; python_version>'3'"
    assert recipe.pip_requirements == ("requirements.txt",)
    assert recipe.pip_index_url == "https://pypi.example.org/simple"
    assert recipe.pip_extra_index_urls == ("http://mirror.example.org/simple",)
    # env and labels are sorted by name; files and commands keep the recipe's order.
    assert recipe.env == (("ALPHA", 'a $HOME "q" \\ é'), ("MID", ""), ("ZED", "z"))
    assert recipe.labels == (("maintainer", "me@example.org"), ("z.label", "1"))
    assert recipe.files == (("app/", "/opt/app/"), ("requirements.txt", "/opt/req.txt"))
    assert recipe.run_commands == ("echo 1", "echo 2\necho 3")
    assert recipe.runscript == "python /opt/app/train.py --x 'a b'"
    assert (recipe.strategy, recipe.gpus) == ("commit", True)


def test_recipe_is_frozen(tmp_path: Path) -> None:
    path = tmp_path / "proj.toml"
    path.write_text(BASE)
    recipe = load(path)
    with pytest.raises(AttributeError):
        recipe.name = "other"  # type: ignore[misc]


def test_symlink_inside_recipe_dir_is_fine(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    os.symlink(tmp_path / "real", tmp_path / "link")
    path = tmp_path / "proj.toml"
    path.write_text(BASE + '[files]\n"link" = "/opt/x/"\n')
    assert load(path).files == (("link", "/opt/x/"),)


@pytest.mark.parametrize(
    ("base", "expected"),
    [
        ("recipe:common", "common"),
        ("nvcr.io/nvidia/pytorch:24.01-py3", None),
        ("localhost:5000/ngc/pytorch:24.01-py3", None),
        ("ubuntu@sha256:" + "a" * 64, None),
    ],
)
def test_base_recipe(tmp_path: Path, base: str, expected: str | None) -> None:
    path = tmp_path / "proj.toml"
    path.write_text(f'base = "{base}"\n')
    assert load(path).base_recipe == expected


# The project file.


def test_load_project_absent(tmp_path: Path) -> None:
    assert load_project(tmp_path) == {}


def test_load_project_base_map(tmp_path: Path) -> None:
    (tmp_path / "imgforge.toml").write_text(
        '[base_map]\n"nvcr.io/nvidia/pytorch:24.01-py3" = "registry.local:5000/ngc/pytorch:24.01"\n'
    )
    assert load_project(tmp_path) == {
        "nvcr.io/nvidia/pytorch:24.01-py3": "registry.local:5000/ngc/pytorch:24.01"
    }


@pytest.mark.parametrize(
    ("text", "key", "reason"),
    [
        ('colour = "red"\n', "colour", "unknown key"),
        ("base_map = 1\n", "base_map", "expected a table, got int"),
        (
            '[base_map]\n"ubuntu" = "Local Mirror"\n',
            "base_map.ubuntu",
            "'Local Mirror' is neither a Docker image reference (invalid reference format: "
            "repository name (library/Local Mirror) must be lowercase) nor recipe:NAME",
        ),
        ('[base_map]\n"ubuntu" = 1\n', "base_map.ubuntu", "expected a string, got int"),
    ],
)
def test_load_project_errors(tmp_path: Path, text: str, key: str, reason: str) -> None:
    path = tmp_path / "imgforge.toml"
    path.write_text(text)
    with pytest.raises(RecipeError) as info:
        load_project(tmp_path)
    assert str(info.value) == f"{path}: {key}: {reason}"
