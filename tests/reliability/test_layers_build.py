"""`imgforge build` reading the image's layers in place (the engine's overlay2 directories
on this machine) instead of `docker export`: the SIF is the one the export gives, byte for
byte under SOURCE_DATE_EPOCH, whatever the layers delete, replace and link; a rebuild takes
the blocks of files it packed before from the cache without reading them."""

from __future__ import annotations

import contextlib
import json
import random
from pathlib import Path

import pytest
from reliability_support import build_argv, run_main, write

from imgforge.cli import main
from imgforge.engine.docker import DockerEngine
from imgforge.engine.image import EngineImage

pytestmark = pytest.mark.integration

# Steps that leave whiteouts, opaque directories, hard links, symlinks, setuid bits and
# replaced files in the recipe's layers, over files of the base.
STEPS = [
    "mkdir -p /opt/t/d1/d2 && echo a > /opt/t/d1/f && ln /opt/t/d1/f /opt/t/hl"
    " && ln -s ../d1 /opt/t/sym && chmod 4755 /opt/t/d1/f && touch /opt/t/empty",
    "rm -rf /opt/t/d1 && mkdir /opt/t/d1 && echo b > /opt/t/d1/g && rm -f /bin/false",
    "mv /opt/t/hl /opt/t/hl2 && rm /opt/t/empty && mkdir /opt/t/empty && chmod 1777 /opt/t/empty",
    "cp /opt/layers/payload.bin /opt/t/copy.bin && echo c > /etc/hostname",
]


def recipe(project: Path, name: str, base: str, seed: int) -> Path:
    write(project / "payload.bin", random.Random(seed).randbytes(900_000))
    commands = ", ".join(json.dumps(step) for step in STEPS)
    text = (
        f'name = "{name}"\nbase = "{base}"\n'
        f'[files]\n"payload.bin" = "/opt/layers/payload.bin"\n'
        f"[run]\ncommands = [{commands}]\n"
    )
    return write(project / f"{name}.toml", text)


def build(recipe_path: Path, out: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> str:
    """The build's log."""
    argv = build_argv(recipe_path, out, "--force", *extra, singularity="native")
    code, _, err = run_main(argv, capsys)
    assert code == 0, err
    return (out / recipe_path.stem / "build.log").read_text()


@pytest.fixture
def epoch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")


def test_layers_give_the_export_sif_and_a_rebuild_reads_no_packed_file(
    tmp_path: Path,
    mini_image: str,
    epoch: None,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    name = "rel-layers-a"
    first = recipe(tmp_path, name, mini_image, 1)
    out, cache = tmp_path / "out", tmp_path / "cache"
    sif = out / name / f"{name}.sif"
    log = build(first, out, capsys, "--cache-dir", str(cache))
    engine = DockerEngine.connect()
    with engine.layers(str(engine.image_id(f"{name}:latest"))) as found:
        readable = found is not None
    # Where the engine keeps overlay2 layers here and we may read them, they are read.
    assert ("$ imgforge image layers |" in log) == readable, log
    assert ("$ docker export |" in log) == (not readable), log
    layered = sif.read_bytes()
    assert main(["verify", "--deep", str(sif), "--image", f"{name}:latest"]) == 0

    warm = build(first, out, capsys, "--cache-dir", str(cache))
    assert sif.read_bytes() == layered
    if readable:
        assert "layer index: " in warm and "files known without reading them" in warm

    monkeypatch.setattr(EngineImage, "layers", lambda self: contextlib.nullcontext(None))
    exported = build(first, out, capsys, "--no-cache")
    assert "$ docker export |" in exported
    assert sif.read_bytes() == layered


def test_the_image_is_kept_while_its_layers_are_read(mini_image: str) -> None:
    """While a pack reads an image's layers in place, the engine keeps the image: a
    ``docker rmi`` then is refused, as it is during ``docker export``; after, it isn't."""
    import io

    from docker.errors import APIError

    engine = DockerEngine.connect()
    tag = "rel-layers-held:latest"
    dockerfile = io.BytesIO(f"FROM {mini_image}\nLABEL org.imgforge.test=held\n".encode())
    list(engine.api.build(fileobj=dockerfile, tag=tag, rm=True, network_mode="host"))
    image = engine.api.inspect_image(tag)["Id"]
    try:
        for reader in (engine.layers, engine.exported):
            with reader(image) as found:
                if found is None:  # no layers to read here: the export is read, and holds it
                    continue
                with pytest.raises(APIError, match="(?i)conflict"):
                    engine.api.remove_image(tag)
            assert not engine.api.containers(all=True, filters={"ancestor": image})
        engine.api.remove_image(tag)
    finally:
        with contextlib.suppress(APIError):
            engine.api.remove_image(tag, force=True)
