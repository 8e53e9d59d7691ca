"""The rendered texts a Singularity image is made from and checked against, handed in."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Expected:
    """What imgforge writes into every SIF, to read back: the runscript's text from its
    ``OCI_ENTRYPOINT=`` line on (for the image's ENTRYPOINT and CMD), and the files under
    /.singularity.d that are the same for every image, by path under it."""

    runscript_body: str
    fixed: Mapping[str, str]


@dataclass(frozen=True)
class SifTexts:
    """What making the Singularity image needs: the /.singularity.d files by path under it,
    the .def an Apptainer build converts the image with (naming ``archive`` and
    ``env_file``, temporary paths decided with the job), the build date (seconds since the
    epoch) and what the read-back check expects."""

    files: Mapping[str, str]
    convert_deffile: str
    env_file: str
    archive: str
    built_at: int
    expected: Expected
