"""The apptainer/singularity backend for real: Docker image -> SIF, and the SIF's environment
equals the image's Config.Env (SPEC "Environment preservation")."""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support import installed_runtime

from imgforge.engine.docker import DockerEngine
from imgforge.engine.image import EngineImage
from imgforge.log import Lines, discard
from imgforge.patterns import ENV_KEY_RE
from imgforge.recipes.image import ImageConfig, split_env
from imgforge.recipes.jobs import BuildJob
from imgforge.render import render
from imgforge.sif.apptainer import SingularityCLI
from imgforge.sif.backend import SifRequest

RUNTIME = installed_runtime()
TOOL = RUNTIME.path if RUNTIME else None
TOOL_NAME = "apptainer" if RUNTIME is None or RUNTIME.flavour == "apptainer" else "singularity"

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        TOOL is None,
        reason="apptainer is not installed (neither on PATH nor in /opt/apptainer/bin)",
    ),
]

# Values that the pre-1.5 converters mangle (docs/APPTAINER.md, "Environment"): quotes, $,
# backticks, \.
TRICKY = {
    "TRICKY": "a \"$b\" `id` 'd' ${e} \\ f $(echo no)",
    "SPACES": "  two  spaces  ",
    "EMPTY": "",
}
# 99-base.sh appends the bind target of --nv/--rocm libraries to LD_LIBRARY_PATH.
RUNTIME_SUFFIX = {"LD_LIBRARY_PATH": ":/.singularity.d/libs"}


@pytest.fixture(scope="module")
def engine(standin_image: str) -> DockerEngine:
    return DockerEngine.connect()


def context_tar(dockerfile: str) -> io.BytesIO:
    data = dockerfile.encode()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    buffer.seek(0)
    return buffer


@pytest.fixture
def job(
    standin_image: str,
    engine: DockerEngine,
    tmp_path: Path,
    jobs_for: Callable[..., list[BuildJob]],
) -> BuildJob:
    """A recipe on the NGC stand-in that adds hard-to-quote env values."""
    base = ImageConfig.from_inspect(engine.ensure_image(standin_image, why="test"))
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    env = "".join(f"{name} = {json.dumps(value)}\n" for name, value in TRICKY.items())
    (recipes / "sifenv.toml").write_text(f'base = "{standin_image}"\n[env]\n{env}')
    built: BuildJob = jobs_for(recipes, {standin_image: base}, out=tmp_path / "build")[0]
    return built


@pytest.fixture
def image_id(engine: DockerEngine, job: BuildJob) -> Iterator[str]:
    built = engine.build(
        context_tar(render(job, "dockerfile")),
        dockerfile="Dockerfile",
        network=engine.build_network(None),
        log=discard,
        what=job.name,
    )
    yield built
    with contextlib.suppress(Exception):
        engine.api.remove_image(built, force=True)


def sif_env(sif: Path) -> dict[str, str]:
    """The environment a program sees in ``sif`` (NUL-separated, so any value survives)."""
    assert TOOL is not None
    done = subprocess.run(
        [TOOL, "exec", "--cleanenv", str(sif), "env", "-0"],
        capture_output=True,
        check=True,
        timeout=300,
    )
    entries = done.stdout.decode().split("\0")
    return dict(split_env(entry) for entry in entries if entry)


def test_sif_env_equals_the_image_env(
    engine: DockerEngine, job: BuildJob, image_id: str, tmp_path: Path
) -> None:
    inspect = engine.inspect(image_id)
    assert inspect is not None
    image_env = [split_env(entry) for entry in inspect["Config"]["Env"]]
    out = tmp_path / "build" / job.name
    out.mkdir(parents=True, exist_ok=True)
    env_file = out / "imgforge-env.sh"
    env_file.write_text(render(job, "env"))
    archive = out / f".{job.name}.archive.tar"
    request = SifRequest(
        name=job.name,
        image_id=image_id,
        config=ImageConfig.from_inspect(inspect),
        files={},
        deffile=render(job, "def"),
        convert_deffile=render(job, "convert", archive=archive, env_file_path=env_file),
        archive=archive,
        target=out / f".{job.name}.sif.tmp",
    )
    assert TOOL is not None
    lines = Lines()
    source = EngineImage(engine, image_id, request.config)
    SingularityCLI(TOOL_NAME, TOOL).make(request, source=source, log=lines)

    assert request.target.is_file(), "\n".join(lines)
    assert not archive.exists()
    assert sorted(p.name for p in out.iterdir()) == sorted([env_file.name, request.target.name])
    got = sif_env(request.target)
    compared = {name for name, _ in image_env if ENV_KEY_RE.match(name)}
    assert set(TRICKY) <= compared
    for name, value in image_env:
        if name in compared:
            assert got.get(name) == value + RUNTIME_SUFFIX.get(name, ""), name
