"""What of an image enroot can't carry exactly, for ``--sqsh``: refused (the image would
run with other values than Docker's), or warned about (the difference is harmless, or the
runtime's own).

At ``enroot start`` the image's /etc/environment goes through ``common::envsubst`` (a
braced ``${NAME}`` becomes the *host's* value) and ``common::envfmt`` (lines that are not
``IDENTIFIER=...`` and ``ENROOT_*`` names are dropped, a value's surrounding quotes are
stripped), then ``load_environment`` (bin/common.h) reads it a line at a time, so a
newline in a value starts a variable of its own. /etc/rc is shell text: the working
directory sits between double quotes there, and the ENTRYPOINT/CMD words are read back
with ``readarray``, one a line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from imgforge.patterns import ENV_KEY_RE
from imgforge.recipes.image import ImageConfig, split_env

# common::envsubst: awk's match(line, /\${[A-Za-z_][A-Za-z0-9_]*}/).
SUBSTITUTED = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*\}")
# common::envfmt: s/^NAME=["'](.*)["'][[:space:]]*$/NAME=\1/, where [[:space:]] is any
# white space of the locale enroot runs in (in a UTF-8 one, U+2003 too): Python's \s.
SURROUNDING_QUOTES = re.compile(r"[\"'].*[\"']\s*", re.DOTALL)
RESERVED_PREFIX = "ENROOT_"
# What `enroot start` sets over the image's value: conf/environ/10-terminal.env appends
# TERM=${TERM} (the host's), hooks/10-home.sh appends HOME with ENROOT_MOUNT_HOME, and the
# shell that runs /etc/rc sets PWD and SHLVL and unsets OLDPWD. (The login step of
# enroot-switchroot.c sets HOME, SHELL, USER, LOGNAME and PATH only where the image has
# none: setenv(..., 0).)
ENROOT_OWNED = frozenset({"TERM", "HOME", "PWD", "SHLVL", "OLDPWD"})
# A line of a shell profile that sets a variable (NAME=..., export NAME=...).
ASSIGNED = re.compile(rb"^[ \t]*(?:export[ \t]+)?([A-Za-z_][A-Za-z0-9_]*)=", re.MULTILINE)
# Between double quotes in /etc/rc, these would be read by the shell.
SHELL_SPECIAL_IN_QUOTES = set('"$`\\')


@dataclass(frozen=True)
class Problem:
    """One thing enroot would change: ``key`` names it (``env.NAME``, ``WorkingDir``...);
    a refusal unless ``warning``."""

    key: str
    reason: str
    warning: bool = False


def env_problem(name: str, value: str) -> str | None:
    """Why enroot can't give the container ``name`` with exactly ``value``, or None."""
    if not ENV_KEY_RE.fullmatch(name):
        return f"enroot drops {name!r}: only names of letters, digits and _ are kept"
    if name.startswith(RESERVED_PREFIX):
        return f"enroot drops {name!r}: ENROOT_* names are the runtime's own"
    if "\n" in value:
        return "enroot cuts the value at its newline, and the rest becomes a variable of its own"
    if found := SUBSTITUTED.search(value):
        return f"enroot replaces {found.group()} with the host's value when the container starts"
    if SURROUNDING_QUOTES.fullmatch(value):
        return "enroot strips the quotes around the value"
    return None


def problems(config: ImageConfig) -> list[Problem]:
    """Every difference between the image under Docker and under enroot, refusals first."""
    found = [
        Problem(f"env.{name}", why)
        for name, value in (split_env(entry) for entry in config.env)
        if (why := env_problem(name, value))
    ]
    workdir = config.workdir
    if special := "".join(sorted(SHELL_SPECIAL_IN_QUOTES & set(workdir))):
        found.append(
            Problem("WorkingDir", f"{workdir!r} holds {special!r}, which /etc/rc's shell reads")
        )
    if workdir != workdir.strip(" \t"):
        found.append(
            Problem(
                "WorkingDir", f"{workdir!r}: enroot's import drops its leading and trailing blanks"
            )
        )
    if config.entrypoint == ("",):
        found.append(
            Problem("Entrypoint", 'enroot runs [""] as a command named "" (Docker runs the CMD)')
        )
    for key, words in (("Entrypoint", config.entrypoint), ("Cmd", config.cmd)):
        if bad := next((w for w in words if not w.isprintable()), None):
            found.append(
                Problem(key, f"{bad!r} holds a character enroot can't write into /etc/rc exactly")
            )
    found.extend(volume_problems(config.volumes))
    found.extend(warnings(config))
    return found


def volume_problems(volumes: tuple[str, ...]) -> list[Problem]:
    """Volumes enroot's /etc/fstab can't mount where Docker does: a line holds one path
    without blanks; enroot mounts a relative one nowhere and substitutes ``${NAME}``."""
    found = []
    for volume in volumes:
        if not volume.isprintable() or any(c.isspace() for c in volume):
            found.append(Problem("Volumes", f"{volume!r} can't be a line of enroot's /etc/fstab"))
        elif not volume.startswith("/"):
            found.append(Problem("Volumes", f"{volume!r} is not absolute: enroot can't mount it"))
        elif match := SUBSTITUTED.search(volume):
            found.append(
                Problem(
                    "Volumes", f"{volume!r}: enroot replaces {match.group()} with the host's value"
                )
            )
    return found


def warnings(config: ImageConfig) -> list[Problem]:
    """Harmless differences: labels written on one line, the ENTRYPOINT pyxis skips."""
    said = [
        Problem(f"Labels.{key}", "enroot writes this label's value on one line", warning=True)
        for key, value in config.labels
        if "\n" in value
    ]
    said.extend(
        Problem(f"env.{name}", f"`enroot start` may set {name} itself", warning=True)
        for name, _ in (split_env(entry) for entry in config.env)
        if name in ENROOT_OWNED
    )
    if config.run_entrypoint():
        said.append(
            Problem(
                "Entrypoint",
                f"{' '.join(config.run_entrypoint())!r} runs under `enroot start`, but Slurm's "
                "pyxis skips it unless srun is given --container-entrypoint",
                warning=True,
            )
        )
    return said


def refusals(config: ImageConfig) -> list[Problem]:
    return [p for p in problems(config) if not p.warning]


def profile_problems(profiles: dict[str, bytes | None], config: ImageConfig) -> list[Problem]:
    """What the image's login scripts (/etc/profile and /etc/profile.d/*.sh, by path, or
    None for one that is a link imgforge can't follow) set of the image's Env: enroot's
    login shell (its default) runs them before the command, so their values replace
    the image's."""
    names = {split_env(entry)[0] for entry in config.env}
    found = []
    for path, text in sorted(profiles.items()):
        if text is None:
            found.append(Problem(f"/{path}", LINKED_PROFILE, warning=True))
            continue
        for name in sorted(names & {m.decode() for m in ASSIGNED.findall(text)}):
            found.append(
                Problem(
                    f"env.{name}",
                    f"the image's /{path} sets {name}, and `enroot start` runs it (a login "
                    f"shell): the container gets that value unless ENROOT_LOGIN_SHELL=n",
                    warning=True,
                )
            )
    return found


LINKED_PROFILE = (
    "a link: `enroot start` runs it (a login shell), and what it sets replaces the image's "
    "values unless ENROOT_LOGIN_SHELL=n"
)
