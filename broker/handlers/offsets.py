"""OffsetCommit (API key 8) and OffsetFetch (API key 9): a group's committed offsets.

Commits go through :meth:`broker.group.GroupCoordinator.commit_offsets`, which checks the
member and generation like Kafka and writes ``__consumer_offsets``. OffsetFetch v8+ asks
for several groups at once; older versions for one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from broker.errors import ErrorCode, KafkaError
from broker.group import CommitRequest
from broker.group.coordinator import GroupCoordinator
from broker.handlers import handles
from broker.handlers.groups import coordinator

if TYPE_CHECKING:
    from broker.context import RequestContext

__all__ = ["offset_commit", "offset_fetch"]


@handles(8, 2, 8)
async def offset_commit(ctx: RequestContext, request: Any) -> Any:
    groups = coordinator(ctx)
    offsets: dict[tuple[str, int], tuple[int, int, str | None]] = {}
    for topic in request.topics:
        for p in topic.partitions:
            epoch = getattr(p, "committed_leader_epoch", -1)
            offsets[(topic.name, p.partition_index)] = (
                p.committed_offset,
                -1 if epoch is None else epoch,
                p.committed_metadata,
            )
    codes = groups.commit_offsets(
        CommitRequest(
            group_id=request.group_id,
            generation_id=request.generation_id_or_member_epoch,
            member_id=request.member_id,
            group_instance_id=getattr(request, "group_instance_id", None),
            offsets=offsets,
        )
    )
    return ctx.respond(
        {
            "topics": [
                {
                    "name": topic.name,
                    "partitions": [
                        {
                            "partition_index": p.partition_index,
                            "error_code": codes[(topic.name, p.partition_index)],
                        }
                        for p in topic.partitions
                    ],
                }
                for topic in request.topics
            ]
        }
    )


def _fetch_topics(
    groups: GroupCoordinator, group_id: str, topics: Any, txns: Any = None
) -> list[dict[str, Any]]:
    """``txns`` is given when the client asked for stable offsets (``require_stable``):
    a partition with an offset pending in an open transaction answers
    UNSTABLE_OFFSET_COMMIT, and the client retries."""
    wanted = None
    if topics is not None:
        wanted = [(t.name, p) for t in topics for p in t.partition_indexes]
    by_topic: dict[str, list[dict[str, Any]]] = {}
    for topic, partition, entry in groups.fetch_offsets(group_id, wanted):
        if txns is not None and txns.has_pending_offsets(group_id, topic, partition):
            by_topic.setdefault(topic, []).append(
                {
                    "partition_index": partition,
                    "committed_offset": -1,
                    "committed_leader_epoch": -1,
                    "metadata": "",
                    "error_code": ErrorCode.unstable_offset_commit,
                }
            )
            continue
        by_topic.setdefault(topic, []).append(
            {
                "partition_index": partition,
                "committed_offset": entry.offset if entry else -1,
                "committed_leader_epoch": entry.leader_epoch if entry else -1,
                "metadata": entry.metadata if entry else "",
                "error_code": ErrorCode.none,
            }
        )
    return [{"name": name, "partitions": parts} for name, parts in by_topic.items()]


@handles(9, 1, 8)
async def offset_fetch(ctx: RequestContext, request: Any) -> Any:
    txns = getattr(ctx.node, "txns", None) if getattr(request, "require_stable", False) else None
    if ctx.api_version >= 8:
        out = []
        for g in request.groups:
            try:
                topics = _fetch_topics(coordinator(ctx), g.group_id, g.topics, txns)
                out.append({"group_id": g.group_id, "topics": topics, "error_code": 0})
            except KafkaError as exc:
                out.append({"group_id": g.group_id, "topics": [], "error_code": exc.code})
        return ctx.respond({"groups": out})
    topics = _fetch_topics(
        coordinator(ctx), request.group_id, getattr(request, "topics", None), txns
    )
    return ctx.respond({"topics": topics, "error_code": ErrorCode.none})
