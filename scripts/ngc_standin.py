"""Build, once per machine, a local stand-in for the NGC image nvcr.io/nvidia/pytorch:24.01-py3.

The real image cannot be pulled here (no container registry is reachable), so this
script debootstraps a small Debian bookworm with python3 and pip, dresses it up like
the NGC image (entrypoint, pip constraint on torch, CUDA-ish directories), and
imports it into Docker with exactly the fixture's Env, Entrypoint, Cmd, WorkingDir
and Labels. It is tagged under its own name and never under the real nvcr.io one.

Rebuilds are skipped while the image's ``org.imgforge.standin.hash`` label matches
the sha256 of the fixture plus this script.

Usage: python scripts/ngc_standin.py [--tag TAG] [--config CONFIG.json] [--force]
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

try:
    import docker
    import docker.errors
    import requests.exceptions
except ImportError as _exc:  # a missing SDK is a setup error, not a traceback
    sys.exit(f"ngc_standin: error: {_exc}; pip install docker")

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from imgforge.render.quoting import dockerfile_quote, json_list  # noqa: E402

DEFAULT_TAG = "imgforge-standin/ngc-pytorch:24.01-py3"
DEFAULT_CONFIG = REPO_ROOT / "tests" / "data" / "ngc" / "pytorch-24.01-py3.config.json"
HASH_LABEL = "org.imgforge.standin.hash"
COMPARED_KEYS = ("Env", "Entrypoint", "Cmd", "WorkingDir", "Labels")

SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
PACKAGES = "python3,python3-pip,ca-certificates"
TORCH_PIN = "torch==2.2.0a0+81ea7a4"
BANNER = "== PyTorch (imgforge stand-in) =="

HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
EXTRA_CA_ENV = "IMGFORGE_EXTRA_CA_CERTS"
HOST_APT_CONF = Path("/etc/apt/apt.conf.d/99artifact-registry")
HOST_SOURCES_LIST = Path("/etc/apt/sources.list")
HOST_SOURCES_DIR = Path("/etc/apt/sources.list.d")
CHROOT_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"}

PEM_RE = re.compile(rb"-----BEGIN CERTIFICATE-----\s*(.*?)\s*-----END CERTIFICATE-----", re.DOTALL)

ENTRYPOINT_SH = f"""#!/bin/bash
# imgforge stand-in for NGC's nvidia_entrypoint.sh: banner, entrypoint.d hooks, command.
echo '{BANNER}' >&2
for script in /opt/nvidia/entrypoint.d/*.sh; do
  [ -f "$script" ] && . "$script"
done
if [ $# -eq 0 ]; then exec /bin/bash; else exec "$@"; fi
"""

SHINIT_V2 = """# imgforge stand-in for NGC's /etc/shinit_v2 (sourced by sh through ENV=).
"""


class StandinError(Exception):
    """A failure to report as one line, without a traceback."""


@dataclass(frozen=True)
class StandinResult:
    """What :func:`ensure_standin` did: the tag, the image id, and whether it built."""

    tag: str
    image_id: str
    built: bool


def log(message: str) -> None:
    """Print a progress line to stderr (stdout carries only the tag)."""
    print(f"ngc_standin: {message}", file=sys.stderr, flush=True)


def standin_hash(config_path: Path) -> str:
    """sha256 over the fixture bytes followed by this script's own bytes."""
    digest = hashlib.sha256()
    digest.update(config_path.read_bytes())
    digest.update(Path(__file__).resolve().read_bytes())
    return digest.hexdigest()


def load_fixture(config_path: Path) -> dict[str, Any]:
    """Read the NGC image config fixture, keeping only the keys the stand-in mimics."""
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise StandinError(f"cannot read fixture {config_path}: {exc}") from exc
    missing = [key for key in COMPARED_KEYS if key not in config]
    if missing:
        raise StandinError(f"fixture {config_path} lacks {', '.join(missing)}")
    return {key: config[key] for key in COMPARED_KEYS}


def expected_config(fixture: dict[str, Any], digest: str) -> dict[str, Any]:
    """The image config the stand-in must end up with: the fixture plus the hash label."""
    return {**fixture, "Labels": {**(fixture["Labels"] or {}), HASH_LABEL: digest}}


def connect() -> docker.DockerClient:
    """Connect to the engine (DOCKER_HOST honoured); imports of big tars need a long timeout."""
    try:
        client = docker.from_env(timeout=900)
        client.ping()
    except docker.errors.DockerException as exc:
        raise StandinError(f"cannot reach the Docker engine: {exc}") from exc
    return client


def image_if_present(client: docker.DockerClient, tag: str) -> Any | None:
    """The image tagged ``tag``, or None."""
    try:
        return client.images.get(tag)
    except docker.errors.ImageNotFound:
        return None


# --- rootfs -------------------------------------------------------------------------


def run(cmd: Sequence[str], what: str, log_path: Path | None = None) -> None:
    """Run ``cmd``; on failure raise a one-line error quoting its last output line."""
    with contextlib.ExitStack() as stack:
        out: IO[str] | int = subprocess.PIPE
        if log_path is not None:
            out = stack.enter_context(log_path.open("w", encoding="utf-8"))
        try:
            proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, text=True, check=False)
        except OSError as exc:
            raise StandinError(f"{what}: cannot run {cmd[0]}: {exc}") from exc
    if proc.returncode != 0:
        output = proc.stdout if log_path is None else log_path.read_text(errors="replace")
        lines = [line for line in (output or "").splitlines() if line.strip()]
        last = lines[-1].strip() if lines else "no output"
        raise StandinError(f"{what} failed (exit {proc.returncode}): {last}")


def chroot(rootfs: Path, *cmd: str) -> None:
    """Run a command inside the rootfs with a clean environment."""
    try:
        subprocess.run(
            ["chroot", str(rootfs), *cmd],
            env=CHROOT_ENV,
            check=True,
            capture_output=True,
            text=True,
        )
    except subprocess.CalledProcessError as exc:
        detail = (exc.stderr or exc.stdout or "").strip().splitlines()
        raise StandinError(
            f"chroot {' '.join(cmd)} failed: {detail[-1] if detail else exc}"
        ) from exc


def debootstrap(rootfs: Path, log_path: Path) -> None:
    """Bootstrap a minimal bookworm with python3, pip and ca-certificates."""
    exe = shutil.which("debootstrap") or shutil.which("debootstrap", path="/usr/sbin:/sbin")
    if exe is None:
        raise StandinError(
            "debootstrap is not installed (run scripts/ensure-engine.sh or "
            "apt-get install debootstrap)"
        )
    log(f"debootstrap {SUITE} into {rootfs} (takes a minute or a few)")
    run(
        [exe, "--variant=minbase", f"--include={PACKAGES}", SUITE, str(rootfs), MIRROR],
        "debootstrap",
        log_path,
    )


def pem_certs(data: bytes) -> list[bytes]:
    """The DER bytes of every PEM certificate in ``data``."""
    return [base64.b64decode(b"".join(body.split())) for body in PEM_RE.findall(data)]


def der_to_pem(der: bytes) -> str:
    """One certificate as a PEM block."""
    b64 = base64.b64encode(der).decode("ascii")
    lines = [b64[i : i + 64] for i in range(0, len(b64), 64)]
    return "-----BEGIN CERTIFICATE-----\n" + "\n".join(lines) + "\n-----END CERTIFICATE-----\n"


def trusted_ca_sources() -> list[Path]:
    """The host bundle plus the PEM files named in IMGFORGE_EXTRA_CA_CERTS."""
    sources = [HOST_CA_BUNDLE] if HOST_CA_BUNDLE.is_file() else []
    for entry in os.environ.get(EXTRA_CA_ENV, "").split(":"):
        if entry:
            path = Path(entry)
            if not path.is_file():
                raise StandinError(f"{EXTRA_CA_ENV}: no such file {path}")
            sources.append(path)
    return sources


def install_ca_certs(rootfs: Path, sources: list[Path]) -> None:
    """Make the rootfs trust every CA the host trusts, also after later apt installs.

    Copying the host bundle over the rootfs's one is not enough: any apt install that
    triggers update-ca-certificates rebuilds the bundle from /usr/share/ca-certificates
    plus /usr/local/share/ca-certificates. So each CA of ``sources`` (PEM files: the
    host bundle, then IMGFORGE_EXTRA_CA_CERTS) that Debian's set lacks, such as the
    TLS-intercepting proxy's, goes to /usr/local/share/ca-certificates as its own
    .crt: a multi-cert .crt would land in the bundle too, but `openssl rehash` skips
    it ("does not contain exactly one certificate"), so CApath users (SSL_CERT_DIR)
    would not trust it. update-ca-certificates then writes the bundle here, and it
    is checked to hold every CA of ``sources``: a superset of the host bundle.
    """
    if not sources:
        log(f"warning: {HOST_CA_BUNDLE} missing, the stand-in trusts Debian's CAs only")
        return
    wanted: dict[bytes, None] = {}  # ordered set of DER certs
    for source in sources:
        for der in pem_certs(source.read_bytes()):
            wanted[der] = None
    debian_set = {
        der
        for crt in (rootfs / "usr/share/ca-certificates").rglob("*.crt")
        for der in pem_certs(crt.read_bytes())
    }
    local_dir = rootfs / "usr/local/share/ca-certificates"
    local_dir.mkdir(parents=True, exist_ok=True)
    extra = [der for der in wanted if der not in debian_set]
    for index, der in enumerate(extra, start=1):
        (local_dir / f"imgforge-host-bundle-{index:02d}.crt").write_text(der_to_pem(der))
    chroot(rootfs, "update-ca-certificates", "--fresh")
    kept = set(pem_certs((rootfs / "etc/ssl/certs/ca-certificates.crt").read_bytes()))
    lost = [der for der in wanted if der not in kept]
    if lost:
        raise StandinError(f"update-ca-certificates dropped {len(lost)} host CA(s)")
    log(f"trusting all {len(wanted)} host CAs ({len(extra)} added to the Debian set)")


def copy_apt_config(rootfs: Path) -> None:
    """Copy the host's apt mirror setup so apt inside the image reaches the same mirror.

    The host's 99artifact-registry turns off apt's Valid-Until and date checks: the
    mirror may lag (bookworm-security's Release is valid for 7 days only), and apt in
    the image must then keep working just as on the host.
    """
    etc_apt = rootfs / "etc/apt"
    if HOST_APT_CONF.is_file():
        shutil.copyfile(HOST_APT_CONF, etc_apt / "apt.conf.d" / HOST_APT_CONF.name)
    host_sources = sorted(HOST_SOURCES_DIR.glob("*.sources"))
    for source in host_sources:
        shutil.copyfile(source, etc_apt / "sources.list.d" / source.name)
        copy_signing_keys(source, rootfs)
    if HOST_SOURCES_LIST.is_file():
        shutil.copyfile(HOST_SOURCES_LIST, etc_apt / "sources.list")
    elif host_sources:
        # debootstrap's one-line sources.list would repeat the host's entries and
        # make apt warn "configured multiple times" on every update.
        (etc_apt / "sources.list").unlink(missing_ok=True)


def copy_signing_keys(source: Path, rootfs: Path) -> None:
    """Copy keyring files a .sources file names in Signed-By, if the rootfs lacks them."""
    for line in source.read_text(encoding="utf-8").splitlines():
        key, _, value = line.partition(":")
        keyring = Path(value.strip())
        if key.strip().lower() == "signed-by" and keyring.is_absolute() and keyring.is_file():
            target = rootfs / keyring.relative_to("/")
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(keyring, target)


def write_file(path: Path, text: str, mode: int = 0o644) -> None:
    """Write ``text`` to ``path`` (parents created) with ``mode``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)


def dress_as_ngc(rootfs: Path) -> None:
    """Add what recipes rely on in NGC images: pip policy, entrypoint, shell files, dirs."""
    # NGC images let pip install into the system Python.
    for marker in rootfs.glob("usr/lib/python3*/EXTERNALLY-MANAGED"):
        marker.unlink()
    # NGC pins its own torch build; a constraint bites only when torch gets installed.
    write_file(rootfs / "etc/pip.conf", "[global]\nconstraint = /etc/pip/constraint.txt\n")
    write_file(rootfs / "etc/pip/constraint.txt", TORCH_PIN + "\n")
    write_file(rootfs / "opt/nvidia/nvidia_entrypoint.sh", ENTRYPOINT_SH, 0o755)
    (rootfs / "opt/nvidia/entrypoint.d").mkdir(parents=True, exist_ok=True)
    write_file(rootfs / "etc/shinit_v2", SHINIT_V2)
    (rootfs / "etc/bash.bashrc").touch()
    for directory in ("workspace", "usr/local/cuda/compat/lib", "usr/local/nvidia/lib64"):
        (rootfs / directory).mkdir(parents=True, exist_ok=True)


def clean_rootfs(rootfs: Path) -> None:
    """Drop apt lists and caches, logs and host-specific files to keep the image small."""
    patterns = (
        "var/lib/apt/lists/*",
        "var/cache/apt/*.bin",
        "var/cache/apt/archives/*.deb",
        "var/cache/debconf/*-old",
        "var/log/*.log",
        "var/log/apt/*",
        "tmp/*",
    )
    for pattern in patterns:
        for path in rootfs.glob(pattern):
            if path.is_dir() and not path.is_symlink():
                if path.name != "partial":
                    shutil.rmtree(path)
            else:
                path.unlink()
    # Docker supplies these at run time; the host's copies must not be baked in.
    for name in ("etc/resolv.conf", "etc/hostname"):
        target = rootfs / name
        if target.is_file() and not target.is_symlink():
            target.write_text("")


def build_rootfs(rootfs: Path, log_path: Path, ca_sources: list[Path]) -> None:
    """Debootstrap and customise the stand-in's root file system."""
    debootstrap(rootfs, log_path)
    install_ca_certs(rootfs, ca_sources)
    copy_apt_config(rootfs)
    dress_as_ngc(rootfs)
    clean_rootfs(rootfs)


def mounts_under(path: Path) -> list[Path]:
    """Mount points at or below ``path``, deepest first."""
    root = str(path.resolve())
    points = []
    with open("/proc/self/mountinfo", encoding="utf-8") as mountinfo:
        for line in mountinfo:
            # Field 5 is the mount point, with spaces etc. escaped as octal.
            point = line.split()[4].encode().decode("unicode_escape")
            if point == root or point.startswith(root + "/"):
                points.append(Path(point))
    return sorted(points, key=lambda p: len(p.parts), reverse=True)


@contextlib.contextmanager
def scratch_dir() -> Iterator[Path]:
    """A temp dir under /var/tmp, removed afterwards even on failure.

    A failed debootstrap can leave /proc or /sys mounted inside the rootfs, and
    rmtree must never descend into those: unmount first and keep the dir otherwise.
    """
    path = Path(tempfile.mkdtemp(prefix="imgforge-standin-", dir="/var/tmp"))
    try:
        yield path
    finally:
        for point in mounts_under(path):
            subprocess.run(["umount", "--lazy", str(point)], check=False)
        if mounts_under(path):
            log(f"warning: mounts remain under {path}; not removing it")
        else:
            shutil.rmtree(path, ignore_errors=True)


# --- import ---------------------------------------------------------------------------


def import_changes(config: dict[str, Any]) -> list[str]:
    """Dockerfile instructions that give an imported image ``config``.

    One ENV per variable keeps the fixture's order (ENV appends new keys in order).
    """
    changes = []
    for entry in config["Env"]:
        key, sep, value = entry.partition("=")
        if not sep:
            raise StandinError(f"fixture Env entry without '=': {entry!r}")
        changes.append(f"ENV {key}={dockerfile_quote(value)}")
    for key, value in config["Labels"].items():
        changes.append(f"LABEL {dockerfile_quote(key)}={dockerfile_quote(value)}")
    if config["Entrypoint"] is not None:
        changes.append(f"ENTRYPOINT {json_list(config['Entrypoint'])}")
    if config["Cmd"] is not None:
        changes.append(f"CMD {json_list(config['Cmd'])}")
    if config["WorkingDir"]:
        changes.append(f"WORKDIR {config['WorkingDir']}")
    return changes


def tar_chunks(stream: IO[bytes], size: int = 1 << 20) -> Iterator[bytes]:
    """Read ``stream`` in chunks: a generator makes requests send the body chunked."""
    while chunk := stream.read(size):
        yield chunk


def import_rootfs(client: docker.DockerClient, rootfs: Path, changes: list[str]) -> str:
    """Stream ``rootfs`` as a tar (sorted, numeric owners) into Docker; return the image id.

    The image is imported untagged: it gets the tag only once verified, so a bad
    build never displaces a good one.
    """
    tar_cmd = [
        "tar", "--create", "--file=-", "--numeric-owner", "--sort=name",
        "--one-file-system", f"--directory={rootfs}",
        # Docker mounts its own /dev, /proc and /sys; debootstrap's device nodes stay out.
        "--exclude=./dev/*", "--exclude=./proc/*", "--exclude=./sys/*",
        ".",
    ]  # fmt: skip
    # stderr to a file: a pipe nobody reads while the import runs could fill and stall tar.
    with (
        tempfile.TemporaryFile() as tar_err,
        subprocess.Popen(tar_cmd, stdout=subprocess.PIPE, stderr=tar_err) as tar,
    ):
        assert tar.stdout is not None
        try:
            output = client.api.import_image(
                src=tar_chunks(tar.stdout), changes=changes, stream_src=True
            )
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            tar.kill()
            raise StandinError(f"docker import failed: {exc}") from exc
        tar.wait()
        tar_err.seek(0)
        if tar.returncode != 0:
            detail = tar_err.read().decode(errors="replace").strip() or f"exit {tar.returncode}"
            raise StandinError(f"tar of the rootfs failed: {detail}")
    return import_result_id(output)


def tag_image(client: docker.DockerClient, image_id: str, tag: str) -> None:
    """Tag ``image_id`` as ``tag`` (repository:tag, default tag "latest")."""
    repository, _, name = tag.rpartition(":")
    if not repository or "/" in name:  # a registry port, not a tag
        repository, name = tag, "latest"
    client.images.get(image_id).tag(repository, name)


def import_result_id(output: str) -> str:
    """The image id from the engine's JSON-lines import reply, or its error."""
    image_id = ""
    for line in output.splitlines():
        if not line.strip():
            continue
        message = json.loads(line)
        if "error" in message:
            raise StandinError(f"docker import failed: {message['error']}")
        status = message.get("status", "")
        if status.startswith("sha256:"):
            image_id = status
    if not image_id:
        raise StandinError(f"docker import gave no image id: {output.strip()[:200]}")
    return image_id


def config_mismatches(actual: dict[str, Any], expected: dict[str, Any]) -> list[str]:
    """The keys of COMPARED_KEYS whose values differ (a missing key counts as None)."""
    return [key for key in COMPARED_KEYS if actual.get(key) != expected[key]]


def verify_image(client: docker.DockerClient, image_id: str, expected: dict[str, Any]) -> None:
    """Compare the imported image's config with ``expected``; remove it on a mismatch."""
    config = client.images.get(image_id).attrs["Config"]
    bad = config_mismatches(config, expected)
    if bad:
        client.images.remove(image_id, force=True)
        raise StandinError(
            f"imported image config differs from the fixture in {', '.join(bad)}; image removed"
        )


def drop_replaced(client: docker.DockerClient, old_id: str | None, new_id: str) -> None:
    """Remove the image a rebuild untagged, if nothing else uses it (best effort)."""
    if old_id and old_id != new_id:
        with contextlib.suppress(docker.errors.APIError):
            client.images.remove(old_id)


# --- entry points --------------------------------------------------------------------


def ensure_standin(
    tag: str = DEFAULT_TAG, config_path: Path = DEFAULT_CONFIG, force: bool = False
) -> StandinResult:
    """Return the stand-in image, building it unless a matching one exists."""
    if tag.startswith("nvcr.io/"):
        raise StandinError(f"refusing to tag a stand-in as the real NGC image {tag}")
    fixture = load_fixture(config_path)
    digest = standin_hash(config_path)
    client = connect()
    existing = image_if_present(client, tag)
    if existing is not None and not force and existing.labels.get(HASH_LABEL) == digest:
        return StandinResult(tag, existing.id, built=False)
    expected = expected_config(fixture, digest)
    ca_sources = trusted_ca_sources()  # a bad IMGFORGE_EXTRA_CA_CERTS fails before debootstrap
    started = time.monotonic()
    with scratch_dir() as scratch:
        rootfs = scratch / "rootfs"
        build_rootfs(rootfs, scratch / "debootstrap.log", ca_sources)
        log("importing into Docker")
        image_id = import_rootfs(client, rootfs, import_changes(expected))
    verify_image(client, image_id, expected)
    tag_image(client, image_id, tag)
    drop_replaced(client, existing.id if existing is not None else None, image_id)
    log(f"built {tag} ({image_id[:19]}) in {time.monotonic() - started:.0f}s")
    return StandinResult(tag, image_id, built=True)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tag", default=DEFAULT_TAG, help="image tag (default: %(default)s)")
    parser.add_argument(
        "--config", type=Path, default=DEFAULT_CONFIG, help="NGC image config fixture (JSON)"
    )
    parser.add_argument("--force", action="store_true", help="rebuild even if cached")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry: ensure the stand-in exists, print its tag; 1 on any failure."""
    args = parse_args(argv)
    try:
        result = ensure_standin(args.tag, args.config, args.force)
    except (
        StandinError,
        docker.errors.DockerException,
        requests.exceptions.RequestException,
        OSError,
    ) as exc:
        # Engine or file system trouble outside the wrapped steps: still one line.
        print(f"ngc_standin: error: {exc}", file=sys.stderr)
        return 1
    print(result.tag)
    return 0


if __name__ == "__main__":
    sys.exit(main())
