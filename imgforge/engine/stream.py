"""Reading the engine's streams: build output, push progress, and byte chunks as a file."""

from __future__ import annotations

import io
import re
import threading
from collections.abc import Iterable, Iterator
from typing import Any

from imgforge.errors import BuildError
from imgforge.log import OUTPUT, STEP, Log

STEP_RE = re.compile(r"^Step (\d+/\d+) : (.*)$")


class ChunkReader(io.RawIOBase):
    """A readable binary stream over an iterator of byte chunks; stops when cancelled."""

    def __init__(self, chunks: Iterable[bytes], cancel: threading.Event | None = None) -> None:
        self._chunks = iter(chunks)
        self._cancel = cancel
        self._chunk = memoryview(b"")
        self._position = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._cancel is not None and self._cancel.is_set():
            raise BuildError("interrupted")
        while self._position >= len(self._chunk):
            try:
                self._chunk, self._position = memoryview(next(self._chunks)), 0
            except StopIteration:
                return 0
        size = min(len(buffer), len(self._chunk) - self._position)
        buffer[:size] = self._chunk[self._position : self._position + size]
        self._position += size
        return size


def follow_build(
    stream: Iterator[dict[str, Any]], *, log: Log, what: str, cancel: threading.Event
) -> str:
    """Pass build output to ``log`` line by line; return the image ID or raise."""
    step = ""
    image_id = ""
    pending = ""
    for chunk in stream:
        if cancel.is_set():
            raise BuildError(f"{what}: interrupted")
        if "stream" in chunk:
            pending += chunk["stream"]
            *lines, pending = pending.split("\n")
            for line in lines:
                match = STEP_RE.match(line)
                log(line, kind=STEP if match else OUTPUT)
                if match:
                    step = f"step {match.group(1)} ({match.group(2)})"
        if "error" in chunk:
            if pending:
                log(pending)
            message = chunk.get("errorDetail", {}).get("message") or chunk["error"]
            log(f"ERROR: {message}")
            where = f" at {step}" if step else ""
            raise BuildError(f"{what}: build failed{where}: {first_line(message)}")
        if "aux" in chunk and isinstance(chunk["aux"], dict) and "ID" in chunk["aux"]:
            image_id = chunk["aux"]["ID"]
    if pending:
        log(pending)
    if not image_id:
        raise BuildError(f"{what}: the engine reported no image ID")
    return image_id


def follow_push(
    stream: Iterable[dict[str, Any]], *, log: Log, what: str, cancel: threading.Event
) -> str:
    """Pass push progress to ``log``; return the registry's manifest digest or raise."""
    digest = ""
    for chunk in stream:
        if cancel.is_set():
            raise BuildError(f"{what}: interrupted")
        if "error" in chunk:
            raise BuildError(f"{what} failed: {chunk['error']}")
        if "status" in chunk and "progressDetail" not in chunk:
            log(f"push: {chunk.get('id', '')} {chunk['status']}".replace("  ", " "), kind=STEP)
        aux = chunk.get("aux")
        if isinstance(aux, dict) and "Digest" in aux:
            digest = str(aux["Digest"])
    if not digest:
        raise BuildError(f"{what}: the registry reported no digest")
    return digest


def container_lines(chunks: Iterable[bytes]) -> Iterator[str]:
    """A container's output chunks as text lines (undecodable bytes replaced)."""
    for chunk in chunks:
        yield from chunk.decode("utf-8", "replace").splitlines()


def first_line(value: object) -> str:
    text = str(value).strip()
    return text.splitlines()[0] if text else "unknown error"
