"""The apptainer/singularity backend: build a SIF from a ``docker save`` archive of the image.

Steps of ``make``: write the image source's ``docker save`` archive to
``request.archive``; write the
conversion .def (``Bootstrap: docker-archive``; imgforge's single-quoted env file placed
over ``10-docker2singularity.sh`` by ``%files``, because what Apptainer's own conversion
writes there depends on its version, while the runtime and ``%post`` source that exact
name: docs/APPTAINER.md, "Environment") next to the target; run
``<tool> build --force [--fakeroot] TARGET DEF``. The archive and the .def are always
removed, a partial target on failure.

Why ``docker-archive:`` and not ``docker-daemon:``: the daemon source talks to dockerd
through a vendored client whose API version lags Docker releases and breaks across them;
a ``docker save`` tarball is a stable format every version reads.

Why the tool runs through ``subprocess`` and not spython (0.3.14, the installed version):
* ``Client.build`` always runs ``singularity`` (``init_command`` hard-codes the name; there
  is no binary selection), so a chosen ``apptainer`` path could only be used by patching
  the shared ``Client`` object, a global side effect under ``--jobs``.
* ``Client.build(stream=True)`` reads only the child's stdout and leaves stderr in a pipe
  until exit: apptainer logs everything (INFO/WARNING/FATAL) to stderr, so a long build
  can block on a full pipe, and the FATAL line is ``print``-ed to our stderr instead of
  being returned: naming the tool's error in a BuildError is impossible. Without
  ``stream`` the tool's stdout goes straight to the terminal instead of ``log``.
* ``Client.build`` takes no environment, so ``SOURCE_DATE_EPOCH`` would have to be put
  into ``os.environ`` of the whole process.
The argv is the one spython would run (``[binary, "build", "--force", *options, image,
recipe]``, ``sudo`` prepended only when asked), with the binary at ``path``.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import tempfile
from collections import deque
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from imgforge.compressors import COMPRESSORS, DEFAULT_COMPRESSOR, Compression
from imgforge.errors import BuildError, EngineError
from imgforge.log import STEP, Log

if TYPE_CHECKING:
    from imgforge.sif.backend import SifRequest
    from imgforge.sif.source import ImageSource

SUDO_ENV = "IMGFORGE_SINGULARITY_SUDO"
EPOCH_ENV = "SOURCE_DATE_EPOCH"
ERROR_PREFIXES = ("FATAL:", "ERROR:")
PROBE_TIMEOUT = 60


def wants_sudo(environ: Mapping[str, str]) -> bool:
    """Whether the user asked for ``sudo <tool> build`` (instead of ``--fakeroot``)."""
    return environ.get(SUDO_ENV, "") == "1"


def build_argv(
    tool: str,
    *,
    deffile: Path,
    target: Path,
    fakeroot: bool,
    sudo: bool,
    mksquashfs_args: str | None = None,
    keep_env: Sequence[str] = (),
) -> list[str]:
    """The command line that builds ``target`` from ``deffile``. No credentials: the
    image comes from a local archive, so nothing needs to log in anywhere."""
    argv = [tool, "build", "--force"]
    if fakeroot:
        argv.append("--fakeroot")
    if mksquashfs_args:
        argv += ["--mksquashfs-args", mksquashfs_args]
    argv += [str(target), str(deffile)]
    if not sudo:
        return argv
    # sudo resets the environment; keep what the build must see.
    preserve = [f"--preserve-env={','.join(keep_env)}"] if keep_env else []
    return ["sudo", *preserve, *argv]


def child_env(environ: Mapping[str, str], source_date_epoch: int | None) -> dict[str, str]:
    """The tool's environment: ours, plus ``SOURCE_DATE_EPOCH`` for a reproducible SIF
    (build date and squashfs times: apptainer#2934; mksquashfs >= 4.4 reads it too).
    Tools that predate it ignore it."""
    env = dict(environ)
    if source_date_epoch is not None:
        env[EPOCH_ENV] = str(source_date_epoch)
    return env


def squashfs_option(compression: str) -> str:
    """The ``--mksquashfs-args`` value selecting ``compression``. The value goes into one
    argument that the tool splits at spaces, so only the table's names and a number are
    passed on. zstd always gets its level: mksquashfs' own default (15) is not ours."""
    try:
        chosen = Compression.parse(compression)
    except ValueError as error:
        raise BuildError(f"unknown squashfs compression {compression!r}: {error}") from None
    option = f"-comp {COMPRESSORS[chosen.name].mksquashfs}"
    if chosen.level is not None and (chosen.name == "zstd" or str(chosen) != chosen.name):
        option += f" -Xcompression-level {chosen.level}"
    return option


def error_line(lines: Sequence[str]) -> str:
    """The line that says why the tool failed: its last FATAL/ERROR line, else its last line."""
    cleaned = [" ".join(line.split()) for line in lines if line.strip()]
    for line in reversed(cleaned):
        if line.startswith(ERROR_PREFIXES):
            return line
    return cleaned[-1] if cleaned else "no output"


class SingularityCLI:
    """An installed ``apptainer`` or ``singularity`` binary as a SifBackend."""

    def __init__(self, name: str, path: str) -> None:
        self.name = name
        self.path = path
        self._version: str | None = None
        self._squashfs_args: bool | None = None

    def __repr__(self) -> str:
        return f"SingularityCLI({self.name!r}, {self.path!r})"

    def version(self) -> str:
        """First line of ``<tool> --version``, e.g. ``apptainer version 1.3.4``."""
        if self._version is None:
            self._version = self._probe("--version").strip().splitlines()[0]
        return self._version

    def supports_mksquashfs_args(self) -> bool:
        """Whether ``build`` takes ``--mksquashfs-args`` (added by apptainer PR #2707,
        January 2025; absent from SingularityCE's build as read): asked from
        ``build --help`` rather than guessed from version numbers. Without it the tool
        compresses with mksquashfs' default, gzip."""
        if self._squashfs_args is None:
            try:
                self._squashfs_args = "--mksquashfs-args" in self._probe("build", "--help")
            except EngineError:
                self._squashfs_args = False
        return self._squashfs_args

    def command(
        self, request: SifRequest, deffile: Path, *, environ: Mapping[str, str]
    ) -> tuple[list[str], dict[str, str]]:
        """The argv and environment for building ``request`` from ``deffile``."""
        as_root = os.geteuid() == 0
        sudo = wants_sudo(environ) and not as_root
        keep: tuple[str, ...] = (EPOCH_ENV,) if request.source_date_epoch is not None else ()
        keep += tuple(sorted(request.tool_env))
        argv = build_argv(
            self.path,
            deffile=deffile,
            target=request.target,
            fakeroot=not as_root and not sudo,
            sudo=sudo,
            mksquashfs_args=self._compression_args(request.compression),
            keep_env=keep,
        )
        # Registry credentials reach the tool only through its environment.
        return argv, {**child_env(environ, request.source_date_epoch), **request.tool_env}

    def make(self, request: SifRequest, *, source: ImageSource, log: Log) -> None:
        """Build ``request.target`` from the image; see the module docstring."""
        deffile: Path | None = None
        try:
            self._check_format(request)
            if request.source_ref is None:
                _save(request, source)
            deffile = _write_deffile(request)
            self._build(request, deffile, log)
        except BaseException:
            request.target.unlink(missing_ok=True)
            raise
        finally:
            request.archive.unlink(missing_ok=True)
            if deffile is not None:
                deffile.unlink(missing_ok=True)

    def _check_format(self, request: SifRequest) -> None:
        # Apptainer and SingularityCE >= 3.0 write only SIF and sandboxes; the legacy
        # squashfs .simg of Singularity 2.x is written by imgforge's own backend.
        if request.image_format != "sif":
            raise BuildError(
                f"{request.name}: {self.name} cannot write the legacy "
                f".{request.image_format} format; use --singularity native "
                f"with --format {request.image_format}, or --format sif"
            )

    def _compression_args(self, compression: str) -> str | None:
        option = squashfs_option(compression)
        return option if self.supports_mksquashfs_args() else None

    def _build(self, request: SifRequest, deffile: Path, log: Log) -> None:
        argv, env = self.command(request, deffile, environ=os.environ)
        if request.compression != DEFAULT_COMPRESSOR and not self.supports_mksquashfs_args():
            log(f"{self.name} has no --mksquashfs-args: the SIF keeps its default gzip compression")
        log("$ " + shlex.join(argv), kind=STEP)
        status, lines = _run(argv, env=env, log=log)
        what = f"{request.name}: {self.name} build of image {request.image_id[:19]}"
        if status != 0:
            raise BuildError(f"{what} failed (exit {status}): {error_line(lines)}")
        if not request.target.is_file() or request.target.stat().st_size == 0:
            raise BuildError(f"{what} reported success but wrote no image to {request.target}")

    def _probe(self, *args: str) -> str:
        """Output of a quick informational ``<tool> ARGS`` (stdout and stderr)."""
        try:
            done = subprocess.run(
                [self.path, *args],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                errors="replace",
                timeout=PROBE_TIMEOUT,
                check=True,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            raise EngineError(f"{self.path} {' '.join(args)} failed: {exc}") from None
        output = done.stdout + done.stderr
        if not output.strip():
            raise EngineError(f"{self.path} {' '.join(args)} printed nothing")
        return output


def _save(request: SifRequest, source: ImageSource) -> None:
    try:
        source.docker_archive(request.archive)
    except BuildError as exc:
        raise BuildError(f"{request.name}: {exc}") from None


def _write_deffile(request: SifRequest) -> Path:
    """Write the conversion .def to a fresh hidden name beside the target."""
    fd, name = tempfile.mkstemp(
        prefix=f".{request.name}.", suffix=".convert.def", dir=request.target.parent
    )
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(request.convert_deffile)
    return Path(name)


def _run(argv: list[str], *, env: dict[str, str], log: Log) -> tuple[int, list[str]]:
    """Run ``argv``, passing each output line (stdout and stderr merged, so none can fill
    an unread pipe) to ``log``; return the exit status and the last lines."""
    tail: deque[str] = deque(maxlen=50)
    try:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            text=True,
            errors="replace",
        )
    except OSError as exc:
        return 127, [f"ERROR: cannot run {argv[0]}: {exc.strerror or exc}"]
    with process:
        try:
            assert process.stdout is not None
            for raw in process.stdout:
                line = raw.rstrip("\n")
                log(line)
                tail.append(line)
        except BaseException:  # Ctrl-C or a failing log: do not leave the build running
            process.kill()
            raise
    return process.returncode, list(tail)
