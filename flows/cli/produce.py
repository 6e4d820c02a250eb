"""``flows produce TOPIC`` -- write records from stdin or a file.

Each input line is one record: the whole line is the value, or ``KEY<SEP>VALUE`` with
``--key-separator SEP``, or with ``--json`` a JSON object
``{"key": .., "value": .., "headers": {..}, "partition": ..}`` (strings are sent as UTF-8,
other JSON values as their JSON text). Empty lines are skipped.

Records are parsed a chunk at a time, partitioned like the Java client (murmur2 of the key;
random partition without a key) and sent as whole batches, so a big file costs one await per
batch, not per record.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Annotated, Any

import msgspec
import typer
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.partitioner import DefaultPartitioner
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from flows.cli import app
from flows.cli._common import (
    BrokerOption,
    CliError,
    check_partition,
    describe_kafka_error,
    handle_errors,
    parse_key_values,
    producer_client,
    resolve_bootstrap,
    run,
    topic_partitions,
)

#: Lines parsed and sent per step (bounds memory; one progress update per chunk).
CHUNK_LINES = 5000
#: Bytes per batch built for one partition.
BATCH_BYTES = 512 * 1024

_JSON_FIELDS = frozenset({"key", "value", "headers", "partition", "timestamp"})
_decoder = msgspec.json.Decoder()


@dataclass(slots=True)
class Record:
    """One record to send (bytes at the edge)."""

    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]] = field(default_factory=list)
    partition: int | None = None
    timestamp_ms: int | None = None


def _to_bytes(value: Any) -> bytes | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value.encode()
    return msgspec.json.encode(value)


def parse_line(
    line: bytes,
    lineno: int,
    *,
    key_separator: bytes | None,
    json_mode: bool,
    headers: list[tuple[str, bytes]],
) -> Record:
    """One input line -> :class:`Record`; :class:`CliError` naming the line if it is bad.

    >>> parse_line(b"k1:hello", 1, key_separator=b":", json_mode=False, headers=[])
    Record(key=b'k1', value=b'hello', headers=[], partition=None, timestamp_ms=None)
    """
    if not json_mode:
        if key_separator is None:
            return Record(None, line, list(headers))
        key, sep, value = line.partition(key_separator)
        if not sep:
            shown = key_separator.decode(errors="replace")
            raise CliError(
                f"line {lineno} has no key separator {shown!r}: write KEY{shown}VALUE "
                "on every line, or drop --key-separator"
            )
        return Record(key, value, list(headers))
    try:
        obj = _decoder.decode(line)
    except msgspec.DecodeError as exc:
        raise CliError(
            f"line {lineno} is not valid JSON ({exc}): --json expects one "
            'object per line like {"key": "k", "value": "v"}'
        ) from None
    if not isinstance(obj, dict):
        raise CliError(f'line {lineno}: --json expects an object like {{"key": "k", "value": "v"}}')
    extra = set(obj) - _JSON_FIELDS
    if extra:
        raise CliError(
            f"line {lineno}: unknown field(s) {', '.join(sorted(extra))}; "
            "allowed: key, value, headers, partition, timestamp"
        )
    rec_headers = list(headers)
    raw_headers = obj.get("headers") or {}
    if not isinstance(raw_headers, dict):
        raise CliError(f'line {lineno}: "headers" must be an object of name: value')
    for name, value in raw_headers.items():
        rec_headers.append((str(name), _to_bytes(value) or b""))
    partition = obj.get("partition")
    if partition is not None and (not isinstance(partition, int) or partition < 0):
        raise CliError(f'line {lineno}: "partition" must be a non-negative integer')
    timestamp = obj.get("timestamp")
    if timestamp is not None and not isinstance(timestamp, int):
        raise CliError(f'line {lineno}: "timestamp" must be milliseconds since the epoch')
    return Record(
        _to_bytes(obj.get("key")), _to_bytes(obj.get("value")), rec_headers, partition, timestamp
    )


def _chunks(stream: IO[bytes]) -> Iterator[tuple[int, list[tuple[int, bytes]]]]:
    """(bytes read, [(line number, line)]) per chunk of non-empty lines."""
    chunk: list[tuple[int, bytes]] = []
    size = 0
    for lineno, raw in enumerate(stream, start=1):
        size += len(raw)
        line = raw.rstrip(b"\r\n")
        if line:
            chunk.append((lineno, line))
        if len(chunk) >= CHUNK_LINES:
            yield size, chunk
            chunk, size = [], 0
    if chunk or size:
        yield size, chunk


@app.command("produce")
@handle_errors
def produce(
    topic: Annotated[str, typer.Argument(help="Topic to write to.")],
    file: Annotated[
        Path | None,
        typer.Option("--file", "-f", help="Read records from this file instead of stdin."),
    ] = None,
    key_separator: Annotated[
        str | None,
        typer.Option("--key-separator", help="Split each line into KEY<SEP>VALUE at SEP."),
    ] = None,
    header: Annotated[
        list[str] | None,
        typer.Option("--header", help="Header k=v added to every record (repeatable)."),
    ] = None,
    partition: Annotated[
        int | None, typer.Option("--partition", help="Write every record to this partition.")
    ] = None,
    json_mode: Annotated[
        bool,
        typer.Option(
            "--json",
            help='Each line is {"key":..,"value":..,"headers":{..},"partition":..}.',
        ),
    ] = False,
    progress: Annotated[
        bool | None,
        typer.Option("--progress/--no-progress", help="Progress bar (default: on for a terminal)."),
    ] = None,
    broker: BrokerOption = None,
) -> None:
    """Produce records, one per input line."""
    if json_mode and key_separator is not None:
        raise CliError("--json and --key-separator do not combine: the key is a JSON field")
    if key_separator == "":
        raise CliError("--key-separator must not be empty")
    if partition is not None and partition < 0:
        raise CliError(f"invalid --partition {partition}: must be 0 or more")
    headers = [(k, v.encode()) for k, v in parse_key_values(header or [], "--header")]
    if file is not None and not file.is_file():
        raise CliError(f"cannot read --file {file}: no such file")
    bootstrap = resolve_bootstrap(broker)
    stream: IO[bytes]
    if file is not None:
        stream = open(file, "rb")  # noqa: SIM115 - closed below
        total = os.path.getsize(file)
    else:
        stream = typer.get_binary_stream("stdin")
        total = 0
    show = progress if progress is not None else (file is not None and sys.stderr.isatty())
    try:
        count = run(
            _produce(
                bootstrap,
                topic,
                stream,
                total,
                show,
                key_separator=key_separator.encode() if key_separator is not None else None,
                json_mode=json_mode,
                headers=headers,
                partition=partition,
            )
        )
    finally:
        if file is not None:
            stream.close()
    typer.echo(f"produced {count} record{'s' if count != 1 else ''} to {topic}", err=True)


async def _produce(
    bootstrap: str,
    topic: str,
    stream: IO[bytes],
    total: int,
    show_progress: bool,
    *,
    key_separator: bytes | None,
    json_mode: bool,
    headers: list[tuple[str, bytes]],
    partition: int | None,
) -> int:
    bar = Progress(
        TextColumn("[bold]producing"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TextColumn("{task.fields[records]} records"),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        disable=not show_progress,
        transient=True,
    )
    partitioner = DefaultPartitioner()
    sent = 0
    async with producer_client(
        bootstrap, acks="all", linger_ms=5, max_batch_size=BATCH_BYTES
    ) as producer:
        partitions = await topic_partitions(producer.client, topic, allow_auto_create=True)
        if partition is not None:
            check_partition(topic, partition, partitions)
        with bar:
            task = bar.add_task("produce", total=total or None, records=0)
            for size, lines in _chunks(stream):
                records = [
                    parse_line(
                        line, n, key_separator=key_separator, json_mode=json_mode, headers=headers
                    )
                    for n, line in lines
                ]
                for rec in records:
                    if rec.partition is None:
                        rec.partition = (
                            partition
                            if partition is not None
                            else partitioner(rec.key, partitions, partitions)
                        )
                    else:
                        check_partition(topic, rec.partition, partitions)
                try:
                    await _send_chunk(producer, topic, records)
                except KafkaError as exc:
                    raise CliError(
                        f"producing to {topic!r} failed after {sent} records: "
                        f"{describe_kafka_error(exc)}"
                    ) from None
                sent += len(records)
                bar.update(task, advance=size, records=sent)
    return sent


async def _send_chunk(producer: AIOKafkaProducer, topic: str, records: list[Record]) -> None:
    """Send records grouped into per-partition batches and wait until all are acknowledged."""
    futures: list[asyncio.Future[Any]] = []
    open_batches: dict[int, Any] = {}
    for rec in records:
        assert rec.partition is not None
        if rec.key is None and rec.value is None:
            rec.value = b""
        batch = open_batches.get(rec.partition)
        if batch is None:
            batch = open_batches[rec.partition] = producer.create_batch()
        ts = rec.timestamp_ms  # milliseconds, or None for now
        if batch.append(timestamp=ts, key=rec.key, value=rec.value, headers=rec.headers) is None:
            futures.append(await producer.send_batch(batch, topic, partition=rec.partition))
            batch = open_batches[rec.partition] = producer.create_batch()
            if (
                batch.append(timestamp=ts, key=rec.key, value=rec.value, headers=rec.headers)
                is None
            ):
                raise CliError(
                    f"a record for {topic!r} is larger than one batch ({BATCH_BYTES} bytes); "
                    "records that big are not supported by `flows produce`"
                )
    for part, batch in open_batches.items():
        if batch.record_count():
            futures.append(await producer.send_batch(batch, topic, partition=part))
    await asyncio.gather(*futures)
