"""Label names a SIF build writes over the image's own, so a recipe can't set them."""

from __future__ import annotations

# Apptainer writes its version under ``org.label-schema.usage.apptainer.version``;
# imgforge is not Apptainer, so a SIF imgforge wrote has its version under this name.
IMGFORGE_LABEL = "org.label-schema.usage.imgforge.version"
# Labels a SIF build adds to the image's own (they win on a collision, as in Apptainer).
BUILD_LABELS = (
    "org.label-schema.schema-version",
    "org.label-schema.build-date",
    "org.label-schema.build-arch",
    "org.label-schema.usage",
    "org.label-schema.usage.apptainer.version",
    "org.label-schema.usage.apptainer.runscript.help",
    IMGFORGE_LABEL,
    "org.label-schema.usage.singularity.version",
    "org.label-schema.usage.singularity.runscript.help",
    "org.opencontainers.image.base.name",
    "org.opencontainers.image.base.digest",
)
DEFFILE_LABEL = "org.label-schema.usage.singularity.deffile."

def is_build_label(key: str) -> bool:
    """Whether a SIF build (Apptainer's, SingularityCE's or imgforge's) writes ``key``."""
    return key in BUILD_LABELS or key.startswith(DEFFILE_LABEL)
