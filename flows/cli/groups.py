"""``flows groups list|describe|reset-offsets`` -- consumer groups, like kafka-consumer-groups.sh.

Works against any Kafka-compatible broker through aiokafka's admin client and consumer:
``describe`` joins the committed offsets (OffsetFetch), the partitions' end offsets
(ListOffsets) and the owners from DescribeGroups; ``reset-offsets`` commits new offsets
from outside the group protocol, which the broker allows only while the group has no
members -- so it refuses on an active group and is a dry run unless ``--execute``.
"""

from __future__ import annotations

import datetime
import json
import struct
from dataclasses import asdict, dataclass
from typing import Annotated, Any

import typer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import OffsetAndMetadata, TopicPartition

from flows.cli import app
from flows.cli._common import (
    BrokerOption,
    CliError,
    admin_client,
    consumer_client,
    handle_errors,
    kafka_error_name,
    print_table,
    resolve_bootstrap,
    run,
    topic_partitions,
)

groups_app = typer.Typer(help="List, describe and reset consumer groups.", no_args_is_help=True)
app.add_typer(groups_app, name="groups")

FormatOption = Annotated[
    str,
    typer.Option("--format", help="Output format: table or json.", show_default=True),
]


@dataclass(slots=True)
class PartitionRow:
    topic: str
    partition: int
    committed_offset: int | None
    end_offset: int
    lag: int | None
    consumer_id: str | None
    host: str | None
    client_id: str | None


def _check_format(fmt: str) -> None:
    if fmt not in ("table", "json"):
        raise CliError(f"invalid --format {fmt!r}: use table or json")


# --- list ---------------------------------------------------------------------------------


@groups_app.command("list")
@handle_errors
def list_groups(broker: BrokerOption = None, fmt: FormatOption = "table") -> None:
    """List consumer groups with their protocol type and state."""
    _check_format(fmt)
    bootstrap = resolve_bootstrap(broker)
    rows = run(_list(bootstrap))
    if fmt == "json":
        typer.echo(json.dumps([{"group": g, "protocol_type": p, "state": s} for g, p, s in rows]))
        return
    print_table(["GROUP", "PROTOCOL TYPE", "STATE"], rows)


async def _list(bootstrap: str) -> list[tuple[str, str, str]]:
    async with admin_client(bootstrap) as admin:
        listed = await admin.list_consumer_groups()
        names = sorted({str(entry[0]) for entry in listed})
        states = {}
        for name in names:
            description = await _describe_raw(admin, name)
            states[name] = (description["protocol_type"], description["state"])
    return [(name, *states[name]) for name in names]


# --- describe -----------------------------------------------------------------------------


async def _describe_raw(admin: AIOKafkaAdminClient, group: str) -> dict[str, Any]:
    responses = await admin.describe_consumer_groups([group])
    for response in responses:
        for entry in response.to_object()["groups"]:
            if entry["group"] == group:
                if entry["error_code"]:
                    name = kafka_error_name(entry["error_code"])
                    raise CliError(f"cannot describe group {group!r}: {name}")
                return dict(entry)
    raise CliError(f"cannot describe group {group!r}: the broker did not answer for it")


def parse_assignment(data: bytes) -> list[tuple[str, int]]:
    """The (topic, partition) pairs of a consumer-protocol assignment (empty if not one).

    >>> raw = bytes.fromhex("0000" "00000001" "0001" "74" "00000002" "00000000" "00000003")
    >>> parse_assignment(raw + bytes.fromhex("ffffffff"))
    [('t', 0), ('t', 3)]
    """
    out: list[tuple[str, int]] = []
    try:
        pos = 2
        (n_topics,) = struct.unpack_from(">i", data, pos)
        pos += 4
        for _ in range(max(n_topics, 0)):
            (n,) = struct.unpack_from(">h", data, pos)
            topic = data[pos + 2 : pos + 2 + n].decode()
            pos += 2 + n
            (n_parts,) = struct.unpack_from(">i", data, pos)
            pos += 4
            for _ in range(max(n_parts, 0)):
                (p,) = struct.unpack_from(">i", data, pos)
                pos += 4
                out.append((topic, p))
    except (struct.error, UnicodeDecodeError):
        return []
    return out


async def _describe(bootstrap: str, group: str) -> tuple[dict[str, Any], list[PartitionRow]]:
    async with admin_client(bootstrap) as admin:
        description = await _describe_raw(admin, group)
        if description["state"] == "Dead":
            raise CliError(f"consumer group {group!r} does not exist (see `flows groups list`)")
        committed = await admin.list_consumer_group_offsets(group)
    owners: dict[tuple[str, int], tuple[str, str, str]] = {}
    for member in description["members"]:
        for tp in parse_assignment(member["member_assignment"]):
            owners[tp] = (member["member_id"], member["client_host"], member["client_id"])
    wanted = {(tp.topic, tp.partition) for tp, om in committed.items() if om.offset >= 0}
    wanted |= set(owners)
    tps = [TopicPartition(t, p) for t, p in sorted(wanted)]
    ends: dict[TopicPartition, int] = {}
    if tps:
        async with consumer_client(bootstrap, enable_auto_commit=False) as consumer:
            ends = await consumer.end_offsets(tps)
    rows = []
    for tp in tps:
        om = committed.get(tp)
        offset = om.offset if om is not None and om.offset >= 0 else None
        end = ends.get(tp, -1)
        owner = owners.get((tp.topic, tp.partition))
        rows.append(
            PartitionRow(
                topic=tp.topic,
                partition=tp.partition,
                committed_offset=offset,
                end_offset=end,
                lag=max(end - offset, 0) if offset is not None else None,
                consumer_id=owner[0] if owner else None,
                host=owner[1] if owner else None,
                client_id=owner[2] if owner else None,
            )
        )
    return description, rows


def _cell(value: object) -> str:
    return "-" if value is None else str(value)


@groups_app.command("describe")
@handle_errors
def describe_group(
    group: Annotated[str, typer.Argument(help="The consumer group id.")],
    broker: BrokerOption = None,
    fmt: FormatOption = "table",
) -> None:
    """Per partition: committed offset, end offset, lag and the owning member."""
    _check_format(fmt)
    bootstrap = resolve_bootstrap(broker)
    description, rows = run(_describe(bootstrap, group))
    if fmt == "json":
        doc = {
            "group": group,
            "state": description["state"],
            "protocol_type": description["protocol_type"],
            "protocol": description["protocol"],
            "members": [
                {
                    "consumer_id": m["member_id"],
                    "host": m["client_host"],
                    "client_id": m["client_id"],
                }
                for m in description["members"]
            ],
            "partitions": [asdict(r) for r in rows],
        }
        typer.echo(json.dumps(doc))
        return
    title = f"group {group}: {description['state']}, {len(description['members'])} member(s)" + (
        f", assignor {description['protocol']}" if description["protocol"] else ""
    )
    print_table(
        [
            "TOPIC",
            "PARTITION",
            "CURRENT-OFFSET",
            "LOG-END-OFFSET",
            "LAG",
            "CONSUMER-ID",
            "HOST",
            "CLIENT-ID",
        ],
        [
            (
                r.topic,
                r.partition,
                _cell(r.committed_offset),
                r.end_offset,
                _cell(r.lag),
                _cell(r.consumer_id),
                _cell(r.host),
                _cell(r.client_id),
            )
            for r in rows
        ],
        title=title,
    )


# --- reset-offsets ------------------------------------------------------------------------


def _parse_datetime(value: str) -> int:
    try:
        moment = datetime.datetime.fromisoformat(value)
    except ValueError:
        raise CliError(
            f"invalid --to-datetime {value!r}: use ISO 8601, e.g. 2024-05-01T12:00:00+00:00"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return int(moment.timestamp() * 1000)


@groups_app.command("reset-offsets")
@handle_errors
def reset_offsets(
    group: Annotated[str, typer.Argument(help="The consumer group id.")],
    topic: Annotated[str, typer.Option("--topic", help="Topic whose offsets to reset.")],
    to_earliest: Annotated[bool, typer.Option("--to-earliest", help="Reset to the start.")] = False,
    to_latest: Annotated[bool, typer.Option("--to-latest", help="Reset to the end.")] = False,
    to_offset: Annotated[
        int | None, typer.Option("--to-offset", help="Reset to this offset.", show_default=False)
    ] = None,
    shift_by: Annotated[
        int | None,
        typer.Option(
            "--shift-by",
            help="Move the committed offset by N (may be negative).",
            show_default=False,
        ),
    ] = None,
    to_datetime: Annotated[
        str | None,
        typer.Option(
            "--to-datetime", help="First offset at or after this ISO 8601 time.", show_default=False
        ),
    ] = None,
    execute: Annotated[
        bool, typer.Option("--execute", help="Commit the new offsets (default: dry run).")
    ] = False,
    broker: BrokerOption = None,
    fmt: FormatOption = "table",
) -> None:
    """Reset a group's committed offsets on one topic (dry run unless --execute)."""
    _check_format(fmt)
    chosen = [
        name
        for name, given in (
            ("--to-earliest", to_earliest),
            ("--to-latest", to_latest),
            ("--to-offset", to_offset is not None),
            ("--shift-by", shift_by is not None),
            ("--to-datetime", to_datetime is not None),
        )
        if given
    ]
    if len(chosen) != 1:
        raise CliError(
            "give exactly one of --to-earliest, --to-latest, --to-offset N, --shift-by N, "
            f"--to-datetime ISO (got {', '.join(chosen) or 'none'})"
        )
    timestamp = _parse_datetime(to_datetime) if to_datetime is not None else None
    if to_offset is not None and to_offset < 0:
        raise CliError(f"invalid --to-offset {to_offset}: offsets are 0 or more")
    bootstrap = resolve_bootstrap(broker)
    plan = run(_reset(bootstrap, group, topic, chosen[0], to_offset, shift_by, timestamp, execute))
    if fmt == "json":
        typer.echo(json.dumps({"group": group, "executed": execute, "partitions": plan}))
        return
    print_table(
        ["TOPIC", "PARTITION", "CURRENT-OFFSET", "NEW-OFFSET"],
        [(p["topic"], p["partition"], _cell(p["current_offset"]), p["new_offset"]) for p in plan],
        title=f"group {group}: " + ("offsets reset" if execute else "dry run (add --execute)"),
    )


async def _reset(
    bootstrap: str,
    group: str,
    topic: str,
    mode: str,
    to_offset: int | None,
    shift_by: int | None,
    timestamp: int | None,
    execute: bool,
) -> list[dict[str, Any]]:
    async with admin_client(bootstrap) as admin:
        description = await _describe_raw(admin, group)
        if description["members"]:
            raise CliError(
                f"consumer group {group!r} has {len(description['members'])} active member(s): "
                "stop the consumers first (offsets can only be reset on an inactive group)"
            )
        partitions = await topic_partitions(admin, topic)
        tps = [TopicPartition(topic, p) for p in partitions]
        committed = await admin.list_consumer_group_offsets(group, partitions=tps)
    async with consumer_client(bootstrap, group_id=group, enable_auto_commit=False) as consumer:
        starts = await consumer.beginning_offsets(tps)
        ends = await consumer.end_offsets(tps)
        times = (
            await consumer.offsets_for_times(dict.fromkeys(tps, timestamp))
            if (timestamp is not None)
            else {}
        )
        plan = []
        new_offsets: dict[TopicPartition, OffsetAndMetadata] = {}
        for tp in tps:
            om = committed.get(tp)
            current = om.offset if om is not None and om.offset >= 0 else None
            if mode == "--to-earliest":
                target = starts[tp]
            elif mode == "--to-latest":
                target = ends[tp]
            elif mode == "--to-offset":
                target = to_offset or 0
            elif mode == "--shift-by":
                target = (current if current is not None else starts[tp]) + (shift_by or 0)
            else:
                found = times.get(tp)
                target = found.offset if found is not None else ends[tp]
            target = min(max(target, starts[tp]), ends[tp])  # like Kafka's tool: clamp
            plan.append(
                {
                    "topic": tp.topic,
                    "partition": tp.partition,
                    "current_offset": current,
                    "new_offset": target,
                }
            )
            new_offsets[tp] = OffsetAndMetadata(target, "")
        if execute:
            consumer.assign(tps)
            await consumer.commit(new_offsets)
    return plan
