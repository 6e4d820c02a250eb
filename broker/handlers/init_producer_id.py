"""InitProducerId (API key 22): producer ids for idempotent and transactional producers.

Without a transactional id every call gets a fresh producer id at epoch 0 (which is also
how an idempotent producer "bumps" its epoch). With one, the transaction coordinator
bumps the epoch and fences the previous producer of that id (aborting its open
transaction). v3+ may carry the producer's current id and epoch (KIP-360); v2+ is
flexible. Fencing answers PRODUCER_FENCED from v4 on (KIP-588), INVALID_PRODUCER_EPOCH
before.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from broker.errors import ErrorCode, KafkaError
from broker.handlers import handles

if TYPE_CHECKING:
    from broker.context import RequestContext

__all__ = ["fenced_code", "init_producer_id", "txn_coordinator"]


def txn_coordinator(ctx: RequestContext) -> Any:
    """The node's transaction coordinator, or COORDINATOR_NOT_AVAILABLE without one."""
    txns = getattr(ctx.node, "txns", None)
    if txns is None:
        raise KafkaError(ErrorCode.coordinator_not_available, "transaction coordinator not running")
    return txns


def fenced_code(code: ErrorCode, ctx: RequestContext, first_fenced_version: int) -> ErrorCode:
    """PRODUCER_FENCED for versions that know it, INVALID_PRODUCER_EPOCH for older ones."""
    if code is ErrorCode.producer_fenced and ctx.api_version < first_fenced_version:
        return ErrorCode.invalid_producer_epoch
    return code


@handles(22, 0, 4)
async def init_producer_id(ctx: RequestContext, request: Any) -> Any:
    timeout = request.transaction_timeout
    timeout_ms = (
        int(timeout.total_seconds() * 1000) if hasattr(timeout, "total_seconds") else timeout
    )
    try:
        code, pid, epoch = txn_coordinator(ctx).init_producer_id(
            request.transactional_id,
            timeout_ms,
            getattr(request, "producer_id", -1),
            getattr(request, "producer_epoch", -1),
        )
    except KafkaError as exc:
        code, pid, epoch = exc.code, -1, -1
    return ctx.respond(
        {
            "throttle_time_ms": 0,
            "error_code": fenced_code(code, ctx, 4),
            "producer_id": pid,
            "producer_epoch": epoch,
        }
    )
