"""Bytes written at their place in a file on a thread of their own, so that writing the
image overlaps reading and packing what comes next."""

from __future__ import annotations

import os
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import IO


class Writes:
    """Writes to ``out`` in the order given, with at most ``most`` bytes waiting."""

    def __init__(self, out: IO[bytes], most: int) -> None:
        out.flush()
        self.fd, self.most = out.fileno(), most
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="squashfs-write")
        self.written: deque[tuple[Future[None], int]] = deque()
        self.waiting = 0  # bytes handed over and not yet written

    def write(self, data: bytes, at: int) -> None:
        """Write ``data`` at offset ``at`` (raising what an earlier write raised)."""
        self.written.append((self.pool.submit(_write_at, self.fd, data, at), len(data)))
        self.waiting += len(data)
        self._wait(self.most)

    def finish(self) -> None:
        """Wait for every write."""
        self._wait(0)
        self.pool.shutdown()

    def close(self) -> None:
        self.pool.shutdown(cancel_futures=True)

    def _wait(self, most: int) -> None:
        while self.written and (self.written[0][0].done() or self.waiting > most):
            future, size = self.written.popleft()
            future.result()
            self.waiting -= size


def _write_at(fd: int, data: bytes, offset: int) -> None:
    """All of ``data`` at ``offset`` of ``fd`` (os.pwrite may write less)."""
    view = memoryview(data)
    while view:
        done = os.pwrite(fd, view, offset)
        view, offset = view[done:], offset + done
