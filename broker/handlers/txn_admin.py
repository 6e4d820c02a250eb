"""DescribeTransactions (API key 65) and ListTransactions (API key 66), v0: the admin view
of the transaction coordinator (``kafka-transactions.sh`` and AdminClient use them).

State names are Kafka's (``Empty``, ``Ongoing``, ``PrepareCommit``, ``CompleteAbort``...);
an unknown state filter is echoed back in ``unknown_state_filters``, as Kafka does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from broker.errors import ErrorCode, KafkaError
from broker.handlers import handles
from broker.handlers.init_producer_id import txn_coordinator
from broker.txn.state import TxnState

if TYPE_CHECKING:
    from broker.context import RequestContext

__all__ = ["describe_transactions", "list_transactions"]

_STATE_NAMES = {s.kafka_name: s for s in TxnState}


@handles(65, 0, 0)
async def describe_transactions(ctx: RequestContext, request: Any) -> Any:
    out: list[dict[str, Any]] = []
    try:
        txns = txn_coordinator(ctx).txns
    except KafkaError as exc:
        txns, failure = {}, exc.code
    else:
        failure = ErrorCode.transactional_id_not_found
    for txn_id in request.transactional_ids:
        meta = txns.get(txn_id)
        if meta is None:
            out.append(
                {
                    "error_code": failure,
                    "transactional_id": txn_id,
                    "transaction_start_time": 0,
                    "producer_id": -1,
                }
            )
            continue
        by_topic: dict[str, list[int]] = {}
        for topic, partition in sorted(meta.partitions):
            by_topic.setdefault(topic, []).append(partition)
        out.append(
            {
                "error_code": ErrorCode.none,
                "transactional_id": txn_id,
                "transaction_state": meta.state.kafka_name,
                "transaction_timeout_ms": meta.timeout_ms,
                # kio cannot encode Kafka's -1 ("none") here: 0 stands for no open transaction.
                "transaction_start_time": meta.start_ms if meta.state is TxnState.ONGOING else 0,
                "producer_id": meta.producer_id,
                "producer_epoch": meta.producer_epoch,
                "topics": [{"topic": t, "partitions": ps} for t, ps in by_topic.items()],
            }
        )
    return ctx.respond({"throttle_time_ms": 0, "transaction_states": out})


@handles(66, 0, 0)
async def list_transactions(ctx: RequestContext, request: Any) -> Any:
    filters = list(request.state_filters)
    unknown = [f for f in filters if f not in _STATE_NAMES]
    states = {_STATE_NAMES[f] for f in filters if f in _STATE_NAMES}
    pids = set(request.producer_id_filters)
    try:
        txns = txn_coordinator(ctx).txns
    except KafkaError as exc:
        return ctx.respond({"throttle_time_ms": 0, "error_code": exc.code})
    found = [
        {
            "transactional_id": m.transactional_id,
            "producer_id": m.producer_id,
            "transaction_state": m.state.kafka_name,
        }
        for m in txns.values()
        if (not filters or m.state in states) and (not pids or m.producer_id in pids)
    ]
    return ctx.respond(
        {
            "throttle_time_ms": 0,
            "error_code": ErrorCode.none,
            "unknown_state_filters": unknown,
            "transaction_states": found,
        }
    )
