"""The orchestrator: run BuildJobs in DAG order and leave artifacts and manifests."""

from __future__ import annotations

import datetime as dt
import platform
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from imgforge import __version__, atomic
from imgforge.build import record as manifest
from imgforge.build.lock import recipe_lock
from imgforge.build.publish import publish_missing, push_image, push_repository, save_image
from imgforge.build.scheduler import FAILED, NOT_ATTEMPTED, schedule
from imgforge.build.session import Session
from imgforge.build.sources import source_files
from imgforge.build.status import Status, input_record, job_status
from imgforge.build.strategies import STRATEGIES
from imgforge.errors import (
    NO_TRACEBACK_FILE,
    BuildError,
    EngineError,
    ImgforgeError,
    is_system_error,
    unexpected,
)
from imgforge.options import Options
from imgforge.recipes.image import ImageConfig
from imgforge.recipes.jobs import BuildJob
from imgforge.render.job import Rendered, Sources, render_job, render_sources
from imgforge.sif.backend import SifBackend, choose
from imgforge.sif.make import build_time, make_sif

if TYPE_CHECKING:
    from imgforge.engine.docker import DockerEngine

Say = Callable[[str], None]
PUBLISHED = {"push": "pushed", "saved": "saved"}


def manifest_file(job: BuildJob, data: dict[str, Any]) -> tuple[Path, str, int]:
    return job.artifacts.manifest, manifest.text(data), 0o644


@dataclass
class Summary:
    """What one ``build`` run did, per recipe."""

    built: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    not_attempted: list[str] = field(default_factory=list)
    errors: list[ImgforgeError] = field(default_factory=list)


class Builder:
    """Builds jobs on one engine; ``say`` gets user messages, ``stream`` build output."""

    def __init__(
        self,
        engine: DockerEngine,
        options: Options,
        *,
        say: Say,
        stream: Say | None = None,
        step: Callable[[str, str | None], None] | None = None,
    ) -> None:
        self.engine = engine
        self.options = options
        self.say = say
        self.stream = stream
        self.step = step or (lambda name, text: None)
        self.image_ids: dict[str, str] = {}
        self.rebuilt: set[str] = set()
        self.network = engine.build_network(options.network)
        self._sif_backend: SifBackend | None = None
        self._sif_chosen = False

    @property
    def sif_backend(self) -> SifBackend | None:
        """The Singularity backend, chosen on first use (exit 3 if its tool is missing)."""
        if not self._sif_chosen:
            self._sif_backend = choose(self.options.singularity)
            self._sif_chosen = True
        return self._sif_backend

    def base_id(self, job: BuildJob) -> str:
        parent = job.recipe.base_recipe
        if parent is None:
            return job.base.image_id or ""
        return self.image_ids.get(parent, "")

    def strategy(self, job: BuildJob) -> str:
        if job.name == self.options.interactive:
            return "interactive"
        return self.options.strategy or job.recipe.strategy

    def status(self, job: BuildJob, sources: Sources, rebuilding: set[str]) -> Status:
        return job_status(
            job,
            sources,
            base_id=self.base_id(job),
            engine=self.engine,
            force=self.options.force,
            strategy=self.strategy(job),
            rebuilding=rebuilding,
            want_sif=self.options.singularity != "none",
        )

    def plan(self, session: Session) -> list[Status]:
        """Every job's status, in build order, without building anything."""
        statuses: list[Status] = []
        rebuilding: set[str] = set()
        for job in session.jobs:
            status = self.status(job, render_sources(job), rebuilding)
            if status.stale:
                rebuilding.add(job.name)
            else:
                self.image_ids[job.name] = status.image_id or ""
            statuses.append(status)
        return statuses

    def run(self, session: Session, *, keep_going: bool = False) -> Summary:
        """Build stale jobs in DAG order, ``--jobs`` at a time; a failure skips its
        dependents (and, without ``keep_going``, everything not yet started)."""
        jobs = {job.name: job for job in session.jobs}
        errors: list[ImgforgeError] = []
        outcomes = schedule(
            list(jobs),
            {name: job.parents for name, job in jobs.items()},
            lambda name: self.process(jobs[name]),
            jobs=self.options.jobs,
            keep_going=keep_going,
            errors=errors,
            on_interrupt=self.engine.interrupt,
        )
        summary = Summary(errors=errors)
        lists = {
            "built": summary.built,
            "skipped": summary.skipped,
            FAILED: summary.failed,
            NOT_ATTEMPTED: summary.not_attempted,
        }
        for name, outcome in outcomes.items():
            lists[outcome].append(name)
        return summary

    def process(self, job: BuildJob) -> str:
        """Build one job if it is stale; its parents are done. Returns the outcome."""
        sources = render_sources(job)
        status = self.status(job, sources, self.rebuilt)
        if not status.stale:
            self.image_ids[job.name] = status.image_id or ""
            self.refresh_inputs(job)
            self.say(f"{job.recipe.image}: up to date")
            if self.options.push or self.options.save:
                with recipe_lock(
                    job.artifacts.directory, what=job.recipe.image, wait=True, say=self.say
                ):
                    done = publish_missing(
                        self.engine, job, status.image_id or "", self.options, self.say
                    )
                for kind in done:
                    self.say(f"{job.recipe.image}: {PUBLISHED[kind]} without rebuilding")
            return "skipped"
        self.step(job.name, f"starting ({status.reason})")
        what = f"{job.recipe.path}: {job.recipe.image}"
        try:
            with recipe_lock(
                job.artifacts.directory, what=what, wait=self.options.wait, say=self.say
            ):
                self.build_one(job, status)
        except BuildError as exc:
            if gone := self.engine_gone(what):
                self.failed(job, gone)
                raise gone from None
            self.failed(job, exc)
            raise
        except ImgforgeError as exc:
            self.failed(job, exc)
            raise
        except Exception as exc:
            error = self.engine_gone(what) or foreign_error(job, what, exc)
            self.failed(job, error)
            raise error from exc  # --verbose shows the original traceback
        finally:
            self.step(job.name, None)
        self.rebuilt.add(job.name)
        return "built"

    def render(self, job: BuildJob) -> Rendered:
        """Every text the build of ``job`` needs, before anything runs."""
        registry = self.options.push
        pushed = f"{push_repository(job, registry)}:{job.recipe.tag}" if registry else None
        return render_job(
            job, strategy=self.strategy(job), built_at=build_time(), source_ref=pushed
        )

    def engine_gone(self, what: str) -> EngineError | None:
        """After a failure: the engine stopped answering, if it did (the real cause,
        whatever the broken connection or the killed step looked like)."""
        if self.engine.cancel.is_set() or self.engine.answers():
            return None
        return EngineError(
            f"{what}: the Docker engine stopped answering during the build; "
            "start it again (systemctl start docker, or dockerd) and rerun"
        )

    def failed(self, job: BuildJob, error: ImgforgeError) -> None:
        # After Ctrl-C/SIGTERM the interrupt is the one message: what the cancelled
        # build ran into while stopping is a consequence, not news.
        if not self.engine.cancel.is_set():
            self.say(f"{job.recipe.image}: FAILED: {error}")

    def build_one(self, job: BuildJob, status: Status) -> None:
        # (temporary, final) pairs: every artifact is written beside its final name and
        # renamed only once all are written and the tag has moved, so a failure at any
        # point keeps the previous good set (the log holds the Dockerfile that failed).
        pending: list[tuple[Path, Path]] = []
        try:
            rendered = self.render(job)
            image_id, data = self.produce(job, rendered, status, pending)
            # The manifest last: a crash between renames leaves it not matching the
            # files, and the next run rebuilds rather than trusts them.
            files = [*source_files(job, rendered.sources), manifest_file(job, data)]
            for path, text, mode in files:
                pending.append((atomic.stage(path, text.encode("utf-8"), mode=mode), path))
            if self.engine.cancel.is_set():
                raise BuildError(f"{job.recipe.path}: {job.recipe.image}: interrupted")
            self.engine.tag(image_id, job.recipe.name, job.recipe.tag)
            atomic.rename_all(pending)
        finally:
            for temporary, _ in pending:
                temporary.unlink(missing_ok=True)
        self.image_ids[job.name] = image_id
        elapsed = data["timings"]["total_seconds"]
        self.say(f"{job.recipe.image}: built {image_id[7:19]} in {elapsed:.1f}s")

    def produce(
        self, job: BuildJob, rendered: Rendered, status: Status, pending: list[tuple[Path, Path]]
    ) -> tuple[str, dict[str, Any]]:
        """Build the image and the Singularity image (added to ``pending``); return the
        image ID and the manifest data."""
        backend = self.sif_backend
        self.say(f"{job.recipe.image}: building ({status.reason})")
        started = time.monotonic()
        job.artifacts.directory.mkdir(parents=True, exist_ok=True)
        with job.artifacts.log.open("w", encoding="utf-8") as log_file:
            log = self.logger(job, log_file)
            log(f"# imgforge {__version__}: building {job.recipe.image} from {job.recipe.path}")
            strategy = STRATEGIES[self.strategy(job)]
            image_id, strategy_record = strategy(
                self.engine, job, rendered, network=self.network, log=log
            )
            built = self.engine.ensure_image(image_id, why=job.recipe.image)
            config = ImageConfig.from_inspect(built, origin=f"image {job.recipe.image}")
            check_config(job, rendered.config, config)
            docker_seconds = time.monotonic() - started
            extra: dict[str, Any] = {}
            if self.options.push:
                extra["push"] = push_image(self.engine, job, image_id, self.options.push, log)
            sif_record = None
            if backend is not None:
                sif_name = job.artifacts.image_file.name
                self.say(f"{job.recipe.image}: making {sif_name} ({backend.name})")
                sif_file, sif_record = make_sif(
                    job,
                    rendered.sif,
                    image_id=image_id,
                    config=config,
                    backend=backend,
                    engine=self.engine,
                    compression=self.options.compression,
                    log=log,
                    pushed=(extra.get("push") or {}).get("reference"),
                )
                pending.append((sif_file, job.artifacts.image_file))
            if self.options.save:
                extra["saved"] = save_image(self.engine, job, image_id)
        elapsed = time.monotonic() - started
        data = self.manifest_data(job, status, image_id, built, elapsed)
        data["sif"] = sif_record
        if strategy_record:
            data["commit"] = strategy_record
        data.update(extra)
        data["inputs"] = input_record(job, self.options)
        data["timings"]["docker_build_seconds"] = round(docker_seconds, 3)
        return image_id, data

    def refresh_inputs(self, job: BuildJob) -> None:
        """Record current file stats of an up-to-date recipe (e.g. after a touch), so the
        next no-op run takes the fast path again."""
        recorded = manifest.read(job.artifacts.manifest)
        inputs = input_record(job, self.options)
        if recorded is not None and recorded.get("inputs") != inputs:
            manifest.write(job.artifacts.manifest, {**recorded, "inputs": inputs})

    def logger(self, job: BuildJob, log_file: TextIO) -> Say:
        def log(line: str) -> None:
            log_file.write(line + "\n")
            log_file.flush()
            if line.startswith(("Step ", "$ ", "packing ", "packed ", "verify: ", "push: ")):
                self.step(job.name, line)
            if self.stream is not None:
                self.stream(f"[{job.name}] {line}")

        return log

    def manifest_data(
        self,
        job: BuildJob,
        status: Status,
        image_id: str,
        built: dict[str, Any],
        elapsed: float,
    ) -> dict[str, Any]:
        return {
            "imgforge_version": __version__,
            "recipe": job.name,
            "recipe_file": str(job.recipe.path),
            "image": job.recipe.image,
            "docker_image_id": image_id,
            "strategy": self.strategy(job),
            "base": {
                "ref": job.recipe.base,
                "resolved": job.base.resolved,
                "image_id": self.base_id(job),
            },
            "fingerprint": manifest.fingerprint_dict(status.fingerprint),
            "env": list((built.get("Config") or {}).get("Env") or []),
            "sif": None,
            "tools": {
                "imgforge": __version__,
                "docker_engine": self.engine.version(),
                "python": platform.python_version(),
            },
            "timings": {"total_seconds": round(elapsed, 3)},
            "built_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        }


def foreign_error(job: BuildJob, what: str, exc: Exception) -> BuildError:
    """One line for an exception from outside imgforge's error tree: an operating-system
    error (a full disk, a read-only --out, a vanished file) as the system words it;
    anything else is unexpected, and its traceback goes to the recipe's build.log."""
    if is_system_error(exc):
        return BuildError(f"{what}: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "))
    log = str(job.artifacts.log)
    try:
        job.artifacts.log.parent.mkdir(parents=True, exist_ok=True)
        with job.artifacts.log.open("a", encoding="utf-8") as handle:
            traceback.print_exception(exc, file=handle)
    except OSError:
        log = NO_TRACEBACK_FILE
    return BuildError(unexpected(f"{what}: building", exc, log))


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
        raise BuildError(
            f"{job.recipe.path}: the built image's {', '.join(differ)} differ from the "
            "expected ones"
        )
