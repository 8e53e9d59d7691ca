"""The files ``enroot import`` writes into an image's root filesystem, from its config:
/etc/environment, /etc/rc, /etc/rc.local and /etc/fstab (enroot 4.1.2 ``docker::configure``),
byte for byte as enroot writes them for the same image."""

from __future__ import annotations

from imgforge.enroot.quote import quoted_words
from imgforge.recipes.image import ImageConfig

ENVIRONMENT = "etc/environment"
RC = "etc/rc"
RC_LOCAL = "etc/rc.local"
FSTAB = "etc/fstab"

RC_LOCAL_TEXT = (
    "# This file is sourced by /etc/rc when the container starts.\n"
    "# It can be used to manipulate the entrypoint or the command of the container.\n"
)
# What enroot runs when an image has neither ENTRYPOINT nor CMD.
DEFAULT_COMMAND = ("/bin/sh",)
VOLUME_OPTIONS = "none x-create=dir,bind,rw,nosuid,nodev"


def environment(config: ImageConfig) -> str:
    """The image's Env, one raw ``NAME=VALUE`` a line (``jq -r '.config.Env[]'``)."""
    return "".join(f"{entry}\n" for entry in config.env)


def fstab(config: ImageConfig) -> str:
    """Each volume as a bind mount of the container's own directory, in key order."""
    return "".join(f"${{ENROOT_ROOTFS}}{v} {v} {VOLUME_OPTIONS}\n" for v in config.volumes)


def rc(config: ImageConfig) -> str:
    """The labels as comments (a value's newlines made spaces), then the working directory
    and the ENTRYPOINT/CMD ``exec`` with Docker's rule for arguments."""
    labels = "".join(f"# {key} {value.replace(chr(10), ' ')}\n" for key, value in config.labels)
    workdir = config.workdir or "/"
    entrypoint, cmd = config.entrypoint, config.cmd
    if not entrypoint and not cmd:
        cmd = DEFAULT_COMMAND
    words = quoted_words(entrypoint)
    return (
        (labels + "\n" if labels else "")
        + f'mkdir -p "{workdir}" 2> /dev/null\n'
        + f'cd "{workdir}" && unset OLDPWD || exit 1\n'
        + "\n"
        + "if [ -s /etc/rc.local ]; then\n"
        + "    . /etc/rc.local\n"
        + "fi\n"
        + "\n"
        + "if [ $# -gt 0 ]; then\n"
        + f'    exec {words} "$@"\n'
        + "else\n"
        + f"    exec {words} {quoted_words(cmd)}\n"
        + "fi\n"
    )


def files(config: ImageConfig) -> dict[str, str]:
    """Every file the import writes, by path from the root."""
    return {
        FSTAB: fstab(config),
        ENVIRONMENT: environment(config),
        RC: rc(config),
        RC_LOCAL: RC_LOCAL_TEXT,
    }
