"""Reading changelogs: restoring active tasks and keeping standby tasks warm.

One consumer with no group (the *restore consumer*, as in Kafka Streams) is assigned the
changelog partitions of every restoring store and every standby store. Each loop turn of the
worker calls :meth:`Restorer.step`, which applies at most one slice of records, so a task that
restores millions of records never holds back the tasks that already run.

A restoring store starts right after the offset stored with its local data (its checkpoint)
and is done when it reaches the changelog end offset taken when the task was created. A standby
store has no end: it follows the changelog for as long as this worker keeps the standby.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from core.metrics import WorkerMetrics
from state.changelog import restore as apply_changelog

log = logging.getLogger("flows.worker")


@dataclass
class Target:
    """One store reading one changelog partition."""

    task: str
    store_name: str
    store: Any
    """A ``KeyValueStore`` (standby) or the restoring ``Task`` (active)."""
    next_offset: int
    end: int | None
    """Restore stops at ``end``; ``None`` follows the changelog forever (standby)."""
    on_done: Callable[[], None] | None = None
    start: int = 0
    restored: int = 0
    started_at: float = field(default_factory=time.monotonic)
    progress_id: Any = None

    @property
    def standby(self) -> bool:
        return self.end is None


class Restorer:
    """Feeds changelog records into restoring and standby stores, a slice per call."""

    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        metrics: WorkerMetrics,
        *,
        slice_records: int = 10_000,
        show_progress: bool | None = None,
    ) -> None:
        self.consumer = consumer
        self.metrics = metrics
        self.slice_records = slice_records
        self.targets: dict[TopicPartition, Target] = {}
        self._dirty = False
        self._progress: Any = None
        self._show_progress = sys.stdout.isatty() if show_progress is None else show_progress

    # -- registration --------------------------------------------------------------------------

    async def add_restore(
        self,
        tp: TopicPartition,
        task: Any,
        store_name: str,
        on_done: Callable[[], None],
    ) -> bool:
        """Start restoring ``store_name`` of ``task``; False if it is already up to date."""
        start = task.restore_start(store_name)
        end = (await self.consumer.end_offsets([tp]))[tp]
        if start >= end:
            log.info(
                "task %s store %s restored 0 records (up to date with changelog %s-%d at %d)",
                task.id,
                store_name,
                tp.topic,
                tp.partition,
                end,
            )
            return False
        self.targets[tp] = Target(task.id, store_name, task, start, end, on_done, start=start)
        self.metrics.restore_remaining.labels(task.id, store_name).set(end - start)
        self._dirty = True
        log.info(
            "task %s store %s: restoring %d changelog records from %s-%d (offsets %d..%d)",
            task.id,
            store_name,
            end - start,
            tp.topic,
            tp.partition,
            start,
            end - 1,
        )
        if self._show_progress:
            self._progress_add(tp)
        return True

    def add_standby(self, tp: TopicPartition, task_id: str, store_name: str, store: Any) -> None:
        """Follow ``tp`` into ``store`` (a standby replica) from after its local offset."""
        offset = store.changelog_offset()
        start = 0 if offset is None else offset + 1
        self.targets[tp] = Target(task_id, store_name, store, start, None, start=start)
        self._dirty = True

    def remove(self, tps: list[TopicPartition]) -> None:
        for tp in tps:
            target = self.targets.pop(tp, None)
            if target is not None:
                self._dirty = True
                self._progress_remove(target)

    @property
    def restoring(self) -> bool:
        return any(not t.standby for t in self.targets.values())

    # -- work ----------------------------------------------------------------------------------

    async def _reassign(self) -> None:
        self._dirty = False
        tps = list(self.targets)
        self.consumer.assign(tps)
        for tp, target in self.targets.items():
            self.consumer.seek(tp, target.next_offset)

    async def step(self, timeout_ms: int = 0) -> int:
        """Apply one slice of changelog records; returns how many were applied."""
        if not self.targets:
            if self._dirty:
                self._dirty = False
                self.consumer.assign([])
            return 0
        if self._dirty:
            await self._reassign()
        data = await self.consumer.getmany(timeout_ms=timeout_ms, max_records=self.slice_records)
        applied = 0
        for tp, records in data.items():
            target = self.targets.get(tp)
            if target is None or not records:
                continue
            changes = [(r.offset, r.key, r.value) for r in records if r.key is not None]
            if target.standby:
                apply_changelog(target.store, changes)
            else:
                target.store.restore(target.store_name, changes)
                self.metrics.restored.labels(target.task, target.store_name).inc(len(changes))
            target.restored += len(changes)
            target.next_offset = records[-1].offset + 1
            applied += len(changes)
        for tp, target in list(self.targets.items()):
            if target.standby:
                continue
            assert target.end is not None
            if target.next_offset < target.end and tp not in data:
                # Compaction gaps and transaction markers: ask where the consumer really is.
                target.next_offset = max(target.next_offset, await self.consumer.position(tp))
            remaining = max(0, target.end - target.next_offset)
            self.metrics.restore_remaining.labels(target.task, target.store_name).set(remaining)
            self._progress_update(target)
            if remaining == 0:
                self._finish(tp, target)
        return applied

    def _finish(self, tp: TopicPartition, target: Target) -> None:
        del self.targets[tp]
        self._dirty = True
        self._progress_remove(target)
        log.info(
            "task %s store %s restored %d records from %s-%d (offsets %d..%d) in %.2fs",
            target.task,
            target.store_name,
            target.restored,
            tp.topic,
            tp.partition,
            target.start,
            (target.end or 0) - 1,
            time.monotonic() - target.started_at,
        )
        if target.on_done is not None:
            target.on_done()

    # -- progress bar (terminals only) ---------------------------------------------------------

    def _progress_add(self, tp: TopicPartition) -> None:
        from rich.progress import Progress

        target = self.targets[tp]
        if self._progress is None:
            self._progress = Progress(transient=True)
            self._progress.start()
        assert target.end is not None
        target.progress_id = self._progress.add_task(
            f"restoring {target.task}/{target.store_name}", total=target.end - target.start
        )

    def _progress_update(self, target: Target) -> None:
        if self._progress is not None and target.progress_id is not None:
            self._progress.update(target.progress_id, completed=target.next_offset - target.start)

    def _progress_remove(self, target: Target) -> None:
        if self._progress is not None and target.progress_id is not None:
            self._progress.remove_task(target.progress_id)
            target.progress_id = None
            if not self._progress.tasks:
                self._progress.stop()
                self._progress = None

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
