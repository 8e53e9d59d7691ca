"""An image in a container engine as the source a Singularity-image backend reads."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from imgforge.engine.local import members
from imgforge.engine.protocol import Engine
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
            now = int(time.time())
            yield None if found is None else members(found, now=now, workdir=self.config.workdir)

    def size(self) -> int | None:
        found = self.engine.inspect(self.image_id) or {}
        return int(found.get("Size") or 0) or None

    def docker_archive(self, path: Path) -> None:
        self.engine.save(self.image_id, path)
