"""ListOffsets (API key 2): map a timestamp, or "earliest"/"latest", to an offset.

Special timestamps as in Kafka: ``-2`` is the log start offset, ``-1`` the log end offset
(the last stable offset for read_committed), ``-3`` (v7+, KIP-734) the first record
carrying the largest timestamp. Any other timestamp finds the first record whose timestamp
is at or after it, through the log's time index; when there is none the answer is offset
-1 and timestamp -1, which clients read as "no such record".

The largest timestamp needs no extra bookkeeping in the log: "some record has a timestamp
at or after ``t``" is monotone in ``t``, so a binary search over ``offset_for_timestamp``
finds it in at most 63 index lookups, and the last lookup names the first record that
carries it. ``-3`` is an administrative query, so that cost is fine.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from broker.errors import ErrorCode, KafkaError
from broker.handlers import handles

if TYPE_CHECKING:
    from broker.context import RequestContext
    from broker.log.interface import PartitionLog

__all__ = ["list_offsets"]

_LATEST = -1
_EARLIEST = -2
_MAX_TIMESTAMP = -3
_TS_CEILING = 2**63 - 1
_READ_COMMITTED = 1


def _lookup(ctx: RequestContext, topic: str, index: int, timestamp: int, committed: bool) -> dict:
    log = ctx.node.logs.partition(topic, index)
    if timestamp == _LATEST:
        offset = log.last_stable_offset if committed else log.log_end_offset
        return {"partition_index": index, "error_code": 0, "timestamp": -1, "offset": offset}
    if timestamp == _EARLIEST:
        return {
            "partition_index": index,
            "error_code": 0,
            "timestamp": -1,
            "offset": log.log_start_offset,
        }
    if timestamp == _MAX_TIMESTAMP:
        if ctx.api_version < 7:
            raise KafkaError(
                ErrorCode.unsupported_version,
                f"max timestamp (-3) for {topic}-{index} needs ListOffsets v7 or later",
            )
        found = _max_timestamp(log)
        if found is None:
            return {"partition_index": index, "error_code": 0, "timestamp": -1, "offset": -1}
        return {
            "partition_index": index,
            "error_code": 0,
            "timestamp": found[1],
            "offset": found[0],
        }
    if timestamp < 0:
        raise KafkaError(
            ErrorCode.invalid_request,
            f"timestamp {timestamp} for {topic}-{index} is not a time; use -1 (latest), "
            "-2 (earliest) or milliseconds since the epoch",
        )
    found = log.offset_for_timestamp(timestamp)
    if found is None or (committed and found[0] >= log.last_stable_offset):
        return {"partition_index": index, "error_code": 0, "timestamp": -1, "offset": -1}
    offset, ts = found
    return {"partition_index": index, "error_code": 0, "timestamp": ts, "offset": offset}


def _max_timestamp(log: PartitionLog) -> tuple[int, int] | None:
    """``(offset, timestamp)`` of the first record with the log's largest timestamp."""
    best = log.offset_for_timestamp(0)
    if best is None:
        return None
    lo, hi = best[1], _TS_CEILING  # some record has a timestamp >= lo; hi is an upper bound
    while lo < hi:
        mid = (lo + hi + 1) // 2
        found = log.offset_for_timestamp(mid)
        if found is None:
            hi = mid - 1
        else:
            best, lo = found, found[1]
    return best


@handles(2, 1, 7)
async def list_offsets(ctx: RequestContext, request: Any) -> Any:
    """Answer each partition independently; an error in one does not fail the others."""
    committed = getattr(request, "isolation_level", 0) == _READ_COMMITTED
    topics: list[dict[str, Any]] = []
    for req_topic in request.topics:
        name = req_topic.name
        parts: list[dict[str, Any]] = []
        for rp in req_topic.partitions:
            try:
                parts.append(_lookup(ctx, name, rp.partition_index, rp.timestamp, committed))
            except KafkaError as exc:
                parts.append(
                    {
                        "partition_index": rp.partition_index,
                        "error_code": exc.code,
                        "timestamp": -1,
                        "offset": -1,
                    }
                )
        topics.append({"name": name, "partitions": parts})
    return ctx.respond({"throttle_time_ms": 0, "topics": topics})
