"""Choosing the next records of a task that reads several topics: lowest timestamp first.

A task of a join or a merge reads one partition of each of its source topics. As in Kafka
Streams' ``PartitionGroup``, it processes the buffered record with the lowest timestamp next,
so both sides of a join advance together in event time. Records are handed to the fused loops
in *runs*: the longest prefix of one topic's buffer whose timestamps do not pass the heads of
the other topics, so a batch is still processed in large pieces when the topics do not overlap.

When one input has nothing buffered, :class:`PartitionGroup` waits up to ``max_idle_ms``
(Kafka's ``max.task.idle.ms``) for it before processing the others alone; a negative value
never waits.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

Run = tuple[str, list[Any]]


def merge_by_timestamp(
    batches: Sequence[tuple[str, Sequence[Any]]], *, until_one_is_empty: bool = False
) -> list[Run]:
    """Interleave per-topic batches into runs, lowest head timestamp first (index 2 of a record).

    With ``until_one_is_empty`` it stops as soon as one topic's batch is used up (the rest stays
    in the lists given, which are consumed from the front).

    >>> merge_by_timestamp([("a", [(0, 0, 1), (0, 0, 5)]), ("b", [(0, 0, 3)])])
    [('a', [(0, 0, 1)]), ('b', [(0, 0, 3)]), ('a', [(0, 0, 5)])]
    """
    queues = [(topic, batch, [0]) for topic, batch in batches if batch]
    every = list(queues)
    runs: list[Run] = []
    while queues:
        if len(queues) == 1:
            if until_one_is_empty and len(batches) > 1:
                break
            topic, batch, pos = queues[0]
            runs.append((topic, list(batch[pos[0] :])))
            pos[0] = len(batch)
            break
        best = min(range(len(queues)), key=lambda i: queues[i][1][queues[i][2][0]][2])
        topic, batch, pos = queues[best]
        limit = min(q[1][q[2][0]][2] for i, q in enumerate(queues) if i != best)
        start = pos[0]
        end = start + 1
        while end < len(batch) and batch[end][2] <= limit:
            end += 1
        runs.append((topic, list(batch[start:end])))
        pos[0] = end
        if end >= len(batch):
            del queues[best]
            if until_one_is_empty:
                break
    if until_one_is_empty:
        for _topic, batch, pos in every:
            if isinstance(batch, list):
                del batch[: pos[0]]
    return runs


class PartitionGroup:
    """Buffers records per source topic of one task and releases them in timestamp order.

    >>> g = PartitionGroup(["a", "b"], max_idle_ms=100)
    >>> g.add("a", [(0, 0, 1), (0, 0, 7)])
    >>> g.drain(now_ms=0)        # b has nothing yet: wait for it
    []
    >>> g.add("b", [(0, 0, 5)])
    >>> g.drain(now_ms=10)       # up to the point where b is used up again
    [('a', [(0, 0, 1)]), ('b', [(0, 0, 5)])]
    >>> g.drain(now_ms=200)      # b idled longer than max_idle_ms: go on without it
    [('a', [(0, 0, 7)])]
    """

    def __init__(self, topics: Iterable[str], *, max_idle_ms: int = 0) -> None:
        self.max_idle_ms = max_idle_ms
        self._buffers: dict[str, list[Any]] = {t: [] for t in topics}
        self._empty_since: dict[str, int | None] = dict.fromkeys(self._buffers)

    def add(self, topic: str, records: Sequence[Any]) -> None:
        self._buffers[topic].extend(records)
        self._empty_since[topic] = None

    def buffered(self) -> int:
        return sum(len(b) for b in self._buffers.values())

    def drain(self, now_ms: int) -> list[Run]:
        """Runs ready to process now; waits for empty inputs unless they idled too long."""
        for t, b in self._buffers.items():
            if not b and self._empty_since[t] is None:
                self._empty_since[t] = now_ms
        if not any(self._buffers.values()):
            return []
        empty = [t for t, b in self._buffers.items() if not b]
        if not empty:
            runs = merge_by_timestamp(list(self._buffers.items()), until_one_is_empty=True)
            for t, b in self._buffers.items():
                if not b:
                    self._empty_since[t] = now_ms
            return runs
        since = self._empty_since
        idle_enough = self.max_idle_ms < 0 or all(
            now_ms - (now_ms if since[t] is None else since[t]) >= self.max_idle_ms  # type: ignore[operator]
            for t in empty
        )
        if not idle_enough:
            return []
        runs = merge_by_timestamp(list(self._buffers.items()))
        for t in self._buffers:
            self._buffers[t] = []
        return runs
