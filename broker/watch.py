"""Wake fetch long-polls when data arrives.

A Fetch request that finds fewer than ``min_bytes`` parks on :meth:`PartitionWatch.wait`
for the partitions it asked for; the log calls :meth:`PartitionWatch.notify` after every
append (through ``LogManager.on_append``). One asyncio future per waiting request is
registered under each of its partitions, so ``notify`` costs O(waiters on that partition)
and an idle partition costs nothing.

``notify`` is meant to run on the event loop thread (appends happen there); when it is
called from another thread it hands the wake-up to the loop with ``call_soon_threadsafe``.

>>> import asyncio
>>> async def demo() -> bool:
...     watch = PartitionWatch()
...     waiter = asyncio.ensure_future(watch.wait({("t", 0)}, 10.0))
...     await asyncio.sleep(0)
...     watch.notify("t", 0)
...     await waiter
...     return watch.waiting() == 0
>>> asyncio.run(demo())
True
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterable

__all__ = ["PartitionWatch"]

Key = tuple[str, int]


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class PartitionWatch:
    """Per-partition wait lists of futures; see the module docstring."""

    __slots__ = ("_loop", "_loop_thread", "_waiters")

    def __init__(self) -> None:
        self._waiters: dict[Key, set[asyncio.Future[None]]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None

    def notify(self, topic: str, partition: int) -> None:
        """Wake every request waiting on ``(topic, partition)``; cheap when none wait."""
        waiters = self._waiters.pop((topic, partition), None)
        if not waiters:
            return
        loop = self._loop
        if loop is not None and threading.get_ident() != self._loop_thread:
            for fut in waiters:
                loop.call_soon_threadsafe(_wake, fut)
            return
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)

    async def wait(self, keys: Iterable[Key], timeout_s: float) -> None:
        """Return when any of ``keys`` is notified or after ``timeout_s`` seconds.

        Cancelling the caller is safe: the waiter is removed from every list either way.
        """
        if timeout_s <= 0:
            return
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._loop = loop
            self._loop_thread = threading.get_ident()
        fut: asyncio.Future[None] = loop.create_future()
        keys = tuple(keys)
        waiters = self._waiters
        for key in keys:
            entry = waiters.get(key)
            if entry is None:
                waiters[key] = {fut}
            else:
                entry.add(fut)
        timer = loop.call_later(timeout_s, _wake, fut)
        try:
            await fut
        finally:
            timer.cancel()
            for key in keys:
                entry = waiters.get(key)
                if entry is not None:
                    entry.discard(fut)
                    if not entry:
                        del waiters[key]

    def waiting(self) -> int:
        """How many (request, partition) registrations are live (for tests and metrics)."""
        return sum(len(entry) for entry in self._waiters.values())
