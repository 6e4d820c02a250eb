"""The transactional producer APIs: AddPartitionsToTxn (24), AddOffsetsToTxn (25),
EndTxn (26) and TxnOffsetCommit (28).

The handlers translate between the wire entities and
:class:`broker.txn.TransactionCoordinator` (``ctx.node.txns``). AddPartitionsToTxn v4+
is the broker-to-broker batch form (KIP-890) and is not offered. Fencing answers
PRODUCER_FENCED from the versions that know it (KIP-588), INVALID_PRODUCER_EPOCH before.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from broker.errors import ErrorCode, KafkaError
from broker.handlers import handles
from broker.handlers.init_producer_id import fenced_code, txn_coordinator
from broker.txn.state import PendingOffset

if TYPE_CHECKING:
    from broker.context import RequestContext

__all__ = ["add_offsets_to_txn", "add_partitions_to_txn", "end_txn", "txn_offset_commit"]


@handles(24, 0, 3)
async def add_partitions_to_txn(ctx: RequestContext, request: Any) -> Any:
    wanted = [(t.name, p) for t in request.v3_and_below_topics for p in t.partitions]
    try:
        codes = txn_coordinator(ctx).add_partitions(
            request.v3_and_below_transactional_id,
            request.v3_and_below_producer_id,
            request.v3_and_below_producer_epoch,
            wanted,
        )
    except KafkaError as exc:
        codes = dict.fromkeys(wanted, exc.code)
    return ctx.respond(
        {
            "throttle_time_ms": 0,
            "results_by_topic_v3_and_below": [
                {
                    "name": t.name,
                    "results_by_partition": [
                        {
                            "partition_index": p,
                            "partition_error_code": fenced_code(codes[(t.name, p)], ctx, 2),
                        }
                        for p in t.partitions
                    ],
                }
                for t in request.v3_and_below_topics
            ],
        }
    )


@handles(25, 0, 3)
async def add_offsets_to_txn(ctx: RequestContext, request: Any) -> Any:
    try:
        code = txn_coordinator(ctx).add_offsets(
            request.transactional_id, request.producer_id, request.producer_epoch, request.group_id
        )
    except KafkaError as exc:
        code = exc.code
    return ctx.respond({"throttle_time_ms": 0, "error_code": fenced_code(code, ctx, 2)})


@handles(26, 0, 3)
async def end_txn(ctx: RequestContext, request: Any) -> Any:
    try:
        code = txn_coordinator(ctx).end_txn(
            request.transactional_id, request.producer_id, request.producer_epoch, request.committed
        )
    except KafkaError as exc:
        code = exc.code
    return ctx.respond({"throttle_time_ms": 0, "error_code": fenced_code(code, ctx, 2)})


@handles(28, 0, 3)
async def txn_offset_commit(ctx: RequestContext, request: Any) -> Any:
    offsets: dict[tuple[str, int], PendingOffset] = {}
    for t in request.topics:
        for p in t.partitions:
            epoch = getattr(p, "committed_leader_epoch", -1)
            offsets[(t.name, p.partition_index)] = PendingOffset(
                p.committed_offset, -1 if epoch is None else epoch, p.committed_metadata or ""
            )
    try:
        codes = _commit(ctx, request, offsets)
    except KafkaError as exc:
        codes = dict.fromkeys(offsets, exc.code)
    return ctx.respond(
        {
            "throttle_time_ms": 0,
            "topics": [
                {
                    "name": t.name,
                    "partitions": [
                        {
                            "partition_index": p.partition_index,
                            "error_code": fenced_code(codes[(t.name, p.partition_index)], ctx, 3),
                        }
                        for p in t.partitions
                    ],
                }
                for t in request.topics
            ],
        }
    )


def _commit(
    ctx: RequestContext, request: Any, offsets: dict[tuple[str, int], PendingOffset]
) -> dict[tuple[str, int], ErrorCode]:
    generation = getattr(request, "generation_id", -1)
    member_id = getattr(request, "member_id", "")
    groups = getattr(ctx.node, "groups", None)
    if groups is not None and (generation >= 0 or member_id):
        code = groups.check_txn_commit(
            request.group_id, generation, member_id, getattr(request, "group_instance_id", None)
        )
        if code is not ErrorCode.none:
            return dict.fromkeys(offsets, code)
    return txn_coordinator(ctx).txn_offset_commit(
        request.transactional_id,
        request.group_id,
        request.producer_id,
        request.producer_epoch,
        offsets,
    )
