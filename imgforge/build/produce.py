"""Build one job's image and Singularity image and describe them as a Manifest."""

from __future__ import annotations

import datetime as dt
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imgforge import __version__
from imgforge.build.publish import push_image, save_image
from imgforge.build.record import Manifest
from imgforge.build.records import (
    BaseRecord,
    CommitRecord,
    Fingerprint,
    PushRecord,
    SavedRecord,
    SifRecord,
    Timings,
    Tools,
)
from imgforge.build.sifpush import push_sif
from imgforge.build.sqshfile import make_sqsh_file
from imgforge.build.status import job_inputs
from imgforge.build.strategies import STRATEGIES
from imgforge.engine.image import EngineImage
from imgforge.errors import BuildError
from imgforge.log import Log
from imgforge.options import Options
from imgforge.recipes.image import ImageConfig
from imgforge.recipes.jobs import BuildJob
from imgforge.sif.backend import SifBackend
from imgforge.sif.make import make_sif
from imgforge.sif.texts import SifTexts

if TYPE_CHECKING:
    from imgforge.engine.protocol import Engine
    from imgforge.render.job import Rendered

Say = Callable[[str], None]


@dataclass(frozen=True)
class Workbench:
    """What building a job uses: the engine, the options and the chosen SIF backend."""

    engine: Engine
    options: Options
    network: str | None
    backend: SifBackend | None
    say: Say
    sqsh: bool = False  # an enroot image too

    @property
    def cache(self) -> tuple[Path, int] | None:
        """The squashed-data cache's directory and size limit (None: --no-cache)."""
        if not self.options.cache:
            return None
        from imgforge.cache import default_root

        return self.options.cache_dir or default_root(), self.options.cache_limit


@dataclass(frozen=True)
class Plan:
    """How one job is built: its strategy, its base image's ID and its fingerprint."""

    strategy: str
    base_id: str
    fingerprint: Fingerprint


@dataclass(frozen=True)
class Image:
    """The built image: its ID, its config as the engine reports it, and how long the
    engine took."""

    image_id: str
    inspected: dict[str, Any]
    config: ImageConfig
    commit: CommitRecord | None
    seconds: float


@dataclass(frozen=True)
class Produced:
    """What one build left: the image, its manifest, and the SIF at a temporary name
    (renamed into place with the other artifacts), if one was made."""

    image_id: str
    manifest: Manifest
    sif_file: Path | None
    sqsh_file: Path | None = None


def build_image(
    bench: Workbench, job: BuildJob, rendered: Rendered, *, plan: Plan, log: Log
) -> Image:
    """Run the job's strategy; the result must carry exactly the planned config."""
    started = time.monotonic()
    strategy = STRATEGIES[plan.strategy]
    image_id, record = strategy(bench.engine, job, rendered, network=bench.network, log=log)
    built = bench.engine.ensure_image(image_id, why=job.recipe.image)
    config = ImageConfig.from_inspect(built, origin=f"image {job.recipe.image}")
    check_config(job, rendered.config, config)
    commit = CommitRecord.from_json(record) if record else None
    return Image(image_id, built, config, commit, time.monotonic() - started)


def make_sif_file(
    bench: Workbench,
    job: BuildJob,
    image: Image,
    texts: SifTexts,
    *,
    pushed: str | None,
    log: Log,
) -> tuple[Path | None, SifRecord | None]:
    """The SIF of ``image`` at a temporary name and its record; none without a backend."""
    backend = bench.backend
    if backend is None:
        return None, None
    bench.say(f"{job.recipe.image}: making {job.artifacts.image_file.name} ({backend.name})")
    compression = bench.options.compression
    made = make_sif(
        job,
        texts,
        backend=backend,
        source=EngineImage(bench.engine, image.image_id, image.config),
        compression=compression,
        log=log,
        pushed=pushed,
        cache=bench.cache,
    )
    stat = made.path.stat()  # a rename keeps size and mtime
    packing = made.packing
    return made.path, SifRecord(
        path=job.artifacts.image_file.name,
        format=job.artifacts.image_format,
        sha256=made.sha256,
        size=stat.st_size,
        mtime_ns=stat.st_mtime_ns,
        backend=backend.name,
        tool_version=packing.tool if packing is not None else backend.version(),
        compression=compression,
        docker_image_id=image.image_id,
        seconds=made.seconds,
        squashfs_size=packing.size if packing is not None else None,
        pack_seconds=packing.seconds if packing is not None else None,
        cache=packing.cache.to_json() if packing is not None and packing.cache else None,
    )


def produce(
    bench: Workbench, job: BuildJob, rendered: Rendered, *, plan: Plan, log: Log
) -> Produced:
    """Build the image, push it, make its SIF, save it (as the options ask)."""
    started = time.monotonic()
    image = build_image(bench, job, rendered, plan=plan, log=log)
    options = bench.options
    push = None
    if options.push:
        push = push_image(bench.engine, job, image.image_id, options.push, log)
    pushed = push.reference if push is not None else None
    sif_file, sif = make_sif_file(bench, job, image, rendered.sif, pushed=pushed, log=log)
    sqsh_file = sqsh = None
    try:
        if bench.sqsh:
            sqsh_file, sqsh = make_sqsh_file(
                job, rendered.sif, source=EngineImage(bench.engine, image.image_id, image.config),
                compression=options.compression, cache=bench.cache, say=bench.say, log=log,
            )  # fmt: skip
        push = push_sif(job, push, sif_file, sif, inspected=image.inspected, log=log)
        saved = save_image(bench.engine, job, image.image_id) if options.save else None
        timings = Timings(round(time.monotonic() - started, 3), round(image.seconds, 3))
        manifest = manifest_of(
            job, image, plan=plan, sif=sif, push=push, saved=saved, timings=timings, bench=bench
        )
    except BaseException:
        for made in (sif_file, sqsh_file):  # nothing is left behind by a failed build
            if made is not None:
                made.unlink(missing_ok=True)
        raise
    return Produced(image.image_id, replace(manifest, sqsh=sqsh), sif_file, sqsh_file)


def manifest_of(
    job: BuildJob,
    image: Image,
    *,
    plan: Plan,
    sif: SifRecord | None,
    push: PushRecord | None,
    saved: SavedRecord | None,
    timings: Timings,
    bench: Workbench,
) -> Manifest:
    """The manifest of a build that just succeeded."""
    return Manifest(
        imgforge_version=__version__,
        recipe=job.name,
        recipe_file=str(job.recipe.path),
        image=job.recipe.image,
        docker_image_id=image.image_id,
        strategy=plan.strategy,
        base=BaseRecord(job.recipe.base, job.base.resolved, plan.base_id),
        fingerprint=plan.fingerprint,
        env=tuple((image.inspected.get("Config") or {}).get("Env") or ()),
        sif=sif,
        tools=Tools(__version__, bench.engine.version(), platform.python_version()),
        timings=timings,
        built_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        commit=image.commit,
        push=push,
        saved=saved,
        inputs=job_inputs(job, bench.options),
    )


def check_config(job: BuildJob, expected: ImageConfig, built: ImageConfig) -> None:
    """The built image must carry exactly the config imgforge computed, from which the
    Singularity image's files were rendered before the build: fail loudly if not."""
    if list(built.env) != list(expected.env):
        want = dict(expected.env_pairs())
        actual = dict(built.env_pairs())
        keys = sorted(k for k in want.keys() | actual.keys() if want.get(k) != actual.get(k))
        raise BuildError(
            f"{job.recipe.path}: env: the built image's Env differs from the expected one "
            f"for {', '.join(keys) or 'the order of variables'}"
        )
    fields = {
        "Labels": (dict(expected.labels), dict(built.labels)),
        "Entrypoint": (expected.run_entrypoint(), built.run_entrypoint()),
        "Cmd": (expected.cmd, built.cmd),
        "Architecture": (expected.arch, built.arch),
    }
    if differ := [name for name, (want, have) in fields.items() if want != have]:
        labels, built_labels = dict(expected.labels), dict(built.labels)
        keys = sorted(
            k for k in labels.keys() | built_labels.keys() if labels.get(k) != built_labels.get(k)
        )
        which = f" (labels {', '.join(keys)})" if keys else ""
        raise BuildError(
            f"{job.recipe.path}: the built image's {', '.join(differ)} differ from the "
            f"expected ones{which}"
        )
