"""A :class:`~core.collector.RecordCollector` over aiokafka's producer, batch by batch.

Tasks call ``send`` synchronously from their fused closures; records are only appended to a
per-partition list there. After each fetched batch the worker awaits :meth:`drain`, which packs
the lists into record batches (``producer.create_batch()``) and hands them to the producer with
``send_batch`` -- one await per partition batch, never per record -- keeping the delivery
futures. :meth:`flush_async` (commit step 3) waits for all of them and records the last offset
written per partition, which the stores' changelog checkpoints need.

Under exactly-once the producer is transactional: the first drain after a commit begins the
transaction, and the commit ends it (see :mod:`core.worker.commit`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from aiokafka import AIOKafkaProducer

from core.collector import EncodedRecord
from core.errors import FlowsError
from core.partitioner import default_partition

log = logging.getLogger("flows.worker")


class ProductionError(FlowsError):
    """The broker refused records; names the topic and partition."""

    def __init__(self, topic: str, partition: int, count: int, cause: BaseException) -> None:
        self.topic = topic
        self.partition = partition
        self.count = count
        self.cause = cause
        super().__init__(
            f"producing {count} record(s) to topic {topic!r} partition {partition} failed: "
            f"{type(cause).__name__}: {cause}. Set on_production_error='log_and_skip' on the "
            f"App to skip such records"
        )


class KafkaCollector:
    """Collects records per partition, produces them in batches; see the module docstring."""

    def __init__(
        self,
        producer: AIOKafkaProducer,
        partitions: Callable[[str], int],
        *,
        transactional: bool = False,
        on_sent: Callable[[str, int], None] | None = None,
        skip_errors: bool = False,
    ) -> None:
        self.producer = producer
        self._partitions = partitions
        self._pending: dict[tuple[str, int], list[EncodedRecord]] = {}
        self._inflight: list[tuple[str, int, int, asyncio.Future[Any]]] = []
        self._last: dict[tuple[str, int], int] = {}
        self.transactional = transactional
        self.in_transaction = False
        self._on_sent = on_sent
        self._skip_errors = skip_errors

    # -- RecordCollector -----------------------------------------------------------------------

    def send(
        self, topic: str, records: Sequence[EncodedRecord], partition: int | None = None
    ) -> None:
        if partition is not None:
            self._pending.setdefault((topic, partition), []).extend(records)
            return
        n = self._partitions(topic)
        pending = self._pending
        for rec in records:
            p = default_partition(rec[0], n)
            lst = pending.get((topic, p))
            if lst is None:
                lst = pending[(topic, p)] = []
            lst.append(rec)

    def flush(self) -> None:  # pragma: no cover - the worker uses flush_async
        raise RuntimeError("KafkaCollector is asynchronous: await flush_async()")

    def offsets(self) -> Mapping[tuple[str, int], int]:
        return self._last

    # -- asynchronous side ---------------------------------------------------------------------

    @property
    def has_pending(self) -> bool:
        return bool(self._pending)

    async def begin(self) -> None:
        """Begin a transaction if this collector is transactional and none is open."""
        if self.transactional and not self.in_transaction:
            await self.producer.begin_transaction()
            self.in_transaction = True

    async def drain(self) -> None:
        """Hand every collected record to the producer, one record batch per partition."""
        if not self._pending:
            return
        await self.begin()
        pending, self._pending = self._pending, {}
        producer = self.producer
        for (topic, partition), records in pending.items():
            if self._on_sent is not None:
                self._on_sent(topic, len(records))
            batch = producer.create_batch()
            count = 0
            append = batch.append
            for key, value, ts, headers in records:
                # headers are (str, bytes) pairs (consumed, or from the dead-letter handler);
                # the C batch builder wants a list
                headers = _NONE if not headers else _as_list(headers)
                if append(key=key, value=value, timestamp=ts, headers=headers) is None:
                    fut = await producer.send_batch(batch, topic, partition=partition)
                    self._inflight.append((topic, partition, count, fut))
                    batch = producer.create_batch()
                    append = batch.append
                    count = 0
                    if append(key=key, value=value, timestamp=ts, headers=headers) is None:
                        raise ProductionError(
                            topic, partition, 1, ValueError("record larger than max batch size")
                        )
                count += 1
            if count:
                fut = await producer.send_batch(batch, topic, partition=partition)
                self._inflight.append((topic, partition, count, fut))

    async def flush_async(self) -> list[ProductionError]:
        """Drain, then wait for every batch; returns the failures when errors are skipped."""
        await self.drain()
        inflight, self._inflight = self._inflight, []
        if not inflight:
            return []
        results = await asyncio.gather(*(f for *_, f in inflight), return_exceptions=True)
        errors: list[ProductionError] = []
        for (topic, partition, count, _), res in zip(inflight, results, strict=True):
            if isinstance(res, BaseException):
                errors.append(ProductionError(topic, partition, count, res))
                continue
            last = res.offset + count - 1
            if last > self._last.get((topic, partition), -1):
                self._last[(topic, partition)] = last
        if errors and not self._skip_errors:
            raise errors[0]
        for err in errors:
            log.warning("skipping failed production: %s", err)
        return errors

    def discard(self) -> None:
        """Forget records not yet handed to the producer (after an aborted transaction)."""
        self._pending.clear()
        self._inflight.clear()


_NONE: list[tuple[str, bytes]] = []


def _as_list(headers: Any) -> list[tuple[str, bytes]]:
    return headers if type(headers) is list else list(headers)
