"""A task: one sub-topology on one partition, with its stores, punctuators and commit hooks.

Life cycle (as in Kafka Streams): created -> restoring (``restore``) -> running (``process``,
``punctuate_wall_clock``) -> closed. The worker (or the test driver) feeds a task batches of
consumed records ``(key, value, timestamp, headers, partition, offset)`` as bytes; everything a
task produces, changelog records included, goes through its ``RecordCollector``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from core import fusion
from core.errors import ProcessingError
from core.plan import StoreSpec
from core.stores import ReadOnlyStoreView, open_cache, view_for

if TYPE_CHECKING:
    from core.collector import RecordCollector
    from core.compiler import SubTopology, Topology
    from state.api import KeyValueStore

ConsumedRecord = tuple[bytes | None, bytes | None, int, Any, int, int]
"""``(key, value, timestamp_ms, headers, partition, offset)`` as fed to a task."""


@dataclass
class _Schedule:
    interval: int
    kind: str
    fn: Callable[[int], None]
    emit: Callable[[], None]
    step: str
    next: int | None
    cancelled: bool = False


class Task:
    """Runs the fused closures of one sub-topology for one partition; see the module docstring."""

    def __init__(
        self,
        topology: Topology,
        sub: SubTopology,
        partition: int,
        *,
        stores: Callable[[StoreSpec, str], KeyValueStore],
        collector: RecordCollector,
        global_stores: Mapping[str, Any],
        wall_clock_ms: int = 0,
    ) -> None:
        self.topology = topology
        self.sub = sub
        self.partition = partition
        self.id = f"{sub.id}_{partition}"
        self.collector = collector
        self.state = "created"
        self.stream_time = -1
        self.wall_clock = wall_clock_ms
        self.consumed: dict[tuple[str, int], int] = {}
        self._schedules: list[_Schedule] = []
        self._closers: list[Callable[[], Any]] = []
        self._global_views = dict(global_stores)
        self.specs = {name: topology.stores[name] for name in sub.stores}
        self.stores: dict[str, KeyValueStore] = {}
        self.caches: dict[str, Any] = {}
        """Per store: a ``WriteBackCache``, or a window / session store (``state.timed_cache``)."""
        for name, spec in self.specs.items():
            store = stores(spec, self.id)
            self.stores[name] = store
            # a WriteBackCache, or a window / session store with the same commit protocol
            self.caches[name] = open_cache(store, spec)
        self.dropped_late_records = 0
        """Records dropped because their window had closed (beyond grace), for metrics."""
        self._flushed: list[str] = []
        self.event_times: dict[str, list[int]] = {}
        """Per source topic with a timestamp extractor: the newest extracted time."""
        self.generated: dict[str, str] = {}
        """Source of each fused loop, by its first step (for debugging and tests)."""
        self._sources = fusion.build(self)

    # -- running ------------------------------------------------------------------------------

    def restore(self, store: str, records: Iterable[tuple[int, bytes, bytes | None]]) -> int:
        """Replay changelog records ``(offset, key, value|None)`` into ``store``."""
        self.state = "restoring"
        from state.changelog import restore

        self.caches[store].discard()
        return restore(self.stores[store], records)

    def restore_start(self, store: str) -> int:
        """The changelog offset to resume restoring ``store`` from (after its checkpoint)."""
        from state.changelog import restore_start

        return restore_start(self.stores[store])

    @property
    def needs_commit(self) -> bool:
        """True when a cache holds so many changed keys that the runtime should commit early."""
        return any(cache.needs_flush for cache in self.caches.values())

    def process(self, topic: str, batch: list[ConsumedRecord]) -> None:
        """Run a batch of records consumed from ``topic`` through the task."""
        if not batch:
            return
        self.state = "running"
        push = self._sources.get(topic)
        if push is None:
            raise ProcessingError(
                f"task {self.id} does not read topic {topic!r} (it reads "
                f"{', '.join(self._sources)})",
                task=self.id,
            )
        push(batch)
        last = batch[-1]
        self.consumed[(topic, last[4])] = last[5] + 1
        extracted = self.event_times.get(topic)
        if extracted is not None:  # a timestamp extractor: stream time is event time
            ts = extracted[0]
            if ts > self.stream_time:
                self.stream_time = ts
                if self._schedules:
                    self._punctuate("stream_time", ts)
        elif self._schedules:
            ts = max(r[2] for r in batch)
            if ts > self.stream_time:
                self.stream_time = ts
                self._punctuate("stream_time", ts)
        elif last[2] > self.stream_time:
            self.stream_time = last[2]

    def process_many(self, batches: Sequence[tuple[str, list[ConsumedRecord]]]) -> None:
        """Run batches of several source topics, lowest record timestamp first.

        Like Kafka Streams' ``PartitionGroup``: the inputs of a join advance together in
        event time (see :mod:`core.partition_group`, which also offers ``max.task.idle.ms``).
        """
        from core.partition_group import merge_by_timestamp

        for topic, run in merge_by_timestamp(batches):
            self.process(topic, run)

    def punctuate_wall_clock(self, now_ms: int) -> None:
        """Advance the task's wall clock and run wall-clock punctuators that are due."""
        self.wall_clock = now_ms
        self._punctuate("wall_clock", now_ms)

    def _punctuate(self, kind: str, now: int) -> None:
        for s in list(self._schedules):
            if s.cancelled or s.kind != kind:
                continue
            if s.next is None:
                s.next = now
            if now >= s.next:
                try:
                    s.fn(now)
                except Exception as exc:
                    raise ProcessingError(
                        f"step {s.step!r}: punctuator {getattr(s.fn, '__qualname__', s.fn)} "
                        f"failed in task {self.id}: {type(exc).__name__}: {exc}",
                        step=s.step,
                        task=self.id,
                    ) from exc
                s.emit()
                s.next += ((now - s.next) // s.interval + 1) * s.interval

    def schedule(
        self,
        interval_ms: int,
        kind: str,
        fn: Callable[[int], None],
        emit: Callable[[], None],
        step: str,
    ) -> Callable[[], None]:
        first = self.wall_clock + interval_ms if kind == "wall_clock" else None
        sched = _Schedule(interval_ms, kind, fn, emit, step, first)
        self._schedules.append(sched)

        def cancel() -> None:
            sched.cancelled = True
            if sched in self._schedules:
                self._schedules.remove(sched)

        return cancel

    def store_view(self, name: str) -> Any:
        if name in self.caches:
            return view_for(self.caches[name], self.specs[name])
        if name in self._global_views:
            return self._global_views[name]
        raise ProcessingError(f"task {self.id} has no store {name!r}", task=self.id)

    def on_close(self, fn: Callable[[], Any] | None) -> None:
        if callable(fn):
            self._closers.append(fn)

    # -- commit hooks (see commit()) ------------------------------------------------------------

    def flush_state(self) -> None:
        """Encode each changed key once and send it to the store's changelog topic."""
        flushed = []
        ts = self.stream_time if self.stream_time >= 0 else self.wall_clock
        for name, cache in self.caches.items():
            changes = cache.flush()
            if changes:
                self.collector.send(
                    self.specs[name].changelog,
                    [(k, v, ts, None) for k, v in changes],
                    self.partition,
                )
                flushed.append(name)
        self._flushed = flushed

    def persist_state(self, offsets: Mapping[tuple[str, int], int]) -> None:
        """Write flushed changes to each store, atomically with its changelog offset."""
        for name in self._flushed:
            offset = offsets.get((self.specs[name].changelog, self.partition))
            self.caches[name].commit(None, offset)
        self._flushed = []

    def close(self) -> None:
        for fn in self._closers:
            fn()
        self._closers = []
        for store in self.stores.values():
            store.close()
        self.state = "closed"


class GlobalTask:
    """Keeps global stores: every partition of a global table's topic, written as it arrives.

    The source topic is the changelog, so its offset is stored with the data."""

    def __init__(
        self,
        topology: Topology,
        sub: SubTopology,
        stores: Callable[[StoreSpec, str], KeyValueStore],
    ) -> None:
        self.id = f"global_{sub.id}"
        self.stores: dict[str, KeyValueStore] = {}
        self.views: dict[str, ReadOnlyStoreView] = {}
        self._by_topic: dict[str, str] = {}
        for node in sub.nodes:
            if node.role == "global_table":
                spec = topology.stores[node.stores[0]]
                store = stores(spec, self.id)
                self.stores[spec.name] = store
                self.views[spec.name] = ReadOnlyStoreView(store, spec)
                assert node.node.topic is not None
                self._by_topic[node.node.topic.name] = spec.name

    @property
    def topics(self) -> list[str]:
        return list(self._by_topic)

    def process(self, topic: str, batch: list[ConsumedRecord]) -> None:
        store = self.stores[self._by_topic[topic]]
        items = [(r[0], r[1]) for r in batch if r[0] is not None]
        store.write_batch(items, changelog_offset=batch[-1][5] if batch else None)

    def close(self) -> None:
        for store in self.stores.values():
            store.close()


def commit(
    tasks: Iterable[Task],
    collector: RecordCollector,
    commit_source_offsets: Callable[[dict[tuple[str, int], int]], None] | None = None,
) -> None:
    """The commit protocol, in order. Output records were sent while processing."""
    tasks = list(tasks)
    # 1. flush caches: one changelog record per changed key, sent to the collector
    for task in tasks:
        task.flush_state()
    # 2./3. produce changelog + output records and flush the producer
    collector.flush()
    offsets = collector.offsets()
    # 4. commit source offsets (inside the transaction under exactly-once)
    if commit_source_offsets is not None:
        consumed: dict[tuple[str, int], int] = {}
        for task in tasks:
            consumed.update(task.consumed)
        commit_source_offsets(consumed)
    # 5. persist store data together with the changelog offsets
    for task in tasks:
        task.persist_state(offsets)
