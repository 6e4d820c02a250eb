"""The worker loop: fetch batches, run tasks, restore in slices, commit on time.

One asyncio loop per worker process. Each turn::

    batches = await consumer.getmany(...)      # many partitions, many records, one await
    for each partition batch: task.process()   # fused closures, synchronous
                                               # (a join's inputs: buffered, lowest timestamp
                                               # first, waiting for an input that lags)
    await collector.drain()                    # one produce batch per partition
    await restorer.step()                      # one slice of changelog records, if restoring
    if commit is due: await committer.commit() # the commit protocol (core.worker.commit)

The group protocol runs in aiokafka's background task; its rebalance callbacks take the same
lock as a loop turn, so tasks never change under a running batch: revocation commits every
task, assignment creates/closes tasks (:mod:`core.worker.task_manager`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.structs import TopicPartition

from core.compiler import Topology
from core.metrics import WorkerMetrics
from core.partition_group import PartitionGroup, merge_by_timestamp
from core.task import ConsumedRecord, Task
from core.worker.commit import Committer
from core.worker.config import WorkerConfig
from core.worker.global_tables import GlobalTables
from core.worker.handlers import BatchRunner
from core.worker.kafka_collector import KafkaCollector
from core.worker.partition_assignor import AssignorState, make_assignor
from core.worker.restore import Restorer
from core.worker.task_manager import TaskManager
from core.worker.topics import TopicLayout, TopicSetupError, ensure_topics, existing_topics

log = logging.getLogger("flows.worker")

_MAX_BATCH_BYTES = 512 * 1024
_MIN_BUFFERED_PER_PARTITION = 1000
"""A join input buffering this many records (or ``max_poll_records``) is paused until the
task catches up on it, as Kafka's ``buffered.records.per.partition``."""


class _Listener(ConsumerRebalanceListener):
    def __init__(self, worker: Worker) -> None:
        self.worker = worker

    async def on_partitions_revoked(self, revoked: Any) -> None:
        await self.worker._on_revoked(set(revoked))

    async def on_partitions_assigned(self, assigned: Any) -> None:
        await self.worker._on_assigned(set(assigned))


class Worker:
    """Runs ``topology`` on the cluster at ``config.bootstrap``; ``await run()`` until stopped."""

    def __init__(self, topology: Topology, config: WorkerConfig) -> None:
        self.topology = topology
        self.config = config
        self.app_id = topology.app_id
        self.worker_id = uuid.uuid4().hex[:12]
        self.metrics = WorkerMetrics()
        self.metrics_port: int | None = None
        self.stopping = asyncio.Event()
        self.stopped = asyncio.Event()
        self._lock = asyncio.Lock()
        self._layout: TopicLayout | None = None
        self._partition_counts: dict[str, int] = {}
        self.tasks: TaskManager | None = None
        self._last_commit = time.monotonic()
        self._late_seen: dict[str, int] = {}
        self._last_sizes = 0.0
        self.failure: BaseException | None = None
        self._sub_of: dict[str, int] = {
            t: s.id for s in topology.subtopologies if not s.is_global for t in s.source_topics
        }
        # tasks with several inputs hold fetched records in a PartitionGroup until every input
        # has records or is known to be caught up (see _process)
        self._multi_input: dict[int, list[str]] = {
            s.id: sorted(s.source_topics)
            for s in topology.subtopologies
            if not s.is_global and len(set(s.source_topics)) > 1
        }
        self._groups: dict[str, PartitionGroup] = {}
        self._buffer_paused: set[TopicPartition] = set()

    # -- public --------------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask the loop to finish its batch, commit, close tasks and leave the group."""
        self.stopping.set()

    def install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.stop)

    async def run(self) -> None:
        cfg = self.config
        if cfg.metrics_port is not None:
            self.metrics_port = self.metrics.serve(cfg.metrics_port)
            log.info("metrics on http://127.0.0.1:%d/metrics", self.metrics_port)
        admin = AIOKafkaAdminClient(bootstrap_servers=cfg.bootstrap, client_id=cfg.client_id)
        await admin.start()
        try:
            self._layout = await ensure_topics(admin, self.topology)
            await self._ensure_extra_topics(admin)
        finally:
            await admin.close()
        self._partition_counts = dict(self._layout.partitions)
        isolation = "read_committed" if cfg.exactly_once else "read_uncommitted"
        producer_config: dict[str, Any] = {
            "bootstrap_servers": cfg.bootstrap,
            "client_id": f"{cfg.client_id}-{self.worker_id}",
            "max_batch_size": _MAX_BATCH_BYTES,
            "linger_ms": 5,
            "acks": "all",
        }
        if cfg.exactly_once:
            producer_config["transactional_id"] = f"{self.app_id}-{self.worker_id}"
            producer_config["enable_idempotence"] = True
            # as Kafka Streams: a crashed worker's open transaction is aborted after 10 s, so
            # read_committed readers of its partitions are not held back for long
            producer_config["transaction_timeout_ms"] = 10_000
        self.producer = AIOKafkaProducer(**producer_config)
        await self.producer.start()
        self.collector = KafkaCollector(
            self.producer,
            self._partitions_of,
            transactional=cfg.exactly_once,
            skip_errors=cfg.errors.on_production_error == "log_and_skip",
        )
        self.restore_consumer = AIOKafkaConsumer(
            bootstrap_servers=cfg.bootstrap,
            client_id=f"{cfg.client_id}-{self.worker_id}-restore",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level=isolation,
        )
        await self.restore_consumer.start()
        self.restorer = Restorer(
            self.restore_consumer, self.metrics, slice_records=cfg.restore_batch_records
        )
        self.globals = GlobalTables(
            self.topology,
            cfg,
            self._partitions_of,
            f"{cfg.client_id}-{self.worker_id}-global",
        )
        global_views = await self.globals.start()
        sources = {
            sub.id: sub.source_topics for sub in self.topology.subtopologies if not sub.is_global
        }
        self._assignor_state = AssignorState(sources, cfg.num_standby_replicas, self._member)
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=cfg.bootstrap,
            client_id=f"{cfg.client_id}-{self.worker_id}",
            group_id=self.app_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level=isolation,
            partition_assignment_strategy=(make_assignor(self._assignor_state),),
            max_poll_records=cfg.max_poll_records,
            session_timeout_ms=10_000,
            heartbeat_interval_ms=1_000,
            rebalance_timeout_ms=30_000,
        )
        self.tasks = TaskManager(
            self.topology,
            cfg.state_dir,
            self.collector,
            self.consumer,
            self.restorer,
            self.metrics,
            global_stores=global_views,
            wall_clock=lambda: int(time.time() * 1000),
        )
        self.committer = Committer(
            self.consumer,
            self.producer,
            self.collector,
            self.metrics,
            group_id=self.app_id,
            exactly_once=cfg.exactly_once,
        )
        self.runner = BatchRunner(cfg.errors, self.app_id, self.collector.send)
        topics = sorted({t for ts in sources.values() for t in ts})
        await self.consumer.start()
        self.consumer.subscribe(topics, listener=_Listener(self))
        log.info(
            "worker %s of app %r started (%s, state in %s), reading %s",
            self.worker_id,
            self.app_id,
            cfg.processing_guarantee,
            cfg.state_dir,
            ", ".join(topics),
        )
        try:
            await self._loop()
        except BaseException as exc:
            self.failure = exc
            raise
        finally:
            await self._shutdown()
        if self.failure is not None:  # a failure seen in a rebalance callback
            raise self.failure

    # -- loop ----------------------------------------------------------------------------------

    async def _loop(self) -> None:
        interval = self.config.commit_interval_s
        while not self.stopping.is_set():
            timeout = 0 if self.restorer.restoring else 100
            data = await self.consumer.getmany(
                timeout_ms=timeout, max_records=self.config.max_poll_records
            )
            async with self._lock:
                if data or self._holding():
                    self._process(data)
                    await self.collector.drain()
                await self.globals.step()
                if self.restorer.targets:
                    await self.restorer.step(timeout_ms=0 if data else 50)
                self._punctuate()
                now = time.monotonic()
                assert self.tasks is not None
                if now - self._last_commit >= interval or any(
                    t.needs_commit for t in self.tasks.running
                ):
                    await self._commit()

    def _process(self, data: dict[TopicPartition, list[Any]]) -> None:
        assert self.tasks is not None
        active = self.tasks.active
        started = time.perf_counter()
        records_in = self.metrics.records_in
        per_task: dict[str, list[tuple[str, list[ConsumedRecord]]]] = {}
        grouped: set[str] = set()
        for tp, messages in data.items():
            if not messages:
                continue
            task_id = self._task_of(tp)
            task = active.get(task_id)
            if task is None or task.state == "closed":
                continue
            if task_id in self.tasks.restoring:
                # fetched just before the partition was paused: read it again once restored
                self.consumer.seek(tp, messages[0].offset)
                continue
            batch = [
                (m.key, m.value, m.timestamp, m.headers, m.partition, m.offset) for m in messages
            ]
            records_in.labels(task_id, tp.topic).inc(len(batch))
            inputs = self._multi_input.get(self._sub_of.get(tp.topic, -1))
            if inputs is not None:
                group = self._groups.get(task_id)
                if group is None:
                    group = self._groups[task_id] = PartitionGroup(
                        inputs, max_idle_ms=self.config.max_task_idle_ms
                    )
                group.add(tp.topic, batch)
                grouped.add(task_id)
                if group.buffered(tp.topic) >= self._buffer_limit():
                    self.consumer.pause(tp)
                    self._buffer_paused.add(tp)
                continue
            per_task.setdefault(task_id, []).append((tp.topic, batch))
        for task_id, batches in per_task.items():
            task = active[task_id]
            if len(batches) == 1:
                self.runner.run(task, *batches[0])
            else:
                # Several inputs of one task (a join): lowest timestamp first, as Kafka
                # Streams' PartitionGroup does.
                for topic, run in merge_by_timestamp(batches):
                    self.runner.run(task, topic, run)
            self._count_late(task)
        self._drain_groups()
        if data:
            self.metrics.process_latency.observe(time.perf_counter() - started)
        self._count_out()

    def _holding(self) -> bool:
        return any(g.buffered() for g in self._groups.values())

    def _drain_groups(self) -> None:
        """Process what the multi-input tasks may process now, lowest timestamp first.

        Records stay buffered while an input of the task has nothing buffered but unread
        records on the broker (Kafka Streams' rule since KIP-695), so a table is loaded before
        the stream records that join it. Only processed records reach ``task.consumed``, so a
        commit never covers buffered ones.
        """
        assert self.tasks is not None
        now_ms = int(time.monotonic() * 1000)
        for task_id, group in list(self._groups.items()):
            if not group.buffered():
                continue
            task = self.tasks.active.get(task_id)
            if task is None or task.state == "closed":
                del self._groups[task_id]
                continue
            if task_id in self.tasks.restoring:
                continue
            partition = int(task_id.rpartition("_")[2])

            def lag_of(topic: str, partition: int = partition) -> int | None:
                return self._lag(TopicPartition(topic, partition))

            runs = group.drain(now_ms, lag_of)
            for topic, run in runs:
                self.runner.run(task, topic, run)
            if runs:
                self._count_late(task)
        if self._buffer_paused:
            limit = self._buffer_limit()
            resume = []
            for tp in self._buffer_paused:
                held = self._groups.get(self._task_of(tp))
                if held is None or held.buffered(tp.topic) < limit:
                    resume.append(tp)
            self._buffer_paused.difference_update(resume)
            restoring = self.tasks.restoring
            assigned = self.consumer.assignment()
            resume = [tp for tp in resume if tp in assigned and self._task_of(tp) not in restoring]
            if resume:
                self.consumer.resume(*resume)

    def _buffer_limit(self) -> int:
        return max(_MIN_BUFFERED_PER_PARTITION, self.config.max_poll_records)

    def _lag(self, tp: TopicPartition) -> int | None:
        """Records of ``tp`` known to be unread (fetched or not); ``None`` when not known yet.

        Read from the consumer's partition state without an await: the position advances as
        ``getmany`` hands records out, the high watermark (or, under read_committed, the last
        stable offset) with every fetch response.
        """
        try:
            state = self.consumer._subscription.subscription.assignment.state_value(tp)
        except Exception:  # not assigned (any more): nothing to wait for
            return 0
        if state is None or not state.has_valid_position:
            return None
        end = state.highwater
        if self.config.exactly_once and state.lso is not None and state.lso >= 0:
            end = state.lso
        if end is None:
            return None
        return max(0, end - state.position)

    def _count_late(self, task: Task) -> None:
        dropped = task.dropped_late_records
        seen = self._late_seen.get(task.id, 0)
        if dropped > seen:
            self.metrics.dropped_late.labels(task.id).inc(dropped - seen)
            self._late_seen[task.id] = dropped

    def _task_of(self, tp: TopicPartition) -> str:
        return f"{self._sub_of.get(tp.topic, -1)}_{tp.partition}"

    def _count_out(self) -> None:
        assert self.tasks is not None
        out = self.metrics.records_out
        for task in self.tasks.active.values():
            counts = task.collector.counts  # type: ignore[attr-defined]
            if counts:
                for topic, n in counts.items():
                    out.labels(task.id, topic).inc(n)
                counts.clear()

    def _punctuate(self) -> None:
        assert self.tasks is not None
        now = int(time.time() * 1000)
        for task in self.tasks.running:
            if task._schedules:
                task.punctuate_wall_clock(now)

    async def _commit(self) -> None:
        assert self.tasks is not None
        tasks = list(self.tasks.active.values())
        await self.committer.commit(tasks)
        self._count_out()
        self._last_commit = time.monotonic()
        await self._update_gauges()

    async def _update_gauges(self) -> None:
        assert self.tasks is not None
        for tp in self.consumer.assignment():
            task = self.tasks.active.get(self._task_of(tp))
            high = self.consumer.highwater(tp)
            if task is None or high is None:
                continue
            pos = task.consumed.get((tp.topic, tp.partition))
            if pos is None:
                continue
            self.metrics.consumer_lag.labels(tp.topic, str(tp.partition)).set(max(0, high - pos))
        now = time.monotonic()
        if now - self._last_sizes < 5:
            return
        self._last_sizes = now
        for task in self.tasks.active.values():
            for name, store in task.stores.items():
                path = getattr(store, "path", None)
                if path is not None:
                    self.metrics.store_size.labels(task.id, name).set(_dir_size(Path(path)))

    # -- rebalance callbacks -------------------------------------------------------------------

    async def _on_revoked(self, revoked: set[TopicPartition]) -> None:
        async with self._lock:
            # buffered records were never committed: they are fetched again after the rebalance
            self._forget_buffers()
            if self.tasks is None or not self.tasks.active:
                return
            try:
                await self._commit()
            except Exception as exc:  # the group moves on; the changelog holds the state
                log.warning("commit before rebalance failed: %s", exc)
            self.committer.forget((tp.topic, tp.partition) for tp in revoked)
            for task in self.tasks.active.values():
                task.consumed.clear()

    async def _on_assigned(self, assigned: set[TopicPartition]) -> None:
        async with self._lock:
            self.metrics.rebalances.inc()
            assert self.tasks is not None
            self._forget_buffers()
            assignment = self._assignor_state.assignment
            try:
                await self.tasks.apply(assignment, assigned)
            except Exception as exc:
                log.exception("cannot take over the assigned tasks: %s", exc)
                self.failure = exc
                self.stop()

    def _forget_buffers(self) -> None:
        for group in self._groups.values():
            group.clear()
        self._groups.clear()
        self._buffer_paused.clear()  # the consumer resets pause state on reassignment

    def _member(self) -> Any:
        assert self.tasks is not None
        return self.tasks.member_state()

    # -- setup helpers -------------------------------------------------------------------------

    def _partitions_of(self, topic: str) -> int:
        n = self._partition_counts.get(topic)
        if n is None:
            parts = self.producer.client.cluster.partitions_for_topic(topic)
            n = len(parts) if parts else 1
            self._partition_counts[topic] = n
        return n

    async def _ensure_extra_topics(self, admin: AIOKafkaAdminClient) -> None:
        """Learn sink topic partition counts; create the dead-letter topic if one is used."""
        assert self._layout is not None
        sinks = sorted({t for s in self.topology.subtopologies for t in s.sink_topics})
        wanted = list(sinks)
        dlq = (
            self.config.errors.dlq_topic(self.app_id)
            if self.config.errors.uses_dead_letter
            else None
        )
        if dlq:
            wanted.append(dlq)
        have = await existing_topics(admin, wanted)
        if dlq and dlq not in have:
            with contextlib.suppress(Exception):
                await admin.create_topics([NewTopic(dlq, 1, 1)])
            have[dlq] = 1
            log.info("dead-letter topic: %s", dlq)
        missing = [t for t in sinks if t not in have]
        if missing:
            # An output topic that does not exist yet gets as many partitions as the
            # sub-topology writing it has tasks.
            writer = {
                t: self._layout.tasks.get(s.id, 1)
                for s in self.topology.subtopologies
                for t in s.sink_topics
            }
            with contextlib.suppress(Exception):
                await admin.create_topics([NewTopic(t, writer.get(t, 1), 1) for t in missing])
            log.info("created output topics: %s", ", ".join(missing))
            have.update(await existing_topics(admin, missing))
            for t in missing:
                if t not in have:
                    raise TopicSetupError(
                        f"output topic {t!r} does not exist and could not be created: create "
                        f"it with `flows topics create {t}`"
                    )
        self._layout.partitions.update({t: n for t, n in have.items()})

    async def _shutdown(self) -> None:
        """Finish: commit, close tasks (checkpoints), leave the group, stop clients."""
        consumer = getattr(self, "consumer", None)
        try:
            if self.tasks is not None and self.failure is None:
                async with self._lock:
                    if self.tasks.active:
                        await self._commit()
            elif (
                self.config.exactly_once
                and getattr(self, "collector", None) is not None
                and self.collector.in_transaction
            ):
                with contextlib.suppress(Exception):
                    await self.producer.abort_transaction()
        except Exception as exc:
            log.warning("final commit failed: %s", exc)
        finally:
            if self.tasks is not None:
                self.tasks.close_all()
            if getattr(self, "globals", None) is not None:
                await self.globals.close()
            for client in (
                consumer,
                getattr(self, "restore_consumer", None),
                getattr(self, "producer", None),
            ):
                if client is not None:
                    with contextlib.suppress(Exception):
                        await client.stop()
            if getattr(self, "restorer", None) is not None:
                self.restorer.close()
            self.metrics.stop()
            self.stopped.set()
            log.info("worker %s stopped", self.worker_id)


def _dir_size(path: Path) -> int:
    total = 0
    with contextlib.suppress(OSError):
        for entry in os.scandir(path):
            if entry.is_file(follow_symlinks=False):
                total += entry.stat(follow_symlinks=False).st_size
    return total


async def run_worker(topology: Topology, config: WorkerConfig, *, signals: bool = True) -> Worker:
    """Run a worker until SIGTERM/SIGINT (or ``worker.stop()``); returns it once stopped."""
    worker = Worker(topology, config)
    if signals:
        worker.install_signal_handlers()
    await worker.run()
    return worker


def source_topics(topology: Topology) -> Iterable[str]:
    return sorted({t for s in topology.subtopologies if not s.is_global for t in s.source_topics})
