"""Patterns of names and keys, and where recipes live: shared by the schema and the
light command paths (nothing heavy is imported here; image references have their own
grammar in imgforge.reference)."""

from __future__ import annotations

import re
from pathlib import Path

NAME_RE = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
ENV_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# An apt-get install argument that apt reads as one package, never as an action or a
# pattern (apt-pkg/cacheset.cc): a Debian policy name (5.6.1) not ending in '-' (a
# trailing '-' is the "remove" modifier), then :ARCH, then =VERSION or /RELEASE, where
# nothing ends in '-' or '+' (modifiers) and no character starts a pattern (? ~), a
# task (^) or a glob/regex (* [ ] ! | $).
APT_NAME = r"[a-z0-9][a-z0-9+.-]*[a-z0-9+.]"
APT_ARCH = r"[a-z0-9]+(?:-[a-z0-9]+)*"
APT_VERSION = r"[0-9](?:[A-Za-z0-9.+~:-]*[A-Za-z0-9.~])?"
APT_RELEASE = r"[A-Za-z0-9](?:[A-Za-z0-9.+-]*[A-Za-z0-9.])?"
APT_RE = re.compile(rf"^{APT_NAME}(?::{APT_ARCH})?(?:={APT_VERSION}|/{APT_RELEASE})?$")
LABEL_KEY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]*$")
# Characters allowed in [files] paths: enough for real trees, none that a Dockerfile
# COPY treats as a glob or variable or that a .def %files line splits on.
PATH_RE = re.compile(r"^[A-Za-z0-9._@+,=/-]+$")
URL_RE = re.compile(r"^https?://[^\s'\"\\]+$")

# Go's unicode.IsSpace (strings.TrimSpace, bufio.ScanWords): the Unicode White_Space
# property. Python's str.strip() and str.split() also take \x1c-\x1f, which Go does not;
# Docker's and Apptainer's parsers, ported here, trim with Go's set.
GO_SPACE = (
    "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
    "\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)

RECIPE_PREFIX = "recipe:"


def base_recipe_of(base: str) -> str | None:
    """The parent recipe's name for a ``recipe:NAME`` base, else None (an image)."""
    return base[len(RECIPE_PREFIX) :] if base.startswith(RECIPE_PREFIX) else None


# imgforge's own label namespace (provenance, roles): never a recipe's.
LABEL_NAMESPACE = "org.imgforge"

PROJECT_FILE = "imgforge.toml"


def recipe_files(directory: Path) -> list[Path]:
    """The recipe files in ``directory``, sorted (the project file excluded)."""
    return sorted(p for p in Path(directory).glob("*.toml") if p.name != PROJECT_FILE)
