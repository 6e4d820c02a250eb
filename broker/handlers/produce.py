"""Produce (API key 0): append the client's record batches as they arrived.

The broker never looks inside a batch here: the log validates the batch header and CRC
and patches the base offset, so the work per request is one ``append`` per partition.

Durability follows Kafka's knobs. ``acks=-1`` on a topic whose ``flush.messages`` (or the
broker's ``log.flush.interval.messages``) is 1 is answered only once the data is fsynced.
The fsync runs in a worker thread and is shared (group commit): while one fsync of a
partition is in flight, every acks=-1 request that appended to it meanwhile waits for the
single next fsync, so N concurrent producers cost about two fsyncs, not N.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from typing import TYPE_CHECKING, Any

from broker.errors import ErrorCode, KafkaError
from broker.handlers import handles

if TYPE_CHECKING:
    from broker.context import RequestContext
    from broker.log.interface import LogManager, PartitionLog

__all__ = ["GroupCommit", "produce"]

logger = logging.getLogger(__name__)

_VALID_ACKS = (0, 1, -1)


class GroupCommit:
    """Shares fsyncs of one partition among the requests that wait for them."""

    __slots__ = ("_next", "_running", "log")

    def __init__(self, log: PartitionLog) -> None:
        self.log = log
        self._running: asyncio.Future[None] | None = None
        self._next: asyncio.Future[None] | None = None

    def sync(self) -> asyncio.Future[None]:
        """A future that completes after an fsync that started after this call."""
        nxt = self._next
        if nxt is None:
            nxt = self._next = asyncio.get_running_loop().create_future()
            if self._running is None:
                self._start()
        return nxt

    def _start(self) -> None:
        self._running, self._next = self._next, None
        task = asyncio.ensure_future(asyncio.to_thread(self.log.flush))
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Future[None]) -> None:
        fut, self._running = self._running, None
        if fut is not None and not fut.done():
            exc = task.exception() if not task.cancelled() else asyncio.CancelledError()
            if exc is None:
                fut.set_result(None)
            else:
                fut.set_exception(exc)
        if self._next is not None:
            self._start()


# One set of group-commit states per log manager (a process may run several brokers in tests).
_commits: weakref.WeakKeyDictionary[Any, dict[tuple[str, int], GroupCommit]] = (
    weakref.WeakKeyDictionary()
)


def _group_commit(logs: LogManager, log: PartitionLog) -> GroupCommit:
    per_manager = _commits.get(logs)
    if per_manager is None:
        per_manager = _commits[logs] = {}
    key = (log.topic, log.partition)
    commit = per_manager.get(key)
    if commit is None or commit.log is not log:  # first use, or the topic was re-created
        commit = per_manager[key] = GroupCommit(log)
    return commit


def _flush_every_message(ctx: RequestContext, log: PartitionLog) -> bool:
    """Whether the partition's topic asks for an fsync per append (``flush.messages=1``)."""
    config = getattr(log, "config", None)  # the file-backed log carries its resolved config
    if config is not None:
        return bool(getattr(config, "flush_messages", 0) == 1)
    info = ctx.node.logs.topics().get(log.topic)
    value = info.configs.get("flush.messages") if info is not None else None
    if value is None:
        value = ctx.node.config.get("log.flush.interval.messages")
    return value is not None and value.strip() == "1"


def _log_refusal(ctx: RequestContext, topic: str, index: int, exc: KafkaError) -> None:
    """Say in the broker's log why a produce was refused (a client only sees the code)."""
    level = logging.DEBUG if exc.code is ErrorCode.unknown_topic_or_partition else logging.WARNING
    logger.log(
        level,
        "refused produce to %s-%d from %s (client %s): %s: %s",
        topic,
        index,
        ctx.peer,
        ctx.client_id,
        exc.code.name.upper(),
        exc.message,
    )


def _error(index: int, exc: KafkaError) -> dict[str, Any]:
    result: dict[str, Any] = {
        "index": index,
        "error_code": exc.code,
        "base_offset": -1,
        "log_append_time_ms": -1,
        "log_start_offset": -1,
        "error_message": exc.message,
    }
    record_errors = getattr(exc, "record_errors", None)
    if record_errors:
        result["record_errors"] = [
            {"batch_index": i, "batch_index_error_message": msg} for i, msg in record_errors
        ]
    return result


@handles(0, 3, 9)
async def produce(ctx: RequestContext, request: Any) -> Any:
    """Append every partition's batches; answer per partition (nothing at acks=0)."""
    acks = request.acks
    logs = ctx.node.logs
    bytes_in = ctx.node.metrics.bytes_in_total
    now_ms = int(time.time() * 1000)
    responses: list[dict[str, Any]] = []
    pending: list[asyncio.Future[None]] = []
    bad_acks = acks not in _VALID_ACKS
    for topic_data in request.topic_data:
        topic = topic_data.name
        parts: list[dict[str, Any]] = []
        for pdata in topic_data.partition_data:
            index = pdata.index
            if bad_acks:
                parts.append(
                    _error(
                        index,
                        KafkaError(
                            ErrorCode.invalid_required_acks,
                            f"acks={acks} is not supported; use 0, 1 or -1 (all)",
                        ),
                    )
                )
                continue
            records = pdata.records
            try:
                if not records:
                    raise KafkaError(
                        ErrorCode.invalid_record,
                        f"produce to {topic}-{index} must carry at least one record batch",
                    )
                log = logs.partition(topic, index)
                info = log.append(records, now_ms=now_ms)
            except KafkaError as exc:
                _log_refusal(ctx, topic, index, exc)
                parts.append(_error(index, exc))
                continue
            except OSError as exc:  # disk full, I/O error: the client may retry elsewhere
                logger.error("append to %s-%d failed: %s", topic, index, exc)
                parts.append(
                    _error(
                        index,
                        KafkaError(
                            ErrorCode.kafka_storage_error,
                            f"the broker could not write {topic}-{index}: {exc}",
                        ),
                    )
                )
                continue
            bytes_in.labels(topic).inc(len(records))
            parts.append(
                {
                    "index": index,
                    "error_code": 0,
                    "base_offset": info.base_offset,
                    "log_append_time_ms": info.log_append_time_ms,
                    "log_start_offset": info.log_start_offset,
                }
            )
            if acks == -1 and _flush_every_message(ctx, log):
                pending.append(_group_commit(logs, log).sync())
        responses.append({"name": topic, "partition_responses": parts})
    if acks == 0:
        return None
    if pending:
        # The fsync futures are shared with other requests: shield them, so that a client
        # hanging up (which cancels this handler) does not cancel everybody's fsync.
        try:
            await asyncio.shield(pending[0] if len(pending) == 1 else asyncio.gather(*pending))
        except OSError as exc:
            raise KafkaError(
                ErrorCode.kafka_storage_error, f"fsync of the log failed: {exc}"
            ) from exc
    return ctx.respond({"responses": responses, "throttle_time_ms": 0})
