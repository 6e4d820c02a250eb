"""Topic administration: CreateTopics, DeleteTopics, CreatePartitions, DeleteRecords and
topic configs.

Each topic or resource in a request gets its own result: one bad topic never fails the
others, and each refusal carries a message that says what to do instead. This broker is
a single node, so a replication factor above 1 and partition reassignment onto other
brokers are refused with that reason.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from typing import Any

from broker.context import RequestContext
from broker.errors import ErrorCode, KafkaError
from broker.handlers import handles
from broker.handlers.metadata import check_topic_name, topic_uuid

CREATE_TOPICS = 19
DELETE_TOPICS = 20
DELETE_RECORDS = 21
DESCRIBE_CONFIGS = 32
ALTER_CONFIGS = 33
CREATE_PARTITIONS = 37
INCREMENTAL_ALTER_CONFIGS = 44

RESOURCE_TOPIC = 2
RESOURCE_BROKER = 4
OP_SET, OP_DELETE, OP_APPEND, OP_SUBTRACT = 0, 1, 2, 3
SOURCE_STATIC_BROKER = 4
SOURCE_DEFAULT = 5
# DescribeConfigs v3+ config_type codes.
_TYPE_CODES = {"boolean": 1, "string": 2, "int": 3, "short": 4, "long": 5, "double": 6, "list": 7}


def _config_defs() -> Mapping[str, Any]:
    try:
        from broker.log.topic_config import CONFIG_DEFS
    except ImportError:  # pragma: no cover - the log package always ships it
        return {}
    return CONFIG_DEFS


def _one_node(rf: int, node_id: int) -> None:
    if rf == -1 or rf == 1:
        return
    raise KafkaError(
        ErrorCode.invalid_replication_factor,
        f"replication factor {rf} is not possible: this broker has one node "
        f"(node {node_id}), so only 1 is",
    )


# -- CreateTopics -------------------------------------------------------------------------


@handles(CREATE_TOPICS, 2, 7)
async def create_topics(ctx: RequestContext, request: Any) -> Any:
    node = ctx.node
    node_id = node.config.node_id
    validate_only = bool(getattr(request, "validate_only", False))
    names = [t.name for t in request.topics]
    results = []
    for topic in request.topics:
        result: dict[str, Any] = {"name": topic.name, "replication_factor": 1}
        try:
            if names.count(topic.name) > 1:
                raise KafkaError(
                    ErrorCode.invalid_request, f"topic {topic.name} is listed more than once"
                )
            check_topic_name(topic.name)
            _one_node(topic.replication_factor, node_id)
            count = topic.num_partitions
            if topic.assignments:
                if count != -1:
                    raise KafkaError(
                        ErrorCode.invalid_request,
                        "give either num_partitions or replica assignments, not both",
                    )
                for a in topic.assignments:
                    if tuple(a.broker_ids) != (node_id,):
                        raise KafkaError(
                            ErrorCode.invalid_replica_assignment,
                            f"partition {a.partition_index} is assigned to brokers "
                            f"{list(a.broker_ids)}; this broker has one node ({node_id})",
                        )
                count = len(topic.assignments)
            if count == -1:
                count = node.config.get_int("num.partitions")
            if count < 1:
                raise KafkaError(
                    ErrorCode.invalid_partitions,
                    f"topic {topic.name}: number of partitions must be at least 1, got {count}",
                )
            configs: dict[str, str] = {}
            for c in topic.configs:
                if c.value is None:
                    raise KafkaError(
                        ErrorCode.invalid_config, f"config {c.name} of {topic.name} has no value"
                    )
                configs[c.name] = c.value
            info = node.logs.create_topic(topic.name, count, configs, validate_only=validate_only)
            result.update(
                error_code=ErrorCode.none,
                num_partitions=count,
                topic_id=topic_uuid(info.topic_id) if not validate_only else uuid.UUID(int=0),
                configs=_created_configs(node, topic.name, configs, validate_only),
            )
        except KafkaError as exc:
            result.update(
                error_code=exc.code,
                error_message=exc.message,
                num_partitions=-1,
                replication_factor=-1,
                topic_id=uuid.UUID(int=0),
            )
        results.append(result)
    return ctx.respond({"throttle_time_ms": 0, "topics": results})


def _created_configs(
    node: Any, name: str, configs: Mapping[str, str], validate_only: bool
) -> list[dict[str, Any]]:
    if validate_only:
        return [
            {"name": k, "value": v, "read_only": False, "config_source": 1, "is_sensitive": False}
            for k, v in sorted(configs.items())
        ]
    return [
        {
            "name": e.name,
            "value": e.value,
            "read_only": e.read_only,
            "config_source": e.source,
            "is_sensitive": e.sensitive,
        }
        for e in node.logs.describe_configs(name)
    ]


# -- DeleteTopics -------------------------------------------------------------------------


@handles(DELETE_TOPICS, 1, 6)
async def delete_topics(ctx: RequestContext, request: Any) -> Any:
    node = ctx.node
    existing = node.logs.topics()
    wanted: list[tuple[str | None, uuid.UUID | None]]
    if hasattr(request, "topic_names"):
        wanted = [(name, None) for name in request.topic_names]
    else:
        wanted = [(t.name, t.topic_id) for t in request.topics]
    enabled = node.config.get_bool("delete.topic.enable", True)
    results = []
    for name, topic_id in wanted:
        result: dict[str, Any] = {"name": name, "topic_id": topic_id or uuid.UUID(int=0)}
        try:
            if not enabled:
                raise KafkaError(
                    ErrorCode.topic_deletion_disabled,
                    "topic deletion is disabled on this broker (delete.topic.enable=false)",
                )
            if name is None and topic_id is not None and topic_id.int != 0:
                match = [i for i in existing.values() if topic_uuid(i.topic_id) == topic_id]
                if not match:
                    raise KafkaError(ErrorCode.unknown_topic_id, f"no topic has id {topic_id}")
                name = match[0].name
                result["name"] = name
            if name is None or name not in existing:
                raise KafkaError(
                    ErrorCode.unknown_topic_or_partition, f"topic {name} does not exist"
                )
            result["topic_id"] = topic_uuid(existing[name].topic_id)
            node.logs.delete_topic(name)
            result["error_code"] = ErrorCode.none
        except KafkaError as exc:
            result.update(error_code=exc.code, error_message=exc.message)
        results.append(result)
    return ctx.respond({"throttle_time_ms": 0, "responses": results})


# -- CreatePartitions ---------------------------------------------------------------------


@handles(CREATE_PARTITIONS, 0, 3)
async def create_partitions(ctx: RequestContext, request: Any) -> Any:
    node = ctx.node
    node_id = node.config.node_id
    validate_only = bool(request.validate_only)
    results = []
    for topic in request.topics:
        result: dict[str, Any] = {"name": topic.name, "error_code": ErrorCode.none}
        try:
            info = node.logs.topics().get(topic.name)
            if info is None:
                raise KafkaError(
                    ErrorCode.unknown_topic_or_partition, f"topic {topic.name} does not exist"
                )
            if topic.count <= info.partitions:
                raise KafkaError(
                    ErrorCode.invalid_partitions,
                    f"topic {topic.name} has {info.partitions} partitions; partitions can only "
                    f"be added, so the new count must be above {info.partitions} "
                    f"(asked for {topic.count})",
                )
            for a in topic.assignments or ():
                if tuple(a.broker_ids) != (node_id,):
                    raise KafkaError(
                        ErrorCode.invalid_replica_assignment,
                        f"assignment to brokers {list(a.broker_ids)} is not possible: "
                        f"this broker has one node ({node_id})",
                    )
            node.logs.create_partitions(topic.name, topic.count, validate_only=validate_only)
        except KafkaError as exc:
            result.update(error_code=exc.code, error_message=exc.message)
        results.append(result)
    return ctx.respond({"throttle_time_ms": 0, "results": results})


# -- DeleteRecords ------------------------------------------------------------------------


@handles(DELETE_RECORDS, 0, 2)
async def delete_records(ctx: RequestContext, request: Any) -> Any:
    """Advance each partition's log start offset (offset -1 means the high watermark).

    Records below it become unreadable at once (fetching there is OFFSET_OUT_OF_RANGE,
    "earliest" resolves to it); the segments holding them go with retention.
    """
    logs = ctx.node.logs
    topics = []
    for topic in request.topics:
        parts = []
        for p in topic.partitions:
            try:
                low = logs.partition(topic.name, p.partition_index).delete_records_before(p.offset)
                parts.append({"partition_index": p.partition_index, "low_watermark": low})
            except KafkaError as exc:
                parts.append(
                    {
                        "partition_index": p.partition_index,
                        "low_watermark": -1,
                        "error_code": exc.code,
                    }
                )
        topics.append({"name": topic.name, "partitions": parts})
    return ctx.respond({"throttle_time_ms": 0, "topics": topics})


# -- DescribeConfigs ----------------------------------------------------------------------


@handles(DESCRIBE_CONFIGS, 1, 4)
async def describe_configs(ctx: RequestContext, request: Any) -> Any:
    include_synonyms = bool(getattr(request, "include_synonyms", False))
    results = []
    for res in request.resources:
        keys = set(res.configuration_keys) if res.configuration_keys is not None else None
        result: dict[str, Any] = {
            "resource_type": res.resource_type,
            "resource_name": res.resource_name,
            "error_code": ErrorCode.none,
            "configs": [],
        }
        try:
            entries = _describe(ctx, res.resource_type, res.resource_name)
            result["configs"] = [
                _config_result(e, include_synonyms)
                for e in entries
                if keys is None or e["name"] in keys
            ]
        except KafkaError as exc:
            result.update(error_code=exc.code, error_message=exc.message)
        results.append(result)
    return ctx.respond({"throttle_time_ms": 0, "results": results})


def _describe(ctx: RequestContext, resource_type: int, name: str) -> list[dict[str, Any]]:
    node = ctx.node
    if resource_type == RESOURCE_TOPIC:
        if name not in node.logs.topics():
            raise KafkaError(ErrorCode.unknown_topic_or_partition, f"topic {name} does not exist")
        defs = _config_defs()
        return [
            {
                "name": e.name,
                "value": e.value,
                "read_only": e.read_only,
                "config_source": e.source,
                "is_sensitive": e.sensitive,
                "config_type": _TYPE_CODES.get(getattr(defs.get(e.name), "type", ""), 0),
            }
            for e in node.logs.describe_configs(name)
        ]
    if resource_type == RESOURCE_BROKER:
        _check_broker(ctx, name)
        config = node.config
        return [
            {
                "name": key,
                "value": value,
                "read_only": True,
                "config_source": (
                    SOURCE_STATIC_BROKER if config.is_explicit(key) else SOURCE_DEFAULT
                ),
                "is_sensitive": False,
                "config_type": 0,
            }
            for key, value in sorted(config.items().items())
        ]
    raise KafkaError(
        ErrorCode.invalid_request,
        f"resource type {resource_type} is not supported; use 2 (topic) or 4 (broker)",
    )


def _check_broker(ctx: RequestContext, name: str) -> None:
    node_id = ctx.node.config.node_id
    if name not in ("", str(node_id)):
        raise KafkaError(
            ErrorCode.invalid_request, f"broker {name!r} is not this broker (node {node_id})"
        )


def _config_result(entry: dict[str, Any], include_synonyms: bool) -> dict[str, Any]:
    out = dict(entry)
    out["documentation"] = None
    out["synonyms"] = (
        [{"name": entry["name"], "value": entry["value"], "source": entry["config_source"]}]
        if include_synonyms
        else []
    )
    return out


# -- AlterConfigs / IncrementalAlterConfigs -----------------------------------------------


def _broker_is_static(ctx: RequestContext, name: str) -> None:
    _check_broker(ctx, name)
    raise KafkaError(
        ErrorCode.invalid_request,
        "broker configs cannot be changed at run time here; set them in server.properties "
        "or with --override and restart",
    )


@handles(ALTER_CONFIGS, 0, 2)
async def alter_configs(ctx: RequestContext, request: Any) -> Any:
    return _alter(ctx, request, _replacement, replace_all=True)


@handles(INCREMENTAL_ALTER_CONFIGS, 0, 1)
async def incremental_alter_configs(ctx: RequestContext, request: Any) -> Any:
    return _alter(ctx, request, _incremental, replace_all=False)


def _alter(
    ctx: RequestContext,
    request: Any,
    changes: Callable[[RequestContext, Any], tuple[dict[str, str], list[str]]],
    *,
    replace_all: bool,
) -> Any:
    """Both AlterConfigs flavours: they differ only in how a resource's entries become
    ``(set, delete)`` and whether unnamed configs fall back to their defaults."""
    logs = ctx.node.logs
    validate_only = bool(request.validate_only)
    responses = []
    for res in request.resources:
        result: dict[str, Any] = {
            "resource_type": res.resource_type,
            "resource_name": res.resource_name,
            "error_code": ErrorCode.none,
        }
        try:
            if res.resource_type == RESOURCE_BROKER:
                _broker_is_static(ctx, res.resource_name)
            _require_topic(ctx, res.resource_type, res.resource_name)
            set_, delete = changes(ctx, res)
            logs.alter_configs(
                res.resource_name,
                set_,
                delete,
                replace_all=replace_all,
                validate_only=validate_only,
            )
        except KafkaError as exc:
            result.update(error_code=exc.code, error_message=exc.message)
        responses.append(result)
    return ctx.respond({"throttle_time_ms": 0, "responses": responses})


def _replacement(ctx: RequestContext, res: Any) -> tuple[dict[str, str], list[str]]:
    """AlterConfigs: every named config is set (or deleted when its value is null)."""
    set_ = {c.name: c.value for c in res.configs if c.value is not None}
    delete = [c.name for c in res.configs if c.value is None]
    return set_, delete


def _require_topic(ctx: RequestContext, resource_type: int, name: str) -> None:
    if resource_type != RESOURCE_TOPIC:
        raise KafkaError(
            ErrorCode.invalid_request,
            f"resource type {resource_type} cannot be altered; use 2 (topic)",
        )
    if name not in ctx.node.logs.topics():
        raise KafkaError(ErrorCode.unknown_topic_or_partition, f"topic {name} does not exist")


def _incremental(ctx: RequestContext, res: Any) -> tuple[dict[str, str], list[str]]:
    names = [c.name for c in res.configs]
    current: dict[str, str | None] | None = None
    defs = _config_defs()
    set_: dict[str, str] = {}
    delete: list[str] = []
    for c in res.configs:
        if names.count(c.name) > 1:
            raise KafkaError(ErrorCode.invalid_request, f"config {c.name} appears more than once")
        op = c.config_operation
        if op == OP_SET:
            if c.value is None:
                raise KafkaError(ErrorCode.invalid_config, f"SET of {c.name} needs a value")
            set_[c.name] = c.value
        elif op == OP_DELETE:
            delete.append(c.name)
        elif op in (OP_APPEND, OP_SUBTRACT):
            kind = getattr(defs.get(c.name), "type", None)
            if kind is None:
                raise KafkaError(ErrorCode.invalid_config, f"unknown topic config {c.name!r}")
            if kind != "list":
                raise KafkaError(
                    ErrorCode.invalid_config,
                    f"{'APPEND' if op == OP_APPEND else 'SUBTRACT'} works on list configs "
                    f"only; {c.name} is a {kind}: use SET",
                )
            if current is None:
                current = {
                    e.name: e.value for e in ctx.node.logs.describe_configs(res.resource_name)
                }
            items = [i.strip() for i in (current.get(c.name) or "").split(",") if i.strip()]
            given = [i.strip() for i in (c.value or "").split(",") if i.strip()]
            if op == OP_APPEND:
                items += [i for i in given if i not in items]
            else:
                items = [i for i in items if i not in given]
            set_[c.name] = ",".join(items)
        else:
            raise KafkaError(
                ErrorCode.invalid_request,
                f"config operation {op} for {c.name} is unknown; use 0 SET, 1 DELETE, "
                "2 APPEND or 3 SUBTRACT",
            )
    return set_, delete
