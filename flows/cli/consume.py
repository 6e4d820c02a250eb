"""``flows consume TOPIC`` -- print records.

Without ``--group`` the command reads the partitions directly (all, or ``--partition``) from
the end, the beginning (``--from-beginning``) or ``--offset``; nothing is committed. With
``--group`` it joins that consumer group, starts from the group's committed offsets (or the
beginning with ``--from-beginning`` when there are none) and commits what it printed.

``--format plain`` prints the value (``--print-key`` adds ``KEY<TAB>VALUE``); ``--format
json`` prints one object per record with topic, partition, offset, timestamp, key, value and
headers. Output is written a batch at a time.
"""

from __future__ import annotations

import sys
import time
from enum import StrEnum
from typing import Annotated, Any

import msgspec
import typer
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from flows.cli import app
from flows.cli._common import (
    BrokerOption,
    CliError,
    check_partition,
    consumer_client,
    handle_errors,
    resolve_bootstrap,
    run,
    topic_partitions,
)

#: Longest single wait for records, so ``--timeout`` and Ctrl-C are noticed promptly (ms).
POLL_MS = 500
_encoder = msgspec.json.Encoder()


class OutputFormat(StrEnum):
    plain = "plain"
    json = "json"


def _text(data: bytes | None) -> str | None:
    return None if data is None else data.decode("utf-8", "replace")


def format_record(
    record: ConsumerRecord[bytes, bytes], fmt: OutputFormat, print_key: bool, separator: str
) -> str:
    """One output line (without newline) for ``record``."""
    if fmt is OutputFormat.json:
        return _encoder.encode(
            {
                "topic": record.topic,
                "partition": record.partition,
                "offset": record.offset,
                "timestamp": record.timestamp,
                "key": _text(record.key),
                "value": _text(record.value),
                "headers": {k: _text(v) for k, v in record.headers},
            }
        ).decode()
    value = _text(record.value) or ""
    if print_key:
        return f"{_text(record.key) or ''}{separator}{value}"
    return value


def _parse_offset(value: str | None) -> int | str | None:
    if value is None:
        return None
    if value in ("earliest", "latest"):
        return value
    try:
        offset = int(value)
    except ValueError:
        raise CliError(
            f"invalid --offset {value!r}: use a number, 'earliest' or 'latest'"
        ) from None
    if offset < 0:
        raise CliError(f"invalid --offset {value}: must be 0 or more")
    return offset


@app.command("consume")
@handle_errors
def consume(
    topic: Annotated[str, typer.Argument(help="Topic to read.")],
    from_beginning: Annotated[
        bool, typer.Option("--from-beginning", help="Start at the oldest record.")
    ] = False,
    group: Annotated[
        str | None, typer.Option("--group", help="Consume as this group and commit offsets.")
    ] = None,
    max_messages: Annotated[
        int | None, typer.Option("--max-messages", help="Stop after this many records.")
    ] = None,
    partition: Annotated[
        int | None, typer.Option("--partition", help="Read only this partition.")
    ] = None,
    offset: Annotated[
        str | None,
        typer.Option("--offset", help="Start offset: a number, 'earliest' or 'latest'."),
    ] = None,
    timeout: Annotated[
        float | None,
        typer.Option("--timeout", help="Stop after this many seconds without a record."),
    ] = None,
    output_format: Annotated[
        OutputFormat, typer.Option("--format", help="plain: the value; json: everything.")
    ] = OutputFormat.plain,
    print_key: Annotated[
        bool, typer.Option("--print-key", help="plain format: print KEY<SEP>VALUE.")
    ] = False,
    key_separator: Annotated[
        str, typer.Option("--key-separator", help="Separator for --print-key.", show_default="TAB")
    ] = "\t",
    broker: BrokerOption = None,
) -> None:
    """Print records of a topic, one per line."""
    start = _parse_offset(offset)
    if group is not None and (partition is not None or start is not None):
        raise CliError(
            "--group reads from the group's committed offsets: drop --partition/--offset, "
            "or drop --group to read partitions directly"
        )
    if from_beginning and start is not None:
        raise CliError("--from-beginning and --offset do not combine: pick one")
    if max_messages is not None and max_messages < 1:
        raise CliError(f"invalid --max-messages {max_messages}: must be at least 1")
    if timeout is not None and timeout <= 0:
        raise CliError(f"invalid --timeout {timeout}: must be more than 0 seconds")
    if from_beginning:
        start = "earliest"
    bootstrap = resolve_bootstrap(broker)
    count = run(
        _consume(
            bootstrap,
            topic,
            group=group,
            partition=partition,
            start=start,
            max_messages=max_messages,
            timeout_s=timeout,
            fmt=output_format,
            print_key=print_key,
            separator=key_separator,
        )
    )
    typer.echo(f"consumed {count} record{'s' if count != 1 else ''} from {topic}", err=True)


async def _position(
    consumer: AIOKafkaConsumer, tps: list[TopicPartition], start: int | str | None
) -> None:
    if start == "earliest":
        await consumer.seek_to_beginning(*tps)
    elif start is None or start == "latest":
        await consumer.seek_to_end(*tps)
    else:
        assert isinstance(start, int)
        for tp in tps:
            consumer.seek(tp, start)


async def _consume(
    bootstrap: str,
    topic: str,
    *,
    group: str | None,
    partition: int | None,
    start: int | str | None,
    max_messages: int | None,
    timeout_s: float | None,
    fmt: OutputFormat,
    print_key: bool,
    separator: str,
) -> int:
    config: dict[str, Any] = {"enable_auto_commit": False}
    if group is not None:
        config.update(group_id=group, auto_offset_reset="earliest" if start else "latest")
    out = sys.stdout
    printed = 0
    async with consumer_client(bootstrap, **config) as consumer:
        partitions = await topic_partitions(consumer._client, topic)
        if group is not None:
            consumer.subscribe([topic])
        else:
            if partition is not None:
                check_partition(topic, partition, partitions)
                partitions = [partition]
            tps = [TopicPartition(topic, p) for p in partitions]
            consumer.assign(tps)
            await _position(consumer, tps, start)
        last_record = time.monotonic()
        while max_messages is None or printed < max_messages:
            wait_ms = POLL_MS
            if timeout_s is not None:
                left = timeout_s - (time.monotonic() - last_record)
                if left <= 0:
                    break
                wait_ms = max(1, min(POLL_MS, int(left * 1000)))
            limit = None if max_messages is None else max_messages - printed
            batches = await consumer.getmany(timeout_ms=wait_ms, max_records=limit)
            if not batches:
                continue
            last_record = time.monotonic()
            lines: list[str] = []
            commit: dict[TopicPartition, int] = {}
            for tp, records in batches.items():
                for record in records:
                    lines.append(format_record(record, fmt, print_key, separator))
                commit[tp] = records[-1].offset + 1
            out.write("\n".join(lines) + "\n")
            out.flush()
            printed += len(lines)
            if group is not None and commit:
                await consumer.commit(commit)
    return printed
