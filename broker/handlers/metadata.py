"""Metadata (key 3): this node, its topics, and auto-creation of topics on first use.

There is one broker, so it is the controller, every partition's leader and the only
replica. The broker address is the advertised address of the listener the request came
in on, so clients on different networks each get an address they can reach.

Topics asked for that do not exist are created with ``num.partitions`` when
``auto.create.topics.enable`` is true and the request allows it (v4+ carries
``allow_auto_topic_creation``; older versions always allow it, as in Kafka).
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from broker.context import RequestContext
from broker.errors import ErrorCode, KafkaError
from broker.handlers import handles

__all__ = ["check_topic_name", "metadata"]

METADATA = 3
_LEGAL = re.compile(r"^[a-zA-Z0-9._-]+$")
_MAX_NAME = 249
_NOT_REQUESTED = -(2**31)
# READ, WRITE, CREATE, DELETE, ALTER, DESCRIBE, DESCRIBE_CONFIGS, ALTER_CONFIGS
_TOPIC_OPERATIONS = sum(1 << op for op in (3, 4, 5, 6, 7, 8, 10, 11))
# CREATE, ALTER, DESCRIBE, CLUSTER_ACTION, DESCRIBE_CONFIGS, ALTER_CONFIGS, IDEMPOTENT_WRITE
_CLUSTER_OPERATIONS = sum(1 << op for op in (5, 7, 8, 9, 10, 11, 12))


def check_topic_name(name: str | None) -> None:
    """Raise INVALID_TOPIC_EXCEPTION when ``name`` is not a legal Kafka topic name."""
    if not name:
        raise KafkaError(ErrorCode.invalid_topic_exception, "topic name is empty")
    if name in (".", ".."):
        raise KafkaError(ErrorCode.invalid_topic_exception, f"topic name {name!r} is not allowed")
    if len(name) > _MAX_NAME:
        raise KafkaError(
            ErrorCode.invalid_topic_exception,
            f"topic name {name[:40]!r}... is {len(name)} characters; at most {_MAX_NAME}",
        )
    if not _LEGAL.match(name):
        raise KafkaError(
            ErrorCode.invalid_topic_exception,
            f"topic name {name!r} may only contain ASCII letters, digits, '.', '_' and '-'",
        )


def topic_uuid(topic_id: bytes) -> uuid.UUID:
    return uuid.UUID(bytes=bytes(topic_id))


@handles(METADATA, 0, 12)
async def metadata(ctx: RequestContext, request: Any) -> Any:
    node = ctx.node
    logs = node.logs
    node_id = node.config.node_id
    host, port = node.advertised(ctx.listener)
    existing = logs.topics()
    requested = request.topics
    version = ctx.api_version

    entries: list[dict[str, Any]] = []
    if requested is None or (version == 0 and not requested):
        entries = [_topic_entry(info, node_id) for _, info in sorted(existing.items())]
    else:
        allow_auto = getattr(request, "allow_auto_topic_creation", True) and (
            node.config.get_bool("auto.create.topics.enable", True)
        )
        by_id: dict[uuid.UUID, Any] | None = None
        for item in requested:
            name = item.name
            if name is None:
                topic_id = getattr(item, "topic_id", None)
                if by_id is None:
                    by_id = {topic_uuid(i.topic_id): i for i in existing.values()}
                info = by_id.get(topic_id) if topic_id is not None else None
                if info is None:
                    entries.append(
                        _error_entry(None, ErrorCode.unknown_topic_id, topic_id=topic_id)
                    )
                else:
                    entries.append(_topic_entry(info, node_id))
                continue
            info = existing.get(name)
            if info is None:
                try:
                    check_topic_name(name)
                except KafkaError as exc:
                    entries.append(_error_entry(name, exc.code))
                    continue
                if not allow_auto:
                    entries.append(_error_entry(name, ErrorCode.unknown_topic_or_partition))
                    continue
                try:
                    info = logs.create_topic(name, node.config.get_int("num.partitions"), {})
                except KafkaError as exc:
                    if exc.code == ErrorCode.topic_already_exists:
                        info = logs.topics().get(name)
                    if info is None:
                        entries.append(_error_entry(name, exc.code))
                        continue
            entries.append(_topic_entry(info, node_id))

    include_ops = getattr(request, "include_topic_authorized_operations", False)
    if include_ops:
        for entry in entries:
            entry["topic_authorized_operations"] = _TOPIC_OPERATIONS
    include_cluster_ops = getattr(request, "include_cluster_authorized_operations", False)
    return ctx.respond(
        {
            "throttle_time_ms": 0,
            "brokers": [{"node_id": node_id, "host": host, "port": port, "rack": None}],
            "cluster_id": node.config.cluster_id,
            "controller_id": node_id,
            "topics": entries,
            "cluster_authorized_operations": (
                _CLUSTER_OPERATIONS if include_cluster_ops else _NOT_REQUESTED
            ),
        }
    )


def _topic_entry(info: Any, node_id: int) -> dict[str, Any]:
    return {
        "error_code": ErrorCode.none,
        "name": info.name,
        "topic_id": topic_uuid(info.topic_id),
        "is_internal": bool(info.internal),
        "partitions": [
            {
                "error_code": ErrorCode.none,
                "partition_index": p,
                "leader_id": node_id,
                "leader_epoch": 0,
                "replica_nodes": (node_id,),
                "isr_nodes": (node_id,),
                "offline_replicas": (),
            }
            for p in range(info.partitions)
        ],
        "topic_authorized_operations": _NOT_REQUESTED,
    }


def _error_entry(
    name: str | None, code: ErrorCode, *, topic_id: uuid.UUID | None = None
) -> dict[str, Any]:
    return {
        "error_code": code,
        "name": name,
        "topic_id": topic_id or uuid.UUID(int=0),
        "is_internal": False,
        "partitions": [],
        "topic_authorized_operations": _NOT_REQUESTED,
    }
