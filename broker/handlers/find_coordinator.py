"""FindCoordinator (API key 10): on one node, this node coordinates every group and
every transactional id.

v0..v3 ask for one key; v4 (flexible) batches keys and answers one entry per key.
Key type 0 is a consumer group, 1 a transactional id; anything else is INVALID_REQUEST.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from broker.errors import ErrorCode
from broker.handlers import handles

if TYPE_CHECKING:
    from broker.context import RequestContext

__all__ = ["find_coordinator"]

GROUP_KEY = 0
TRANSACTION_KEY = 1


def _answer(ctx: RequestContext, key_type: int) -> dict[str, Any]:
    if key_type not in (GROUP_KEY, TRANSACTION_KEY):
        return {
            "error_code": ErrorCode.invalid_request,
            "error_message": f"unknown coordinator key type {key_type} (0 group, 1 transaction)",
            "node_id": -1,
            "host": "",
            "port": -1,
        }
    groups = getattr(ctx.node, "groups", None)
    if key_type == GROUP_KEY and (groups is None or not groups.ready):
        return {
            "error_code": ErrorCode.coordinator_not_available,
            "error_message": "group coordinator not running yet",
            "node_id": -1,
            "host": "",
            "port": -1,
        }
    host, port = ctx.node.advertised(ctx.listener)
    return {
        "error_code": ErrorCode.none,
        "error_message": None,
        "node_id": ctx.node.config.node_id,
        "host": host,
        "port": port,
    }


@handles(10, 0, 4)
async def find_coordinator(ctx: RequestContext, request: Any) -> Any:
    key_type = getattr(request, "key_type", GROUP_KEY)
    if ctx.api_version >= 4:
        return ctx.respond(
            {
                "coordinators": [
                    {"key": key, **_answer(ctx, key_type)} for key in request.coordinator_keys
                ]
            }
        )
    return ctx.respond(_answer(ctx, key_type))
