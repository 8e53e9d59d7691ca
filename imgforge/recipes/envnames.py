"""Environment variable names: which ones an env file can carry into every build path.

A name is carried when it is a portable shell name (POSIX: letters, digits and ``_``, not
starting with a digit; Apptainer's docker2singularity skips the others too) and neither
a shell nor Apptainer's runtime owns it. Owned names can't be given a value by an env
file byte for byte: bash refuses (read-only) or recomputes them, or Apptainer's action
scripts set, keep or unset them at run time.
"""

from __future__ import annotations

from imgforge.patterns import ENV_KEY_RE

# bash(1), "Shell Variables": read-only in bash (assigning is an error, and fatal for a
# POSIX-mode shell sourcing the file) ...
BASH_READONLY = frozenset({"BASHOPTS", "BASH_VERSINFO", "EUID", "PPID", "SHELLOPTS", "UID"})
# ... or recomputed on every use, or set by the shell for itself (sh and bash).
SHELL_DYNAMIC = frozenset(
    {
        "_", "BASHPID", "BASH_ARGC", "BASH_ARGV", "BASH_ARGV0", "BASH_COMMAND",
        "BASH_LINENO", "BASH_SOURCE", "BASH_SUBSHELL", "DIRSTACK", "EPOCHREALTIME",
        "EPOCHSECONDS", "FUNCNAME", "GROUPS", "HISTCMD", "IFS", "LINENO", "OLDPWD",
        "OPTARG", "OPTIND", "PIPESTATUS", "PWD", "RANDOM", "SECONDS", "SRANDOM",
    }
)  # fmt: skip
# Code to a shell that traces: `set -x` expands $PS4, command substitutions included,
# before every traced command. The commit strategy's script and Apptainer's %post
# (`sh -ex`) are traced and a Docker RUN is not, so a value would run as code in two
# build paths only.
SHELL_CODE = frozenset({"PS4"})
# Apptainer's runtime: internal/pkg/util/env/env.go ReadOnlyVars (never taken from an
# env file), internal/pkg/util/env/create.go alwaysOmitKeys (HOME is the user's),
# internal/pkg/util/fs/files/action_script.sh clear_env (kept or made read-only).
APPTAINER_OWNED = frozenset(
    {
        "EUID", "GID", "HOME", "IFS", "OPTIND", "PWD", "UID",
        "APPTAINER_NAME", "APPTAINER_CONTAINER", "APPTAINER_INSTANCE",
        "SINGULARITY_NAME", "SINGULARITY_CONTAINER", "SINGULARITY_INSTANCE",
    }
)  # fmt: skip
# env.go ApptainerPrefixes / ApptainerEnvPrefixes: the runtime's own namespace.
APPTAINER_PREFIXES = ("APPTAINER_", "APPTAINERENV_", "SINGULARITY_", "SINGULARITYENV_")

OWNED = BASH_READONLY | SHELL_DYNAMIC | SHELL_CODE | APPTAINER_OWNED
# Owned names that Apptainer's runtime sets itself but keeps through clear_env
# (action_script.sh), and for which its docker2singularity writes the image's value as a
# default, `export NAME="${NAME:-value}"`: an image's value applies only where the
# runtime gives none, so `$HOME` stays the user's and `--home` works. imgforge's env
# scripts write these the same way, in a form every shell can source.
RUNTIME_DEFAULTS = frozenset(
    {"GID", "HOME", "OPTIND", "PWD", "SINGULARITY_APPNAME", "SINGULARITY_SHELL", "UID"}
)


def why_not_carried(name: str) -> str | None:
    """Why an env file can't carry ``name`` into every build path, or None."""
    if not ENV_KEY_RE.fullmatch(name):
        return f"{name!r} is not a valid variable name ([A-Za-z_][A-Za-z0-9_]*)"
    if name in BASH_READONLY:
        return f"{name!r} is read-only in bash"
    if name in SHELL_DYNAMIC:
        return f"{name!r} is set by the shell itself"
    if name in SHELL_CODE:
        return f"{name!r} is run as code by a shell that traces (set -x)"
    if name in APPTAINER_OWNED or name.startswith(APPTAINER_PREFIXES):
        return f"{name!r} is set by Apptainer's runtime"
    return None


def carried(name: str) -> bool:
    return why_not_carried(name) is None


def kept_as_default(name: str) -> bool:
    """Whether an image's ``name`` is written as a default the runtime may override."""
    return name in RUNTIME_DEFAULTS
