"""The NGC-sized bases of the ``scale`` scenario, built once per machine and cached by tag.

    python bench/scalebase.py [0.2 1 6]      build the missing bases, print their sizes

- 0.2 GB: the NGC stand-in itself (scripts/ngc_standin.py).
- 1 GB: the stand-in + the synthetic site-packages-like tree of bench/synthtree.py (ADD of
  its deterministic tar, so hard links and symlinks survive).
- 6 GB: the stand-in + ``pip install torch==2.14.1`` with its CUDA wheels (several GB of
  real ``.so`` files), committed, + the same synthetic tree.

The pip step runs in a container (``docker build`` can't bind-mount the local mirror) from
the file:// indexes /opt/pypi-more/simple and /opt/pypi/simple when they exist, else from
PyPI, with every version pinned (PINS) so the set of files is the same everywhere. It
installs with ``--no-compile`` and ``PYTHONDONTWRITEBYTECODE=1``: no ``.pyc`` whose bytes
embed install-time mtimes, so two builds differ only in file mtimes. ``docker commit``
then restores the stand-in's ENTRYPOINT (which also resets CMD to the stand-in's null);
Env, Entrypoint, Cmd and WorkingDir are checked equal to the stand-in's, and its labels
kept, plus one label naming the generator version. Bump GENERATOR when anything here or
in synthtree.py changes what a base holds: the tags carry it, so new bases get built.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from harness import STANDIN, BenchError, run, say
from synthtree import write_tar

GENERATOR = "v1"
REPOSITORY = "imgforge-bench/scale"
LABEL = "org.imgforge.bench.generator"
SEED = 20240101
TAGS = {"0.2": STANDIN, "1": f"{REPOSITORY}:1g-{GENERATOR}", "6": f"{REPOSITORY}:6g-{GENERATOR}"}
TORCH_TAG = f"{REPOSITORY}:torch-{GENERATOR}"
MIRRORS = [Path("/opt/pypi-more/simple"), Path("/opt/pypi/simple")]
PYPI = "https://pypi.org/simple"
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
PINS = {
    "torch": "2.14.1",
    "cuda-bindings": "13.5.0",
    "cuda-pathfinder": "1.8.3",
    "cuda-toolkit": "13.0.3.0",
    "filelock": "4.0.8",
    "fsspec": "2026.9.0",
    "jinja2": "3.1.6",
    "markupsafe": "3.0.3",
    "mpmath": "1.3.0",
    "networkx": "3.6.1",
    "nvidia-cublas": "13.1.1.3",
    "nvidia-cuda-cupti": "13.0.85",
    "nvidia-cuda-nvrtc": "13.0.88",
    "nvidia-cuda-runtime": "13.0.96",
    "nvidia-cudnn-cu13": "9.24.0.43",
    "nvidia-cufft": "12.0.0.61",
    "nvidia-cufile": "1.15.1.6",
    "nvidia-curand": "10.4.0.35",
    "nvidia-cusolver": "12.0.4.66",
    "nvidia-cusparse": "12.6.3.3",
    "nvidia-cusparselt-cu13": "0.8.1",
    "nvidia-nccl-cu13": "2.30.7",
    "nvidia-nvjitlink": "13.4.92",
    "nvidia-nvshmem-cu13": "3.4.5",
    "nvidia-nvtx": "13.0.85",
    "setuptools": "84.0.0",
    "sympy": "1.14.0",
    "triton": "3.8.0",
    "typing-extensions": "4.16.0",
}


def exists(tag: str) -> bool:
    return run(["docker", "image", "inspect", tag], check=False).returncode == 0


def config(tag: str) -> dict[str, object]:
    """The image's Config as the engine reports it."""
    found = json.loads(
        run(["docker", "image", "inspect", "--format", "{{json .Config}}", tag]).stdout
    )
    assert isinstance(found, dict)
    return found


def check_config(tag: str) -> None:
    """Fail unless ``tag`` kept the stand-in's Env/Entrypoint/Cmd/WorkingDir and labels."""
    ours, theirs = config(tag), config(STANDIN)
    for key in ("Env", "Entrypoint", "Cmd", "WorkingDir"):
        if ours.get(key) != theirs.get(key):
            raise BenchError(f"{tag}: Config.{key} differs from the stand-in's")
    labels, wanted = ours.get("Labels") or {}, theirs.get("Labels") or {}
    assert isinstance(labels, dict) and isinstance(wanted, dict)
    if {k: labels.get(k) for k in wanted} != wanted or labels.get(LABEL) != GENERATOR:
        raise BenchError(f"{tag}: labels lost the stand-in's or lack {LABEL}={GENERATOR}")


def pip_script(mirrors: list[Path]) -> str:
    """The shell script run in the stand-in: pinned packages the mirror lacks from PyPI
    (without dependencies), then torch and the rest from the mirror (PyPI without one)."""
    lacking = [n for n in PINS if mirrors and not any((m / n).is_dir() for m in mirrors)]
    indexes = [f"file://{m}" for m in mirrors] or [PYPI]
    flags = "--no-compile --no-cache-dir --break-system-packages --disable-pip-version-check"
    cert = "PIP_CERT=/etc/imgforge-bench-ca.crt " if CA_BUNDLE.is_file() else ""
    common = f"PIP_CONFIG_FILE=/dev/null {cert}pip install -q {flags}"
    pinned = " ".join(f"{n}=={v}" for n, v in PINS.items() if n not in lacking)
    extra = " ".join(f"--extra-index-url {i}" for i in indexes[1:])
    lines = ["set -e", "export PYTHONDONTWRITEBYTECODE=1"]
    if lacking:
        fallback = " ".join(f"{n}=={PINS[n]}" for n in lacking)
        lines.append(f"{common} --no-deps --index-url {PYPI} {fallback}")
    lines.append(f"{common} --index-url {indexes[0]} {extra} {pinned}")
    return "\n".join(lines)


def build_torch(tag: str) -> None:
    """``docker run`` the pip install in the stand-in, then ``docker commit`` it."""
    mirrors = [m for m in MIRRORS if m.is_dir()]
    mounts = [a for m in mirrors for a in ("-v", f"{m.parent}:{m.parent}:ro")]
    if CA_BUNDLE.is_file():
        mounts += ["-v", f"{CA_BUNDLE}:/etc/imgforge-bench-ca.crt:ro"]
    name = f"imgforge-bench-scalebase-{GENERATOR}"
    run(["docker", "rm", "-f", name], check=False)
    argv = ["docker", "run", "--name", name, "--network", "host", *mounts]
    say(
        f"installing torch=={PINS['torch']} and its CUDA wheels ({'mirror' if mirrors else 'PyPI'})"
    )
    try:
        run([*argv, "--entrypoint", "/bin/sh", STANDIN, "-c", pip_script(mirrors)])
        entrypoint = json.dumps(config(STANDIN).get("Entrypoint"))
        changes = ["--change", f"ENTRYPOINT {entrypoint}", "--change", f"LABEL {LABEL}={GENERATOR}"]
        run(["docker", "commit", *changes, name, tag])
    finally:
        run(["docker", "rm", "-f", name], check=False)
    check_config(tag)


def add_tree(base: str, tag: str) -> None:
    """``docker build`` of ``base`` + ADD of the synthetic tree's tar."""
    with tempfile.TemporaryDirectory(prefix="imgforge-bench-scalebase-") as context:
        say(f"writing the synthetic tree for {tag}")
        write_tar(Path(context) / "synth.tar", seed=SEED)
        dockerfile = f"FROM {base}\nADD synth.tar /\nLABEL {LABEL}={GENERATOR}\n"
        (Path(context) / "Dockerfile").write_text(dockerfile)
        run(["docker", "build", "--network", "host", "-q", "-t", tag, context])
    check_config(tag)


def ensure(size: str) -> str:
    """The tag of the base of ``size`` GB ("0.2", "1" or "6"), built when missing."""
    tag = TAGS[size]
    if exists(tag):
        return tag
    if size == "0.2":
        raise BenchError(f"{STANDIN} is missing: run `python scripts/ngc_standin.py`")
    if size == "6" and not exists(TORCH_TAG):
        build_torch(TORCH_TAG)
    say(f"building the {size} GB base {tag} (once per machine)")
    add_tree(TORCH_TAG if size == "6" else STANDIN, tag)
    return tag


def size_bytes(tag: str) -> int:
    """``docker image inspect .Size`` of ``tag``."""
    return int(run(["docker", "image", "inspect", "--format", "{{.Size}}", tag]).stdout)


def main(argv: list[str]) -> int:
    for size in argv or list(TAGS):
        tag = ensure(size)
        print(f"{size} GB base: {tag}: {size_bytes(tag)} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
