"""What a pip requirements file of a recipe may say: options that make pip read elsewhere
are refused.

pip reads a requirements file line by line (``pip/_internal/req/req_file.py``): lines
ending in ``\\`` are joined, ``#`` comments dropped, ``${NAME}`` replaced from the
environment, and everything from the first word starting with ``-`` parsed as options by
optparse (long options may be abbreviated). The same steps run here, with the options pip
accepts there, and these are refused:

* ``-r``/``--requirement`` and ``-c``/``--constraint``: includes. pip looks for them beside
  the copy of the file in the image, where nothing else was copied; list each file in
  ``pip.requirements`` instead;
* ``-i``/``--index-url``, ``--extra-index-url``, ``--no-index``, ``-f``/``--find-links``,
  ``--trusted-host``: they change where pip downloads from; the recipe's ``[pip]`` keys say
  that, checked, for the Dockerfile and the ``.def`` alike;
* ``-e``/``--editable``: a source tree or a VCS checkout instead of a package;
* ``${NAME}``: its value would come from the build's environment, not from the recipe.
"""

from __future__ import annotations

import optparse
import re
import shlex
from pathlib import Path

from imgforge.errors import RecipeError
from imgforge.recipes.tree import read_limited, shown

_COMMENT = re.compile(r"(^|\s+)#.*$")
_ENV_VAR = re.compile(r"\$\{[A-Z0-9_]+\}")
_VALUED = {
    ("-r", "--requirement"): "requirement",
    ("-c", "--constraint"): "constraint",
    ("-e", "--editable"): "editable",
    ("-i", "--index-url"): "index_url",
    ("--extra-index-url",): "extra_index_url",
    ("-f", "--find-links"): "find_links",
    ("--trusted-host",): "trusted_host",
    ("--no-binary",): "no_binary",
    ("--only-binary",): "only_binary",
    ("--use-feature",): "use_feature",
    ("--global-option",): "global_option",
    ("--config-settings",): "config_settings",
    ("--hash",): "hash",
}
_FLAGS = ("--no-index", "--prefer-binary", "--require-hashes", "--pre")
_REFUSED = {
    "requirement": "includes another requirements file; list it in pip.requirements instead",
    "constraint": "includes a constraints file, which imgforge does not copy into the image",
    "editable": "installs an editable source tree, which imgforge does not copy",
    "index_url": "sets the package index; use pip.index_url in the recipe",
    "extra_index_url": "adds a package index; use pip.extra_index_urls in the recipe",
    "no_index": "changes where pip looks for packages; use the recipe's [pip] keys",
    "find_links": "adds a place pip downloads from; use the recipe's [pip] keys",
    "trusted_host": "turns off TLS checks for a host",
}


class _Parser(optparse.OptionParser):
    def error(self, msg: str) -> None:  # type: ignore[override]
        raise ValueError(msg)


def _parser() -> _Parser:
    parser = _Parser(add_help_option=False)
    for names, dest in _VALUED.items():
        parser.add_option(*names, dest=dest, action="append")
    for flag in _FLAGS:
        parser.add_option(flag, dest=flag[2:].replace("-", "_"), action="store_true")
    return parser


def logical_lines(text: str) -> list[tuple[int, str]]:
    """(first line number, line) after pip's ``join_lines`` and ``ignore_comments``."""
    joined: list[tuple[int, str]] = []
    pending: list[str] = []
    start = 0
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.endswith("\\") or _COMMENT.match(line):
            line = " " + line if _COMMENT.match(line) else line
            joined.append((start, "".join([*pending, line])) if pending else (number, line))
            pending = []
        else:
            start = start if pending else number
            pending.append(line.strip("\\"))
    if pending:
        joined.append((start, "".join(pending)))
    cleaned = [(number, _COMMENT.sub("", line).strip()) for number, line in joined]
    return [(number, line) for number, line in cleaned if line]


def check_line(line: str) -> str | None:
    """Why pip must not read ``line`` as imgforge copies it, or None."""
    if _ENV_VAR.search(line):
        return "uses an environment variable (${NAME}), whose value the recipe does not say"
    words = line.split(" ")
    options = next((i for i, word in enumerate(words) if word.startswith("-")), len(words))
    if options == len(words):
        return None
    try:
        values, _ = _parser().parse_args(shlex.split(" ".join(words[options:])))
    except ValueError as exc:
        return f"has an option pip refuses here ({exc})"
    refused = [dest for dest in _REFUSED if getattr(values, dest)]
    return _REFUSED[refused[0]] if refused else None


def check_requirements_file(path: Path, *, owner: Path, key: str) -> None:
    """Refuse a requirements file that is too big, not UTF-8, or says what pip would
    follow outside what imgforge copies (the module docstring lists it)."""
    data = read_limited(path, owner=owner, key=key).removeprefix(b"\xef\xbb\xbf")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise RecipeError(owner, key, f"{shown(str(path))} is not valid UTF-8") from None
    for number, line in logical_lines(text):
        if why := check_line(line):
            raise RecipeError(owner, key, f"{shown(path.name)} line {number} {why}")
