"""Follows the group's assignments: creates, restores, runs, suspends and closes tasks.

Life cycle of an active task here (as in Kafka Streams): *created* (stores opened, source
partitions paused) -> *restoring* (changelog tail applied in slices by the restorer) ->
*running* (partitions resumed) -> *suspended* (committed when the group revokes partitions; kept
open if the next assignment gives the task back, so no restore is needed) -> *closed*
(checkpoint written, stores closed). Standby tasks are opened and followed the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from core.assignor import MemberState, TaskAssignment
from core.compiler import Topology
from core.metrics import WorkerMetrics
from core.plan import StoreSpec
from core.task import Task
from core.worker.restore import Restorer
from core.worker.standby import StandbyTask
from state.api import KeyValueStore
from state.checkpoint import local_offsets, task_dir, task_dirs, write_checkpoint
from state.rocksdb import RocksDBStore

log = logging.getLogger("flows.worker")


class TaskCollector:
    """A task's view of the shared collector that counts records per topic (per batch)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.counts: dict[str, int] = {}

    def send(self, topic: str, records: Any, partition: int | None = None) -> None:
        self.counts[topic] = self.counts.get(topic, 0) + len(records)
        self.inner.send(topic, records, partition)

    def flush(self) -> None:  # pragma: no cover - the worker flushes the shared collector
        self.inner.flush()

    def offsets(self) -> Any:
        return self.inner.offsets()


class TaskManager:
    """Active and standby tasks of one worker; see the module docstring."""

    def __init__(
        self,
        topology: Topology,
        state_dir: Path,
        collector: Any,
        consumer: AIOKafkaConsumer,
        restorer: Restorer,
        metrics: WorkerMetrics,
        global_stores: dict[str, Any] | None = None,
        wall_clock: Callable[[], int] | None = None,
    ) -> None:
        self.topology = topology
        self.app_id = topology.app_id
        self.state_dir = Path(state_dir)
        self.collector = collector
        self.consumer = consumer
        self.restorer = restorer
        self.metrics = metrics
        self.global_stores = global_stores or {}
        self._now = wall_clock or (lambda: 0)
        self.active: dict[str, Task] = {}
        self.restoring: dict[str, set[str]] = {}
        """Task id -> stores still restoring (its partitions stay paused)."""
        self.standby: dict[str, StandbyTask] = {}
        self.task_tps: dict[str, list[TopicPartition]] = {}

    # -- stores --------------------------------------------------------------------------------

    def open_store(self, spec: StoreSpec, task_id: str) -> KeyValueStore:
        path = task_dir(self.state_dir, self.app_id, task_id) / spec.name
        return RocksDBStore(spec.name, path)

    def member_state(self) -> MemberState:
        """Previous tasks and local offsets, sent to the group leader on every join."""
        local: dict[str, int] = {}
        for task_id, directory in task_dirs(self.state_dir, self.app_id).items():
            open_stores: dict[str, Any] | None = None
            if task_id in self.active:
                open_stores = self.active[task_id].stores
            elif task_id in self.standby:
                open_stores = self.standby[task_id].stores
            try:
                offsets = local_offsets(directory, open_stores)
            except Exception:  # unreadable state counts as none
                continue
            if offsets:
                local[task_id] = sum(v + 1 for v in offsets.values())
        return MemberState(tuple(self.active), tuple(self.standby), local)

    # -- assignment changes --------------------------------------------------------------------

    @property
    def running(self) -> list[Task]:
        return [t for tid, t in self.active.items() if tid not in self.restoring]

    def tps_of(self, task_id: str) -> list[TopicPartition]:
        sub_id, _, part = task_id.partition("_")
        sub = self.topology.subtopology(int(sub_id))
        return [TopicPartition(topic, int(part)) for topic in sub.source_topics]

    async def apply(self, assignment: TaskAssignment, assigned: Iterable[TopicPartition]) -> None:
        """Move from the current tasks to ``assignment`` (called after every rebalance)."""
        assigned = set(assigned)
        new_active = set(assignment.active)
        new_standby = set(assignment.standby) - new_active
        for task_id in [t for t in self.active if t not in new_active]:
            self.close_active(task_id)
        for task_id in [t for t in self.standby if t not in new_standby]:
            self.close_standby(task_id)
        for task_id in sorted(new_active - set(self.active)):
            await self._create_active(task_id)
        for task_id in sorted(new_standby - set(self.standby)):
            self._create_standby(task_id)
        # the consumer resets pause state on reassignment: pause what still restores
        paused = [tp for t in self.restoring for tp in self.tps_of(t) if tp in assigned]
        if paused:
            self.consumer.pause(*paused)
        self.metrics.active_tasks.set(len(self.active))
        self.metrics.standby_tasks.set(len(self.standby))
        log.info(
            "tasks: active %s (restoring %s), standby %s",
            sorted(self.active),
            sorted(self.restoring),
            sorted(self.standby),
        )

    async def _create_active(self, task_id: str) -> None:
        sub_id, _, part = task_id.partition("_")
        partition = int(part)
        task = self.topology.create_task(
            int(sub_id),
            partition,
            stores=self.open_store,
            collector=TaskCollector(self.collector),
            global_stores=self.global_stores,
            wall_clock_ms=self._now(),
        )
        self.active[task_id] = task
        pending: set[str] = set()
        for name, spec in task.specs.items():
            tp = TopicPartition(spec.changelog, partition)

            def done(task_id: str = task_id, name: str = name) -> None:
                self._restored(task_id, name)

            if await self.restorer.add_restore(tp, task, name, done):
                pending.add(name)
        if pending:
            self.restoring[task_id] = pending
        else:
            task.state = "running"

    def _restored(self, task_id: str, store: str) -> None:
        pending = self.restoring.get(task_id)
        if pending is None:
            return
        pending.discard(store)
        if not pending:
            del self.restoring[task_id]
            task = self.active.get(task_id)
            if task is not None:
                task.state = "running"
            tps = [tp for tp in self.tps_of(task_id) if tp in self.consumer.assignment()]
            if tps:
                self.consumer.resume(*tps)
            log.info("task %s restored; processing resumes", task_id)

    def _create_standby(self, task_id: str) -> None:
        sub_id, _, part = task_id.partition("_")
        sub = self.topology.subtopology(int(sub_id))
        specs = {name: self.topology.stores[name] for name in sub.stores}
        if not specs:
            return  # a stateless task needs no standby
        directory = task_dir(self.state_dir, self.app_id, task_id)
        standby = StandbyTask(task_id, specs, self.open_store, directory)
        self.standby[task_id] = standby
        for name, spec in specs.items():
            tp = TopicPartition(spec.changelog, int(part))
            self.restorer.add_standby(tp, task_id, name, standby.stores[name])

    def close_active(self, task_id: str) -> None:
        """Close a task (it was committed when its partitions were revoked)."""
        task = self.active.pop(task_id)
        self.restoring.pop(task_id, None)
        _, _, part = task_id.partition("_")
        self.restorer.remove([TopicPartition(s.changelog, int(part)) for s in task.specs.values()])
        offsets = {}
        for name, store in task.stores.items():
            offset = store.changelog_offset()
            if offset is not None:
                offsets[name] = offset
        task.close()
        if task.specs:
            write_checkpoint(task_dir(self.state_dir, self.app_id, task_id), offsets)
        self.metrics.forget_task(task_id, list(task.specs))

    def close_standby(self, task_id: str) -> None:
        standby = self.standby.pop(task_id)
        _, _, part = task_id.partition("_")
        self.restorer.remove(
            [TopicPartition(s.changelog, int(part)) for s in standby.specs.values()]
        )
        standby.close()

    def close_all(self) -> None:
        for task_id in list(self.active):
            self.close_active(task_id)
        for task_id in list(self.standby):
            self.close_standby(task_id)
        self.metrics.active_tasks.set(0)
        self.metrics.standby_tasks.set(0)
