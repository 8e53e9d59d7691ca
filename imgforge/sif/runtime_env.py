"""The environment a container sees under Apptainer, next to the one ``docker run`` gives:
the one list of the differences that are the runtimes' own by design.

Read from Apptainer's source (internal/pkg/util/fs/files/action_script.sh, env/create.go,
runtime/engine/apptainer/process_linux.go) and checked against the real runtime by the
test suite: with ``--cleanenv``, the image's Env reaches the command byte for byte except
for what is listed here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from imgforge.recipes.envnames import RUNTIME_DEFAULTS, carried, kept_as_default

# env.DefaultPath: the directories the runtime appends to PATH when it lacks them (fixpath).
APPTAINER_DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# 99-base.sh: where the runtime binds host libraries (--nv), appended to LD_LIBRARY_PATH.
LIBS_DIR = "/.singularity.d/libs"
# Set by the runtime, whatever the image says: the user's home and working directory, the
# prompt command, the container's identity (APPTAINER_NAME, ...).
RUNTIME_OWNED = frozenset({"HOME", "PWD", "PROMPT_COMMAND"})
# Passed from the host even with --cleanenv (env/create.go alwaysPassKeys); an image's own
# value wins over the host's.
FROM_HOST = frozenset(
    {
        "TERM", "http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "no_proxy",
        "NO_PROXY", "all_proxy", "ALL_PROXY", "ftp_proxy", "FTP_PROXY",
    }
)  # fmt: skip
RUNTIME_PREFIXES = ("APPTAINER_", "SINGULARITY_", "APPTAINERENV_", "SINGULARITYENV_")
# Set by Docker for every container: its hostname (the container ID), HOME when the image
# has none, TERM with a terminal.
DOCKER_OWNED = frozenset({"HOSTNAME", "HOME", "TERM"})
# --cleanenv sets LANG=C, the action script PS1="Apptainer> "; an image's own value wins.
CLEANENV_DEFAULTS = {"LANG": "C", "PS1": "Apptainer> "}


def runtime_owned(name: str) -> bool:
    """Whether the runtime, not the image, decides ``name``'s value (the image's value of a
    name in RUNTIME_DEFAULTS is only a default)."""
    return name in RUNTIME_OWNED or name in RUNTIME_DEFAULTS or name.startswith(RUNTIME_PREFIXES)


def host_dependent(name: str, image_value: str | None) -> bool:
    """Whether ``name``'s value depends on the host: a name the runtime passes from the host
    (or LANG, which --cleanenv sets) that the image leaves unset, or sets empty (the
    runtime unsets an empty variable the host has, action_script.sh restore_env)."""
    passed = name in FROM_HOST or name in CLEANENV_DEFAULTS
    return passed and not image_value


def fixed_path(path: str) -> str:
    """PATH after the runtime's fix-up: Apptainer's default directories it lacks appended."""
    parts = path.split(":") if path else []
    return ":".join(parts + [d for d in APPTAINER_DEFAULT_PATH.split(":") if d not in parts])


def expected_apptainer_env(image_env: Iterable[tuple[str, str]]) -> dict[str, str]:
    """What ``apptainer exec --cleanenv SIF env`` shows of an image whose Env is
    ``image_env`` (the names the runtime owns left out)."""
    env = dict(CLEANENV_DEFAULTS)
    # Names an env file can't carry are skipped (docs/APPTAINER.md says which and why).
    env.update((n, v) for n, v in image_env if carried(n) or kept_as_default(n))
    env["PATH"] = fixed_path(env.get("PATH", APPTAINER_DEFAULT_PATH))
    library_path = env.get("LD_LIBRARY_PATH", "")
    env["LD_LIBRARY_PATH"] = f"{library_path}:{LIBS_DIR}" if library_path else LIBS_DIR
    return {name: value for name, value in env.items() if not runtime_owned(name)}


def from_docker_run(docker: Mapping[str, str]) -> list[tuple[str, str]]:
    """The image's Env as ``docker run IMAGE env`` shows it, Docker's own names left out."""
    return [(n, v) for n, v in docker.items() if n not in DOCKER_OWNED]


def differences(
    image_env: Iterable[tuple[str, str]],
    apptainer: Mapping[str, str],
    *,
    more_scripts: bool = False,
) -> list[str]:
    """One line per variable where Apptainer's environment differs from the image's Env
    beyond the runtimes' own differences. With ``more_scripts`` (the image has env scripts
    of its own in /.singularity.d/env), variables the image's Env lacks are theirs."""
    pairs = list(image_env)
    given = dict(pairs)
    expected = {
        n: v
        for n, v in expected_apptainer_env(pairs).items()
        if not host_dependent(n, given.get(n))
    }
    seen = {
        n: v
        for n, v in apptainer.items()
        if not runtime_owned(n)
        and not host_dependent(n, given.get(n))
        and (n in expected or not more_scripts)
    }
    return [
        f"env {name}: image {_shown(expected.get(name))}, apptainer {_shown(seen.get(name))}"
        for name in sorted(expected.keys() | seen.keys())
        if expected.get(name) != seen.get(name)
    ]


def _shown(value: str | None) -> str:
    return "(unset)" if value is None else repr(value)
