"""The commit protocol of a worker, as numbered steps in one function.

The order is what makes restore correct: a store is written (step 5) only after its changelog
records are durable in Kafka (step 3) and the source offsets that produced them are committed
(step 4), so the offset stored with the data never points past what the changelog holds, and
a crash at any point leaves either the old state or a changelog tail that restore replays.

Under exactly-once, steps 2-4 are one Kafka transaction: the source offsets are sent to the
transaction (``send_offsets_to_transaction``) and ``commit_transaction`` makes outputs,
changelog records and offsets visible to ``read_committed`` readers all at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import CommitFailedError, IllegalStateError
from aiokafka.structs import OffsetAndMetadata, TopicPartition

from core.metrics import WorkerMetrics
from core.task import Task
from core.worker.kafka_collector import KafkaCollector

log = logging.getLogger("flows.worker")


class Committer:
    """Remembers what was committed, so each commit sends only source offsets that moved."""

    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        producer: AIOKafkaProducer,
        collector: KafkaCollector,
        metrics: WorkerMetrics,
        *,
        group_id: str,
        exactly_once: bool,
    ) -> None:
        self.consumer = consumer
        self.producer = producer
        self.collector = collector
        self.metrics = metrics
        self.group_id = group_id
        self.exactly_once = exactly_once
        self.committed: dict[tuple[str, int], int] = {}
        self.commits = 0

    async def commit(self, tasks: Iterable[Task]) -> bool:
        """Run the commit protocol for ``tasks``; False if the group took the partitions away.

        1. flush caches: each task encodes every changed key once and sends it to its store's
           changelog (through the collector, like any output record);
        2. produce changelog and output records: hand everything collected to the producer;
        3. flush the producer: wait until the broker acknowledged every record, learning the
           last changelog offset per partition;
        4. commit source offsets: to the group, or into the transaction under exactly-once;
        5. persist store data + changelog offsets: one RocksDB write batch per store.
        """
        started = time.perf_counter()
        tasks = list(tasks)
        # 1. flush caches
        for task in tasks:
            task.flush_state()
        # 2. produce changelog and output records
        await self.collector.drain()
        # 3. flush the producer
        await self.collector.flush_async()
        changelog_offsets = self.collector.offsets()
        # 4. commit source offsets
        offsets: dict[TopicPartition, OffsetAndMetadata] = {}
        for task in tasks:
            for (topic, partition), offset in task.consumed.items():
                if self.committed.get((topic, partition)) != offset:
                    offsets[TopicPartition(topic, partition)] = OffsetAndMetadata(offset, "")
        ok = True
        if self.exactly_once:
            if offsets:
                await self.collector.begin()
                await self.producer.send_offsets_to_transaction(offsets, self.group_id)
            if self.collector.in_transaction:
                await self.producer.commit_transaction()
                self.collector.in_transaction = False
        elif offsets:
            try:
                await self.consumer.commit(offsets)
            except (CommitFailedError, IllegalStateError) as exc:
                # The group rebalanced: another member may own these partitions now. The
                # changelog already holds the state, so persisting below stays correct.
                log.warning("offset commit failed, the group is rebalancing: %s", exc)
                ok = False
        if ok:
            for tp, om in offsets.items():
                self.committed[(tp.topic, tp.partition)] = om.offset
        # 5. persist store data + changelog offsets
        for task in tasks:
            task.persist_state(changelog_offsets)
        self.metrics.commit_latency.observe(time.perf_counter() - started)
        self.commits += 1
        return ok

    def forget(self, tps: Iterable[tuple[str, int]]) -> None:
        """Drop what is known about partitions this worker no longer owns."""
        for tp in tps:
            self.committed.pop(tp, None)
