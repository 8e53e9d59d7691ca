"""``imgforge doctor``: what this machine has for imgforge, each finding with its fix."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from imgforge.credentials import NGC_KEY_ENV, PASSWORD_ENV, USER_ENV
from imgforge.errors import EngineError

OK, WARN, FAIL = "ok", "warn", "FAIL"
LOW_DISK = 20 * 1024**3


@dataclass(frozen=True)
class Finding:
    level: str
    check: str
    detail: str
    fix: str = ""


def _version(tool: str, *args: str) -> str:
    try:
        done = subprocess.run(
            [tool, *args], capture_output=True, text=True, timeout=20, errors="replace"
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return f"(no version: {exc})"
    lines = (done.stdout + done.stderr).strip().splitlines()
    return lines[0] if lines else "(no version)"


def engine() -> list[Finding]:
    from imgforge.engine.docker import DockerEngine

    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    try:
        found = DockerEngine.connect(timeout=10)
    except EngineError as exc:
        fix = (
            "start one (systemctl start docker, or dockerd; in an imgforge checkout: "
            "bash scripts/ensure-engine.sh), or set DOCKER_HOST"
        )
        return [Finding(FAIL, "docker engine", f"{host}: {exc}", fix)]
    findings = [Finding(OK, "docker engine", f"{host}: Docker {found.version()}")]
    if found.build_network(None) == "host":
        findings.append(
            Finding(WARN, "network", "no bridge network: build steps use --network host")
        )
    return findings


def singularity() -> list[Finding]:
    from imgforge.sif import runtime as runtimes

    found = runtimes.find()
    if found is not None:
        findings = [Finding(OK, "singularity backend", f"{found.label} ({found.path})")]
        fix = "see docs/APPTAINER.md for the versions imgforge is tested with"
        findings += [Finding(WARN, found.label, quirk, fix) for quirk in runtimes.quirks(found)]
        return findings
    for name in ("apptainer", "singularity"):
        path = shutil.which(name)
        if path:
            detail = f"{name}: {_version(path, '--version')} (version not recognised)"
            return [Finding(WARN, "singularity backend", detail)]
    return [Finding(OK, "singularity backend", "native (no apptainer/singularity found)")]


def tools() -> list[Finding]:
    wanted = {
        "tar2sqfs": ("native SIF packing with lz4 or lzo", "apt-get install squashfs-tools-ng"),
        "sqfs2tar": ("imgforge verify --deep", "apt-get install squashfs-tools-ng"),
        "unsquashfs": ("reading SIF files back", "apt-get install squashfs-tools"),
        "dot": ("graph --format svg|png", "apt-get install graphviz"),
    }
    findings = []
    for tool, (use, fix) in wanted.items():
        path = shutil.which(tool)
        if path:
            findings.append(Finding(OK, tool, f"{path} ({use})"))
        else:
            findings.append(Finding(WARN, tool, f"missing: needed for {use}", fix))
    return findings


def disk(out: Path) -> list[Finding]:
    probe = out.absolute()
    while not probe.exists():
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    detail = f"{free / 1024**3:.1f} GiB free under {out}"
    if free < LOW_DISK:
        return [Finding(WARN, "disk", detail, "NGC-based SIFs take 5-20 GiB: free space")]
    return [Finding(OK, "disk", detail)]


def credentials() -> list[Finding]:
    """Which credentials are present: names only, never values."""
    present = [name for name in (USER_ENV, PASSWORD_ENV, NGC_KEY_ENV) if os.environ.get(name)]
    config = Path(os.environ.get("DOCKER_CONFIG", Path.home() / ".docker")) / "config.json"
    registries: list[str] = []
    helpers: list[str] = []
    try:
        data = json.loads(config.read_text())
        registries = sorted(data.get("auths") or {})
        helpers = sorted(data.get("credHelpers") or {}) + (
            [data["credsStore"]] if data.get("credsStore") else []
        )
    except (OSError, ValueError, AttributeError):
        pass
    detail = ", ".join(
        part
        for part in (
            f"environment: {', '.join(present)}" if present else "",
            f"docker login: {', '.join(registries)}" if registries else "",
            f"credential helpers: {', '.join(helpers)}" if helpers else "",
        )
        if part
    )
    if not detail:
        return [
            Finding(
                WARN,
                "registry credentials",
                "none (public images and local registries only)",
                f"docker login nvcr.io, or set {NGC_KEY_ENV}",
            )
        ]
    return [Finding(OK, "registry credentials", detail)]


def run_all(out: Path) -> list[Finding]:
    return [*engine(), *singularity(), *tools(), *disk(out), *credentials()]
