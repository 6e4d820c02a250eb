"""Global tables: every worker reads every partition of a global table's topic.

The topic is the table's changelog. At start the worker reads it to the end before it joins the
group (so lookups see the whole table from the first record on), then keeps applying new
records a slice per loop turn. The topic is re-read from the beginning at every start: puts are
idempotent, and one stored offset per store could not describe several partitions.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from core.compiler import Topology
from core.task import GlobalTask
from core.worker.config import WorkerConfig
from state.rocksdb import RocksDBStore


class GlobalTables:
    """The global tasks of one worker and the consumer that feeds them."""

    def __init__(
        self,
        topology: Topology,
        config: WorkerConfig,
        partitions: Callable[[str], int],
        client_id: str,
    ) -> None:
        self.topology = topology
        self.config = config
        self._partitions = partitions
        self._client_id = client_id
        self.tasks: list[GlobalTask] = []
        self._by_tp: dict[TopicPartition, GlobalTask] = {}
        self.consumer: AIOKafkaConsumer | None = None

    def _open(self, spec: Any, task_id: str) -> Any:
        path = Path(self.config.state_dir) / self.topology.app_id / task_id / spec.name
        return RocksDBStore(spec.name, path)

    async def start(self) -> dict[str, Any]:
        """Open the global stores, read their topics to the end; returns the store views."""
        views: dict[str, Any] = {}
        subs = [s for s in self.topology.subtopologies if s.is_global]
        if not subs:
            return views
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=self.config.bootstrap,
            client_id=self._client_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed" if self.config.exactly_once else "read_uncommitted",
        )
        await self.consumer.start()
        for sub in subs:
            task = GlobalTask(self.topology, sub, self._open)
            self.tasks.append(task)
            views.update(task.views)
            for topic in task.topics:
                for p in range(self._partitions(topic)):
                    self._by_tp[TopicPartition(topic, p)] = task
        tps = list(self._by_tp)
        self.consumer.assign(tps)
        ends = await self.consumer.end_offsets(tps)
        for tp in tps:
            self.consumer.seek(tp, 0)
        while True:
            positions = {tp: await self.consumer.position(tp) for tp in tps}
            if all(positions[tp] >= ends[tp] for tp in tps):
                break
            await self.step(timeout_ms=200)
        return views

    async def step(self, timeout_ms: int = 0) -> None:
        """Apply what has arrived on the global topics (one slice)."""
        if self.consumer is None:
            return
        data = await self.consumer.getmany(timeout_ms=timeout_ms, max_records=10_000)
        for tp, messages in data.items():
            task = self._by_tp.get(tp)
            if task is not None and messages:
                task.process(
                    tp.topic,
                    [
                        (m.key, m.value, m.timestamp, m.headers, m.partition, m.offset)
                        for m in messages
                    ],
                )

    async def close(self) -> None:
        for task in self.tasks:
            task.close()
        self.tasks = []
        if self.consumer is not None:
            await self.consumer.stop()
            self.consumer = None
