"""The classic consumer group APIs: JoinGroup, SyncGroup, Heartbeat, LeaveGroup,
DescribeGroups, ListGroups and DeleteGroups.

The handlers only translate between the wire entities and
:class:`broker.group.GroupCoordinator` (``ctx.node.groups``); every rule lives there.
Protocol metadata and assignments pass through as opaque bytes, so any assignor works.
"""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING, Any

from broker.errors import ErrorCode, KafkaError
from broker.group import GroupCoordinator, JoinRequest
from broker.handlers import handles

if TYPE_CHECKING:
    from broker.context import RequestContext

__all__ = [
    "coordinator",
    "delete_groups",
    "describe_groups",
    "heartbeat",
    "join_group",
    "leave_group",
    "list_groups",
    "sync_group",
]

UNKNOWN_AUTHORIZED_OPERATIONS = -(2**31)


def coordinator(ctx: RequestContext) -> GroupCoordinator:
    """The node's group coordinator, or COORDINATOR_NOT_AVAILABLE while it has none."""
    groups = getattr(ctx.node, "groups", None)
    if groups is None or not groups.ready:
        raise KafkaError(ErrorCode.coordinator_not_available, "group coordinator not running")
    return groups


def _ms(value: Any) -> int:
    if isinstance(value, datetime.timedelta):
        return int(value.total_seconds() * 1000)
    return int(value)


def _client_host(ctx: RequestContext) -> str:
    host = ctx.peer.rsplit(":", 1)[0] if ctx.peer else ""
    return "/" + host.strip("[]")


@handles(11, 0, 9)
async def join_group(ctx: RequestContext, request: Any) -> Any:
    groups = coordinator(ctx)
    session_timeout = _ms(request.session_timeout)
    rebalance = getattr(request, "rebalance_timeout", None)
    req = JoinRequest(
        group_id=request.group_id,
        member_id=request.member_id,
        group_instance_id=getattr(request, "group_instance_id", None),
        client_id=ctx.client_id or "",
        client_host=_client_host(ctx),
        session_timeout_ms=session_timeout,
        rebalance_timeout_ms=session_timeout if rebalance is None else _ms(rebalance),
        protocol_type=request.protocol_type,
        protocols=[(p.name, bytes(p.metadata)) for p in request.protocols],
        require_known_member_id=ctx.api_version >= 4,
    )
    result = await groups.join_group(req)
    nullable = ctx.api_version >= 7
    return ctx.respond(
        {
            "error_code": result.error_code,
            "generation_id": result.generation_id,
            "protocol_type": result.protocol_type if nullable else result.protocol_type or "",
            "protocol_name": result.protocol_name if nullable else result.protocol_name or "",
            "leader": result.leader,
            "member_id": result.member_id,
            "skip_assignment": result.skip_assignment,
            "members": [
                {"member_id": mid, "group_instance_id": iid, "metadata": meta}
                for mid, iid, meta in result.members
            ],
        }
    )


@handles(14, 0, 5)
async def sync_group(ctx: RequestContext, request: Any) -> Any:
    groups = coordinator(ctx)
    result = await groups.sync_group(
        request.group_id,
        request.generation_id,
        request.member_id,
        getattr(request, "group_instance_id", None),
        {a.member_id: bytes(a.assignment) for a in request.assignments},
        getattr(request, "protocol_type", None),
        getattr(request, "protocol_name", None),
    )
    return ctx.respond(
        {
            "error_code": result.error_code,
            "protocol_type": result.protocol_type,
            "protocol_name": result.protocol_name,
            "assignment": result.assignment,
        }
    )


@handles(12, 0, 4)
async def heartbeat(ctx: RequestContext, request: Any) -> Any:
    code = coordinator(ctx).heartbeat(
        request.group_id,
        request.generation_id,
        request.member_id,
        getattr(request, "group_instance_id", None),
    )
    return ctx.respond({"error_code": code})


@handles(13, 0, 5)
async def leave_group(ctx: RequestContext, request: Any) -> Any:
    groups = coordinator(ctx)
    if ctx.api_version < 3:
        (code,) = groups.leave_group(request.group_id, [(request.member_id, None)])
        return ctx.respond({"error_code": code})
    leaving = [(m.member_id, m.group_instance_id) for m in request.members]
    codes = groups.leave_group(request.group_id, leaving)
    return ctx.respond(
        {
            "error_code": ErrorCode.none,
            "members": [
                {"member_id": mid, "group_instance_id": iid, "error_code": code}
                for (mid, iid), code in zip(leaving, codes, strict=True)
            ],
        }
    )


@handles(15, 0, 5)
async def describe_groups(ctx: RequestContext, request: Any) -> Any:
    groups = coordinator(ctx)
    out = []
    for group_id in request.groups:
        if not group_id:
            out.append({"error_code": ErrorCode.invalid_group_id, "group_id": group_id})
            continue
        s = groups.describe(group_id)
        out.append(
            {
                "error_code": ErrorCode.none,
                "group_id": group_id,
                "group_state": s.state,
                "protocol_type": s.protocol_type,
                "protocol_data": s.protocol_name,
                "members": [
                    {
                        "member_id": mid,
                        "group_instance_id": iid,
                        "client_id": cid,
                        "client_host": host,
                        "member_metadata": meta,
                        "member_assignment": assignment,
                    }
                    for mid, iid, cid, host, meta, assignment in s.members
                ],
                "authorized_operations": UNKNOWN_AUTHORIZED_OPERATIONS,
            }
        )
    return ctx.respond({"groups": out})


@handles(16, 0, 4)
async def list_groups(ctx: RequestContext, request: Any) -> Any:
    listed = coordinator(ctx).list_groups(getattr(request, "states_filter", ()) or ())
    return ctx.respond(
        {
            "error_code": ErrorCode.none,
            "groups": [
                {"group_id": gid, "protocol_type": ptype, "group_state": state}
                for gid, ptype, state in listed
            ],
        }
    )


@handles(42, 0, 2)
async def delete_groups(ctx: RequestContext, request: Any) -> Any:
    groups = coordinator(ctx)
    return ctx.respond(
        {
            "results": [
                {"group_id": gid, "error_code": groups.delete_group(gid)}
                for gid in request.groups_names
            ]
        }
    )
