"""An image in a container engine as the source a Singularity-image backend reads."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from imgforge.engine.local import members
from imgforge.engine.protocol import Engine
from imgforge.errors import BuildError
from imgforge.recipes.image import ImageConfig
from imgforge.squashfs.members import Member


@dataclass(frozen=True)
class EngineImage:
    """Image ``image_id`` of ``engine``, with its config as built (an ``ImageSource``)."""

    engine: Engine
    image_id: str
    config: ImageConfig

    def filesystem(self) -> AbstractContextManager[IO[bytes]]:
        return self.engine.exported(self.image_id)

    @contextlib.contextmanager
    def layers(self) -> Iterator[Iterator[Member] | None]:
        with self.engine.layers(self.image_id) as found:
            if found is None:
                yield None
                return
            read = members(found, now=int(time.time()), workdir=self.config.workdir)
            yield _stopping(read, self.engine.cancel)

    def size(self) -> int | None:
        found = self.engine.inspect(self.image_id) or {}
        return int(found.get("Size") or 0) or None

    def docker_archive(self, path: Path) -> None:
        self.engine.save(self.image_id, path)


def _stopping(entries: Iterator[Member], cancel: threading.Event) -> Iterator[Member]:
    """``entries`` until ``cancel`` is set (Ctrl-C, SIGTERM), as the export stream stops."""
    for found in entries:
        if cancel.is_set():
            raise BuildError("interrupted")
        yield found
