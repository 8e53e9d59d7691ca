"""What ``imgforge --version`` prints: imgforge's version and, verbosely, its surroundings."""

from __future__ import annotations

import platform
import sys
from importlib import metadata
from pathlib import Path

from imgforge import __version__

# The libraries whose versions change imgforge's behaviour (parsing, rendering, the
# Engine API client, import of .def files), in the order of a bug report.
LIBRARIES = (
    "docker", "jinja2", "pydantic", "networkx", "rich", "packaging", "spython", "google-re2"
)  # fmt: skip


def library_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def version_text(*, verbose: bool) -> str:
    """``imgforge X.Y.Z``; with ``verbose``, also Python, the platform, where imgforge
    is installed and the key libraries' versions."""
    from imgforge.render import make_environment

    return (
        make_environment()
        .get_template("version.txt.j2")
        .render(
            version=__version__,
            verbose=verbose,
            python=f"{platform.python_implementation()} {platform.python_version()}",
            executable=sys.executable,
            platform=platform.platform(terse=True),
            location=str(Path(__file__).resolve().parent.parent),
            libraries=[(name, library_version(name)) for name in LIBRARIES],
        )
    )
