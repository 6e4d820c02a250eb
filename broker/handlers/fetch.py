"""Fetch (API key 1): serve stored batches, long-polling until ``min_bytes`` arrive.

The bytes ``PartitionLog.read`` returns go into the response untouched. Size limits
follow KIP-74: ``partition_max_bytes`` and the request's ``max_bytes`` are soft for the
first partition that has data (it always gets at least one whole batch, so a batch larger
than the limits can still be consumed), and hard for every later partition.

Fetch sessions (KIP-227, v7+) are declined the way Kafka allows: every response carries
``session_id=0``, so clients keep sending full fetch requests.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from broker.errors import ErrorCode, KafkaError
from broker.handlers import handles

if TYPE_CHECKING:
    from broker.context import RequestContext

__all__ = ["fetch"]

logger = logging.getLogger(__name__)

_READ_COMMITTED = 1


def _read_all(
    ctx: RequestContext, request: Any, read_committed: bool
) -> tuple[list[dict[str, Any]], int, bool, set[tuple[str, int]], dict[str, int]]:
    """One pass over the requested partitions.

    Returns the response topics, the bytes gathered, whether any partition failed (Kafka
    answers at once then), the partitions worth waiting on and the bytes per topic.
    """
    logs = ctx.node.logs
    per_topic: dict[str, int] = {}
    budget = request.max_bytes
    if budget <= 0:
        budget = 1
    total = 0
    failed = False
    keys: set[tuple[str, int]] = set()
    topics: list[dict[str, Any]] = []
    # read_uncommitted answers null (the key left out), read_committed a list (empty when
    # no aborted transaction touches the data returned).
    aborted: dict[str, Any] = {"aborted_transactions": ()} if read_committed else {}
    for fetch_topic in request.topics:
        topic = fetch_topic.topic
        parts: list[dict[str, Any]] = []
        topic_bytes = 0
        for fp in fetch_topic.partitions:
            index = fp.partition
            try:
                log = logs.partition(topic, index)
                end = log.log_end_offset
                lso = log.last_stable_offset
                start = log.log_start_offset
                offset = fp.fetch_offset
                limit = lso if read_committed else end
                records = b""
                if offset == limit or (read_committed and lso <= offset <= end):
                    pass  # caught up: nothing to read, not an error
                elif offset < start or offset > end:
                    raise KafkaError(
                        ErrorCode.offset_out_of_range,
                        f"offset {offset} is outside {topic}-{index} [{start}, {end}]",
                    )
                elif budget > 0:
                    want = min(fp.partition_max_bytes, budget)
                    records = log.read(
                        offset, max(want, 1), upper_bound=lso if read_committed else None
                    )
                    size = len(records)
                    if total and size > want:
                        records = b""  # KIP-74: only the first data may exceed the limits
                    else:
                        total += size
                        topic_bytes += size
                        budget -= size
            except (KafkaError, OSError) as exc:
                failed = True
                if isinstance(exc, KafkaError):
                    code = exc.code
                else:  # an unreadable segment: say so, keep serving the other partitions
                    logger.error("read of %s-%d failed: %s", topic, index, exc)
                    code = ErrorCode.kafka_storage_error
                parts.append(
                    {
                        "partition_index": index,
                        "error_code": code,
                        "high_watermark": -1,
                        "last_stable_offset": -1,
                        "log_start_offset": -1,
                        "preferred_read_replica": -1,
                        "records": b"",
                        **aborted,
                    }
                )
                continue
            keys.add((topic, index))
            found = aborted
            if read_committed and records and hasattr(log, "aborted_transactions"):
                # The client drops these producers' batches up to each abort marker.
                found = {
                    "aborted_transactions": [
                        {"producer_id": pid, "first_offset": first}
                        for pid, first in log.aborted_transactions(offset, lso)
                    ]
                }
            parts.append(
                {
                    "partition_index": index,
                    "error_code": 0,
                    "high_watermark": end,
                    "last_stable_offset": lso,
                    "log_start_offset": start,
                    "preferred_read_replica": -1,
                    "records": records,
                    **found,
                }
            )
        if topic_bytes:
            per_topic[topic] = per_topic.get(topic, 0) + topic_bytes
        topics.append({"topic": topic, "partitions": parts})
    return topics, total, failed, keys, per_topic


@handles(1, 4, 12)
async def fetch(ctx: RequestContext, request: Any) -> Any:
    """Read every requested partition; wait for appends while below ``min_bytes``."""
    read_committed = getattr(request, "isolation_level", 0) == _READ_COMMITTED
    topics, total, failed, keys, per_topic = _read_all(ctx, request, read_committed)
    min_bytes = request.min_bytes
    wait_s = request.max_wait.total_seconds()
    if total < min_bytes and not failed and wait_s > 0 and keys:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        watch = ctx.node.watch
        while True:
            await watch.wait(keys, deadline - loop.time())
            topics, total, failed, keys, per_topic = _read_all(ctx, request, read_committed)
            if total >= min_bytes or failed or not keys or loop.time() >= deadline:
                break
    if per_topic:
        bytes_out = ctx.node.metrics.bytes_out_total
        for topic, size in per_topic.items():
            bytes_out.labels(topic).inc(size)
    return ctx.respond(
        {"throttle_time_ms": 0, "error_code": 0, "session_id": 0, "responses": topics}
    )
