"""The orchestrator: run BuildJobs in DAG order and leave artifacts and manifests."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from imgforge import __version__, atomic
from imgforge.build import record
from imgforge.build.failure import foreign_error
from imgforge.build.joblog import JobLog, SayLog
from imgforge.build.lock import recipe_lock
from imgforge.build.outcome import Outcome
from imgforge.build.produce import Plan, Produced, Workbench, produce
from imgforge.build.publish import publish_missing, push_repository
from imgforge.build.record import Manifest
from imgforge.build.scheduler import schedule
from imgforge.build.session import Session
from imgforge.build.sources import source_files
from imgforge.build.status import Status, job_inputs, job_status
from imgforge.errors import BuildError, EngineError, ImgforgeError
from imgforge.options import Options, Outputs, lists_sif, wanted
from imgforge.recipes.image import ImageConfig
from imgforge.recipes.jobs import BuildJob
from imgforge.render.job import Rendered, Sources, render_job, render_sources
from imgforge.sif.backend import SifBackend
from imgforge.sif.make import build_time

if TYPE_CHECKING:
    from imgforge.engine.protocol import Engine

Say = Callable[[str], None]
PUBLISHED = {"push": "pushed", "saved": "saved"}


def manifest_file(job: BuildJob, manifest: Manifest) -> tuple[Path, str, int]:
    return job.artifacts.manifest, record.text(manifest), 0o644


@dataclass(frozen=True)
class Summary:
    """What one ``build`` run did, per recipe (names in build order)."""

    built: tuple[str, ...] = ()
    skipped: tuple[str, ...] = ()
    failed: tuple[str, ...] = ()
    not_attempted: tuple[str, ...] = ()
    errors: tuple[ImgforgeError, ...] = ()

    @classmethod
    def of(cls, outcomes: Mapping[str, Outcome], errors: Iterable[ImgforgeError]) -> Summary:
        def named(outcome: Outcome) -> tuple[str, ...]:
            return tuple(name for name, done in outcomes.items() if done == outcome)

        return cls(
            built=named(Outcome.BUILT),
            skipped=named(Outcome.SKIPPED),
            failed=named(Outcome.FAILED),
            not_attempted=named(Outcome.NOT_ATTEMPTED),
            errors=tuple(errors),
        )


class Builder:
    """Builds jobs on one engine; ``say`` gets user messages, ``stream`` build output.
    ``sif_backend`` gives the Singularity backend (None: no image files) when the first
    one is made; see :func:`imgforge.sif.choice.chooser`."""

    def __init__(
        self,
        engine: Engine,
        options: Options,
        *,
        sif_backend: Callable[[], SifBackend | None],
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
        self.sif_backend = sif_backend

    def base_id(self, job: BuildJob) -> str:
        parent = job.recipe.base_recipe
        if parent is None:
            return job.base.image_id or ""
        return self.image_ids.get(parent, "")

    def strategy(self, job: BuildJob) -> str:
        if job.name == self.options.interactive:
            return "interactive"
        return self.options.strategy or job.recipe.strategy

    def outputs(self, job: BuildJob) -> Outputs:
        return wanted(job.recipe.outputs, self.options)

    def status(self, job: BuildJob, sources: Sources, rebuilding: set[str]) -> Status:
        return job_status(
            job,
            sources.digest,
            base_id=self.base_id(job),
            engine=self.engine,
            force=self.options.force,
            strategy=self.strategy(job),
            rebuilding=rebuilding,
            outputs=self.outputs(job),
            compression=self.options.compression,
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
        return Summary.of(outcomes, errors)

    def process(self, job: BuildJob) -> Outcome:
        """Build one job if it is stale; its parents are done."""
        sources = render_sources(job)
        status = self.status(job, sources, self.rebuilt)
        if not status.stale:
            self.up_to_date(job, status.image_id or "")
            return Outcome.SKIPPED
        self.step(job.name, f"starting ({status.reason})")
        what = f"{job.recipe.path}: {job.recipe.image}"
        try:
            with self.failures(job, what), recipe_lock(
                job.artifacts.directory, what=what, wait=self.options.wait, say=self.say
            ):
                self.build_one(job, status)
        finally:
            self.step(job.name, None)
        self.rebuilt.add(job.name)
        return Outcome.BUILT

    def up_to_date(self, job: BuildJob, image_id: str) -> None:
        """An up-to-date job: note its image, refresh its input record, and push or save
        it where the options ask for what the manifest lacks."""
        self.image_ids[job.name] = image_id
        self.refresh_inputs(job)
        self.say(f"{job.recipe.image}: up to date")
        if self.options.push or self.options.save:
            what = f"{job.recipe.path}: {job.recipe.image}"
            with self.failures(job, what), recipe_lock(
                job.artifacts.directory, what=job.recipe.image, wait=True, say=self.say
            ):
                done = publish_missing(
                    self.engine, job, image_id, self.options, SayLog(self.say)
                )
            for kind in done:
                self.say(f"{job.recipe.image}: {PUBLISHED[kind]} without rebuilding")

    def render(self, job: BuildJob) -> Rendered:
        """Every text the build of ``job`` needs, before anything runs."""
        registry = self.options.push
        pushed = f"{push_repository(job, registry)}:{job.recipe.tag}" if registry else None
        return render_job(
            self.on_parent_image(job),
            strategy=self.strategy(job),
            built_at=build_time(),
            source_ref=pushed,
        )

    def on_parent_image(self, job: BuildJob) -> BuildJob:
        """``job`` expecting its ``recipe:`` parent's labels as that image has them: a
        parent built by the commit strategy carries labels its plan does not (the
        strategy, the script), which the child inherits as a Dockerfile build would."""
        parent = job.recipe.base_recipe
        found = self.engine.inspect(self.image_ids.get(parent, "")) if parent else None
        if found is None:
            return job
        built = ImageConfig.from_inspect(found, origin=f"image of recipe {parent}")
        labels = {**dict(built.labels), **dict(job.config.labels)}
        return replace(job, config=replace(job.config, labels=tuple(sorted(labels.items()))))

    @contextlib.contextmanager
    def failures(self, job: BuildJob, what: str) -> Iterator[None]:
        """Work on ``job`` whose failure is said once and raised as an imgforge error: the
        engine's death as the cause where it died, a foreign exception as one line."""
        try:
            yield
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
        """Build ``job`` and move its artifacts into place together."""
        rendered = self.render(job)
        previous = record.read(job.artifacts.manifest)
        produced = self.produce(job, rendered, status)
        # (temporary, final) pairs: every artifact is written beside its final name and
        # renamed only once all are written and the tag has moved, so a failure at any
        # point keeps the previous good set (the log holds the Dockerfile that failed).
        pending: list[tuple[Path, Path]] = []
        if produced.sif_file is not None:
            pending.append((produced.sif_file, job.artifacts.image_file))
        if produced.sqsh_file is not None:
            pending.append((produced.sqsh_file, job.artifacts.sqsh_file))
        try:
            # The manifest last: a crash between renames leaves it not matching the
            # files, and the next run rebuilds rather than trusts them.
            files = [*source_files(job, rendered.sources), manifest_file(job, produced.manifest)]
            for path, text, mode in files:
                pending.append((atomic.stage(path, text.encode("utf-8"), mode=mode), path))
            if self.engine.cancel.is_set():
                raise BuildError(f"{job.recipe.path}: {job.recipe.image}: interrupted")
            self.engine.tag(produced.image_id, job.recipe.name, job.recipe.tag)
            atomic.rename_all(pending)
        finally:
            for temporary, _ in pending:
                temporary.unlink(missing_ok=True)
        if produced.sqsh_file is None and previous is not None and previous.sqsh is not None:
            # An enroot image of the image this build replaced: never left to be run.
            job.artifacts.sqsh_file.unlink(missing_ok=True)
        self.image_ids[job.name] = produced.image_id
        elapsed = produced.manifest.timings.total_seconds
        sif = produced.manifest.sif
        reuse = f" ({sif.reuse()})" if sif is not None and sif.cache else ""
        self.say(f"{job.recipe.image}: built {produced.image_id[7:19]} in {elapsed:.1f}s{reuse}")

    def produce(self, job: BuildJob, rendered: Rendered, status: Status) -> Produced:
        """Build the image and the Singularity image, logging to the job's build.log."""
        outputs = self.outputs(job)
        backend = self.sif_backend() if lists_sif(job.recipe.outputs) else None
        bench = Workbench(
            self.engine, self.options, self.network, backend, self.say, sqsh=outputs.sqsh
        )
        plan = Plan(self.strategy(job), self.base_id(job), status.fingerprint)
        self.say(f"{job.recipe.image}: building ({status.reason})")
        job.artifacts.directory.mkdir(parents=True, exist_ok=True)
        with job.artifacts.log.open("w", encoding="utf-8") as log_file:
            log = JobLog(job.name, log_file, self.step, self.stream)
            log(f"# imgforge {__version__}: building {job.recipe.image} from {job.recipe.path}")
            return produce(bench, job, rendered, plan=plan, log=log)

    def refresh_inputs(self, job: BuildJob) -> None:
        """Record current file stats of an up-to-date recipe (e.g. after a touch), so the
        next no-op run takes the fast path again."""
        recorded = record.read(job.artifacts.manifest)
        inputs = job_inputs(job, self.options)
        if recorded is not None and recorded.inputs != inputs:
            record.write(job.artifacts.manifest, replace(recorded, inputs=inputs))
