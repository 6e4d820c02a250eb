"""Running a batch through a task under the configured error handlers.

The fast path is one ``task.process(topic, batch)`` call. Only when it raises does this module
find the record that failed: a source chain (decoding plus the fused stateless steps after it)
usually runs over the whole batch before anything downstream sees it, so the failing offset is
read from the generated loop's frame, the records before it are run again, the bad one is
skipped or dead-lettered, and the rest continues. Where a fan-out's paths meet again, the fused
loop calls later steps record by record (to keep Kafka Streams' order) and names its offset
variable differently, which sends such failures to the one-record-at-a-time replay below. A
failure further downstream (an aggregator, a processor) cannot be located that way; the batch
is then replayed one record at a time, so steps before the failure may see the earlier records
of that batch twice (at-least-once).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from core.errors import FlowsError, ProcessingError
from core.task import ConsumedRecord, Task
from core.worker.config import ErrorHandling

log = logging.getLogger("flows.worker")

_DECODE_ROLES = frozenset({"source", "repartition_source"})


class WorkerFailure(FlowsError):
    """Processing stopped (handler ``fail``): names step, task, topic, partition and offset."""


def _failing_offset(exc: BaseException) -> int | None:
    """The source offset the generated loop was at when ``exc`` was raised, if any."""
    cause = exc.__cause__ or exc
    tb = cause.__traceback__
    found = None
    while tb is not None:
        frame = tb.tb_frame
        if frame.f_code.co_filename.startswith("<flows task") and "_o" in frame.f_locals:
            found = frame.f_locals["_o"]
        tb = tb.tb_next
    return found if isinstance(found, int) else None


class BatchRunner:
    """Calls ``task.process`` and applies the error handlers; see the module docstring."""

    def __init__(
        self,
        errors: ErrorHandling,
        app_id: str,
        dead_letter: Callable[[str, list[Any]], None],
    ) -> None:
        self.errors = errors
        self.dlq_topic = errors.dlq_topic(app_id)
        self._dead_letter = dead_letter
        self.skipped = 0

    def run(self, task: Task, topic: str, batch: list[ConsumedRecord]) -> None:
        try:
            task.process(topic, batch)
        except ProcessingError as exc:
            self._recover(task, topic, batch, exc)

    def _kind(self, task: Task, exc: ProcessingError) -> str:
        try:
            role = task.sub.node(exc.step).role if exc.step else ""
        except KeyError:
            role = ""
        return "deserialization" if role in _DECODE_ROLES else "processing"

    def _recover(
        self, task: Task, topic: str, batch: list[ConsumedRecord], exc: ProcessingError
    ) -> None:
        kind = self._kind(task, exc)
        handler = (
            self.errors.on_deserialization_error
            if kind == "deserialization"
            else self.errors.on_processing_error
        )
        offset = _failing_offset(exc)
        index = None
        if offset is not None:
            index = next((i for i, r in enumerate(batch) if r[5] == offset), None)
        if handler == "fail":
            where = batch[index] if index is not None else batch[0]
            at = (
                f"partition {where[4]}, offset {where[5]}"
                if index is not None or len(batch) == 1
                else f"partition {where[4]}, offsets {batch[0][5]}..{batch[-1][5]}"
            )
            raise WorkerFailure(
                f"{kind} error in step {exc.step!r} (task {task.id}, topic {topic!r}, {at}): "
                f"{exc}. Fix the flow or the data, or set on_{kind}_error='log_and_skip' or "
                f"'dead_letter' on the App"
            ) from exc
        if index is None and len(batch) > 1:
            for rec in batch:
                self.run(task, topic, [rec])
            return
        if index is None:
            index = 0
        if index:
            self.run(task, topic, batch[:index])
        self._handle(task, topic, batch[index], exc, kind, handler)
        rest = batch[index + 1 :]
        if rest:
            self.run(task, topic, rest)
        else:
            bad = batch[index]
            task.consumed[(topic, bad[4])] = bad[5] + 1

    def _handle(
        self,
        task: Task,
        topic: str,
        rec: ConsumedRecord,
        exc: ProcessingError,
        kind: str,
        handler: str,
    ) -> None:
        self.skipped += 1
        cause = exc.__cause__ or exc
        if handler == "log_and_skip":
            log.warning(
                "skipping record (%s error in step %r, task %s, topic %r, partition %d, "
                "offset %d): %s",
                kind,
                exc.step,
                task.id,
                topic,
                rec[4],
                rec[5],
                cause,
            )
            return
        headers = list(rec[3] or ())
        headers += [
            ("flows.error.kind", kind.encode()),
            ("flows.error.step", str(exc.step or "").encode()),
            ("flows.error.task", task.id.encode()),
            ("flows.error.topic", topic.encode()),
            ("flows.error.partition", str(rec[4]).encode()),
            ("flows.error.offset", str(rec[5]).encode()),
            ("flows.error.exception", type(cause).__name__.encode()),
            ("flows.error.message", str(cause).encode(errors="replace")[:4096]),
        ]
        self._dead_letter(self.dlq_topic, [(rec[0], rec[1], rec[2], headers)])
        log.warning(
            "sent record to dead-letter topic %r (%s error in step %r, topic %r, partition %d, "
            "offset %d): %s",
            self.dlq_topic,
            kind,
            exc.step,
            topic,
            rec[4],
            rec[5],
            cause,
        )
