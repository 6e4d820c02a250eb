"""Choosing the next records of a task that reads several topics: lowest timestamp first.

A task of a join or a merge reads one partition of each of its source topics. As in Kafka
Streams' ``PartitionGroup``, it processes the buffered record with the lowest timestamp next,
so both sides of a join advance together in event time. Records are handed to the fused loops
in *runs*: the longest prefix of one topic's buffer whose timestamps do not pass the heads of
the other topics, so a batch is still processed in large pieces when the topics do not overlap.

When one input has nothing buffered, :class:`PartitionGroup` holds the others back, as Kafka
Streams does since KIP-695: while that input is known to have unread records (its consumer
position is behind the end of the partition) or its lag is not known yet, it always waits, so a
table is loaded before the stream records that should join it; once the input is caught up it
waits ``max_idle_ms`` more (Kafka's ``max.task.idle.ms``, default 0) for new records. A
negative value never waits.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
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
    >>> g.drain(now_ms=200, lag_of={"b": 3}.get)  # b has unread records: wait, however long
    []
    >>> g.drain(now_ms=300, lag_of={"b": 0}.get)  # caught up, and idle for max_idle_ms
    []
    >>> g.drain(now_ms=400, lag_of={"b": 0}.get)
    [('a', [(0, 0, 7)])]

    ``lag_of`` tells how many records of an empty input are known to be unread (``None``:
    not known yet, which also waits); without it every empty input counts as caught up.
    """

    def __init__(self, topics: Iterable[str], *, max_idle_ms: int = 0) -> None:
        self.max_idle_ms = max_idle_ms
        self._buffers: dict[str, list[Any]] = {t: [] for t in topics}
        self._idle_since: dict[str, int | None] = dict.fromkeys(self._buffers)

    @property
    def topics(self) -> list[str]:
        return list(self._buffers)

    def add(self, topic: str, records: Sequence[Any]) -> None:
        self._buffers[topic].extend(records)
        self._idle_since[topic] = None

    def buffered(self, topic: str | None = None) -> int:
        """Records held, of ``topic`` or of every input."""
        if topic is not None:
            return len(self._buffers[topic])
        return sum(len(b) for b in self._buffers.values())

    def clear(self) -> None:
        """Forget every buffered record (they are fetched again from the committed offsets)."""
        for t in self._buffers:
            self._buffers[t] = []
            self._idle_since[t] = None

    def drain(self, now_ms: int, lag_of: Callable[[str], int | None] | None = None) -> list[Run]:
        """Runs ready to process now; waits for empty inputs that lag or idled too briefly."""
        if not any(self._buffers.values()):
            return []
        empty = [t for t, b in self._buffers.items() if not b]
        if not empty:
            return merge_by_timestamp(list(self._buffers.items()), until_one_is_empty=True)
        if self.max_idle_ms >= 0 and not self._ready(empty, now_ms, lag_of):
            return []
        runs = merge_by_timestamp(list(self._buffers.items()))
        for t in self._buffers:
            self._buffers[t] = []
        return runs

    def _ready(
        self, empty: list[str], now_ms: int, lag_of: Callable[[str], int | None] | None
    ) -> bool:
        ready = True
        for t in empty:
            lag = 0 if lag_of is None else lag_of(t)
            if lag is None or lag > 0:
                self._idle_since[t] = None  # records are on their way: always wait for them
                ready = False
                continue
            since = self._idle_since[t]
            if since is None:
                since = self._idle_since[t] = now_ms
            if now_ms - since < self.max_idle_ms:
                ready = False
        return ready
