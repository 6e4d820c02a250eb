"""Produce, Fetch and ListOffsets against a real broker process, with real clients.

Raw requests are encoded with kio and sent over a plain socket where a client library
would hide the behaviour under test (a flipped CRC byte, acks=2, a fetch inside a batch).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import socket
import struct
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import crc32c
import pytest
from kio.index import load_request_schema, load_response_schema
from kio.serial import entity_reader

from tests.broker.conftest import BrokerProcess

# --------------------------------------------------------------------------- broker process


@pytest.fixture(scope="module")
def bootstrap(shared_broker: BrokerProcess) -> str:
    """``host:port`` of the module's broker process."""
    return shared_broker.bootstrap


def _create_topic(
    address: str, name: str, partitions: int = 1, configs: dict[str, str] | None = None
) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": address})
    futures = admin.create_topics(
        [NewTopic(name, num_partitions=partitions, replication_factor=1, config=configs or {})]
    )
    futures[name].result(timeout=15)


def _topic() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


# --------------------------------------------------------------------------- raw requests


def _varint(value: int) -> bytes:
    zigzag = (value << 1) ^ (value >> 63)
    out = bytearray()
    while True:
        byte = zigzag & 0x7F
        zigzag >>= 7
        if zigzag:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _recent_ms() -> int:
    """A whole second a minute ago: recent enough for retention, round for arithmetic."""
    return (int(time.time()) - 60) * 1000


def make_batch(
    records: list[tuple[bytes | None, bytes | None]],
    *,
    base_timestamp: int | None = None,
) -> bytes:
    """An uncompressed RecordBatch v2 (what a producer sends), timestamps 1 ms apart.

    Timestamps default to now: old ones would be deleted by time-based retention.
    """
    if base_timestamp is None:
        base_timestamp = _recent_ms()
    body = bytearray()
    for delta, (key, value) in enumerate(records):
        rec = bytearray(b"\x00")  # attributes
        rec += _varint(delta) + _varint(delta)  # timestamp delta, offset delta
        rec += _varint(-1) if key is None else _varint(len(key)) + key
        rec += _varint(-1) if value is None else _varint(len(value)) + value
        rec += _varint(0)  # headers
        body += _varint(len(rec)) + rec
    last = len(records) - 1
    after_crc = (
        struct.pack(
            ">hiqqqhii",
            0,  # attributes
            last,
            base_timestamp,
            base_timestamp + last,
            -1,  # producer id
            -1,  # producer epoch
            -1,  # base sequence
            len(records),
        )
        + body
    )
    crc = crc32c.crc32c(after_crc)
    head = struct.pack(">iBI", -1, 2, crc)  # leader epoch, magic, crc
    batch_length = len(head) + len(after_crc)
    return struct.pack(">qi", 0, batch_length) + head + after_crc


def _batch_offsets(records: bytes) -> list[tuple[int, int]]:
    """(base offset, record count) of each batch in a fetched record set."""
    out = []
    pos = 0
    while pos + 61 <= len(records):
        base, length = struct.unpack_from(">qi", records, pos)
        count = struct.unpack_from(">i", records, pos + 57)[0]
        out.append((base, count))
        pos += 12 + length
    return out


class RawClient:
    """A minimal blocking Kafka client: one request at a time, kio for the bodies."""

    def __init__(self, address: str) -> None:
        host, port = address.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=30)
        self.correlation = 0

    def close(self) -> None:
        self.sock.close()

    def send(self, api_key: int, version: int, **fields: Any) -> int:
        from broker.codec import encode_request
        from broker.protocol import build

        self.correlation += 1
        body = build(load_request_schema(api_key, version), fields)
        self.sock.sendall(encode_request(body, correlation_id=self.correlation, client_id="t"))
        return self.correlation

    def receive(self, api_key: int, version: int) -> tuple[int, Any]:
        size = struct.unpack(">i", self._read(4))[0]
        frame = self._read(size)
        cls = load_response_schema(api_key, version)
        header, used = entity_reader(cls.__header_schema__)(frame, 0)
        body, _ = entity_reader(cls)(frame, used)
        return header.correlation_id, body

    def call(self, api_key: int, version: int, **fields: Any) -> Any:
        sent = self.send(api_key, version, **fields)
        got, body = self.receive(api_key, version)
        assert got == sent
        return body

    def _read(self, n: int) -> bytes:
        buf = io.BytesIO()
        while buf.tell() < n:
            chunk = self.sock.recv(n - buf.tell())
            if not chunk:
                raise ConnectionError("broker closed the connection")
            buf.write(chunk)
        return buf.getvalue()


@contextlib.contextmanager
def raw(address: str) -> Iterator[RawClient]:
    client = RawClient(address)
    try:
        yield client
    finally:
        client.close()


def produce_raw(
    client: RawClient,
    topic: str,
    records: bytes,
    *,
    partition: int = 0,
    acks: int = 1,
    version: int = 8,
) -> Any:
    body = client.call(
        0,
        version,
        acks=acks,
        timeout_ms=10_000,
        topic_data=[{"name": topic, "partition_data": [{"index": partition, "records": records}]}],
    )
    return body.responses[0].partition_responses[0]


def fetch_raw(
    client: RawClient,
    topic: str,
    offset: int,
    *,
    partition: int = 0,
    max_bytes: int = 1 << 20,
    partition_max_bytes: int = 1 << 20,
    max_wait_ms: int = 0,
    min_bytes: int = 1,
    version: int = 11,
    isolation_level: int = 0,
) -> Any:
    body = client.call(
        1,
        version,
        replica_id=-1,
        max_wait_ms=max_wait_ms,
        min_bytes=min_bytes,
        max_bytes=max_bytes,
        isolation_level=isolation_level,
        session_epoch=-1,
        topics=[
            {
                "topic": topic,
                "partitions": [
                    {
                        "partition": partition,
                        "fetch_offset": offset,
                        "partition_max_bytes": partition_max_bytes,
                    }
                ],
            }
        ],
    )
    assert getattr(body, "session_id", 0) == 0
    return body.responses[0].partitions[0]


def list_offsets_raw(
    client: RawClient, topic: str, timestamp: int, partition: int = 0, version: int = 1
) -> Any:
    body = client.call(
        2,
        version,
        replica_id=-1,
        topics=[
            {"name": topic, "partitions": [{"partition_index": partition, "timestamp": timestamp}]}
        ],
    )
    return body.topics[0].partitions[0]


# --------------------------------------------------------------------------- client round trips


def _consume_all(address: str, topic: str, expected: int, **extra: Any) -> list[Any]:
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": address,
            "group.id": f"g-{uuid.uuid4().hex[:6]}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            **extra,
        }
    )
    try:
        consumer.assign([TopicPartition(topic, 0, 0)])
        got: list[Any] = []
        deadline = time.monotonic() + 30
        while len(got) < expected and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            assert msg.error() is None, msg.error()
            got.append(msg)
        return got
    finally:
        consumer.close()


@pytest.mark.parametrize("acks", [0, 1, -1])
def test_confluent_round_trip(bootstrap: str, acks: int) -> None:
    from confluent_kafka import Producer

    topic = _topic()
    _create_topic(bootstrap, topic, configs={"flush.messages": "1"} if acks == -1 else None)
    producer = Producer({"bootstrap.servers": bootstrap, "acks": acks, "linger.ms": 5})
    errors: list[Any] = []
    for i in range(200):
        producer.produce(
            topic,
            key=f"k{i}".encode(),
            value=f"v{i}".encode(),
            partition=0,
            on_delivery=lambda err, _msg: errors.append(err) if err else None,
        )
    assert producer.flush(30) == 0
    assert errors == []
    got = _consume_all(bootstrap, topic, 200)
    assert [m.value() for m in got] == [f"v{i}".encode() for i in range(200)]
    assert [m.offset() for m in got] == list(range(200))


def test_kafka_python_round_trip(bootstrap: str) -> None:
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition

    topic = _topic()
    _create_topic(bootstrap, topic)
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=False)
    for i in range(50):
        producer.send(topic, key=b"k", value=f"v{i}".encode(), partition=0)
    producer.flush(30)
    producer.close()
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, consumer_timeout_ms=10_000
    )
    try:
        consumer.assign([TopicPartition(topic, 0)])
        consumer.seek_to_beginning()
        values = []
        for msg in consumer:
            values.append(msg.value)
            if len(values) == 50:
                break
        assert values == [f"v{i}".encode() for i in range(50)]
        # ListOffsets through kafka-python as well
        tp = TopicPartition(topic, 0)
        assert consumer.beginning_offsets([tp]) == {tp: 0}
        assert consumer.end_offsets([tp]) == {tp: 50}
    finally:
        consumer.close()


async def test_aiokafka_round_trip(bootstrap: str) -> None:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

    topic = _topic()
    _create_topic(bootstrap, topic)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        batch = [producer.send(topic, f"v{i}".encode(), partition=0) for i in range(30)]
        await asyncio.gather(*[await f for f in batch])
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        values: list[bytes | None] = []
        while len(values) < 30:
            chunk = await asyncio.wait_for(consumer.getmany(timeout_ms=1000), 30)
            values.extend(m.value for msgs in chunk.values() for m in msgs)
        assert values == [f"v{i}".encode() for i in range(30)]
    finally:
        await consumer.stop()


# --------------------------------------------------------------------------- fetch semantics


def test_long_poll_returns_when_data_arrives(bootstrap: str) -> None:
    topic = _topic()
    _create_topic(bootstrap, topic)
    result: dict[str, Any] = {}

    def waiting_fetch() -> None:
        with raw(bootstrap) as client:
            result["part"] = fetch_raw(client, topic, 0, max_wait_ms=20_000, min_bytes=1)

    thread = threading.Thread(target=waiting_fetch)
    thread.start()
    time.sleep(0.3)  # let the fetch park; correctness does not depend on it
    with raw(bootstrap) as client:
        assert produce_raw(client, topic, make_batch([(b"k", b"wake")])).error_code == 0
    thread.join(30)
    assert not thread.is_alive()
    part = result["part"]
    assert part.error_code == 0
    assert _batch_offsets(part.records) == [(0, 1)]
    assert part.high_watermark == 1


def test_fetch_inside_a_batch_returns_that_batch(bootstrap: str) -> None:
    topic = _topic()
    _create_topic(bootstrap, topic)
    with raw(bootstrap) as client:
        first = produce_raw(client, topic, make_batch([(b"k", b"%d" % i) for i in range(5)]))
        second = produce_raw(client, topic, make_batch([(b"k", b"x")]))
        assert (first.base_offset, second.base_offset) == (0, 5)
        part = fetch_raw(client, topic, 3)
        assert part.error_code == 0
        assert _batch_offsets(part.records) == [(0, 5), (5, 1)]
        assert part.high_watermark == 6
        assert part.log_start_offset == 0
    # and a real consumer assigned at offset 3 sees exactly offsets 3..5
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "inside", "enable.auto.commit": False}
    )
    try:
        consumer.assign([TopicPartition(topic, 0, 3)])
        offsets: list[int | None] = []
        deadline = time.monotonic() + 30
        while len(offsets) < 3 and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                offsets.append(msg.offset())
        assert offsets == [3, 4, 5]
    finally:
        consumer.close()


def test_tiny_max_bytes_still_returns_one_whole_batch(bootstrap: str) -> None:
    topic = _topic()
    _create_topic(bootstrap, topic)
    with raw(bootstrap) as client:
        batch = make_batch([(b"k", b"a" * 100) for _ in range(3)])
        produce_raw(client, topic, batch)
        produce_raw(client, topic, batch)
        part = fetch_raw(client, topic, 0, max_bytes=1, partition_max_bytes=1)
        assert part.error_code == 0
        assert _batch_offsets(part.records) == [(0, 3)]
        assert len(part.records) == len(batch)


def test_fetch_caught_up_is_empty_not_an_error(bootstrap: str) -> None:
    topic = _topic()
    _create_topic(bootstrap, topic)
    with raw(bootstrap) as client:
        produce_raw(client, topic, make_batch([(b"k", b"v")]))
        part = fetch_raw(client, topic, 1, max_wait_ms=0)
        assert part.error_code == 0
        assert part.records in (b"", None)
        assert part.high_watermark == 1


def test_offset_out_of_range(bootstrap: str) -> None:
    topic = _topic()
    _create_topic(bootstrap, topic)
    with raw(bootstrap) as client:
        produce_raw(client, topic, make_batch([(b"k", b"v0"), (b"k", b"v1")]))
        part = fetch_raw(client, topic, 1000)
        assert part.error_code == 1  # OFFSET_OUT_OF_RANGE
        assert fetch_raw(client, topic, -5).error_code == 1
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "oor",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    try:
        consumer.assign([TopicPartition(topic, 0, 1000)])
        values: list[bytes | None] = []
        deadline = time.monotonic() + 30
        while len(values) < 2 and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                values.append(msg.value())
        assert values == [b"v0", b"v1"]
    finally:
        consumer.close()


def test_fetch_unknown_topic_partition(bootstrap: str) -> None:
    with raw(bootstrap) as client:
        assert fetch_raw(client, "no-such-topic-here", 0).error_code == 3
        topic = _topic()
        _create_topic(bootstrap, topic)
        assert fetch_raw(client, topic, 0, partition=7).error_code == 3


@pytest.mark.parametrize("version", [4, 7, 12])
def test_fetch_versions(bootstrap: str, version: int) -> None:
    topic = _topic()
    _create_topic(bootstrap, topic)
    with raw(bootstrap) as client:
        produce_raw(client, topic, make_batch([(b"k", b"v")]))
        part = fetch_raw(client, topic, 0, version=version)
        assert part.error_code == 0
        assert _batch_offsets(part.records) == [(0, 1)]


# --------------------------------------------------------------------------- list offsets


def test_offsets_for_times_and_watermarks(bootstrap: str) -> None:
    from confluent_kafka import Consumer, Producer, TopicPartition

    topic = _topic()
    _create_topic(bootstrap, topic)
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
    base = _recent_ms()
    for i in range(10):
        producer.produce(topic, value=b"v", partition=0, timestamp=base + i * 1000)
        producer.flush(10)  # one batch per record: exercises the time index across batches
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "lo"})
    try:
        assert consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10) == (0, 10)
        for ts, expected in [(base, 0), (base + 3000, 3), (base + 2500, 3), (base - 1, 0)]:
            got = consumer.offsets_for_times([TopicPartition(topic, 0, ts)], timeout=10)
            assert got[0].offset == expected, (ts, got)
        got = consumer.offsets_for_times([TopicPartition(topic, 0, base + 10**7)], timeout=10)
        assert got[0].offset == -1  # no record that late: the end
    finally:
        consumer.close()
    with raw(bootstrap) as client:
        part = list_offsets_raw(client, topic, base + 4000)
        assert (part.error_code, part.offset, part.timestamp) == (0, 4, base + 4000)
        assert list_offsets_raw(client, topic, -2).offset == 0
        assert list_offsets_raw(client, topic, -1).offset == 10
        assert list_offsets_raw(client, topic, base + 10**7).offset == -1
        assert list_offsets_raw(client, topic, -1, partition=9).error_code == 3
        assert list_offsets_raw(client, "no-such-topic-lo", -1).error_code == 3
        assert list_offsets_raw(client, topic, -3, version=6).error_code == 35
        assert list_offsets_raw(client, topic, -7, version=7).error_code == 42


# --------------------------------------------------------------------------- produce errors


def test_produce_unknown_topic_and_partition(bootstrap: str) -> None:
    topic = _topic()
    _create_topic(bootstrap, topic)
    with raw(bootstrap) as client:
        batch = make_batch([(b"k", b"v")])
        part = produce_raw(client, f"absent-{uuid.uuid4().hex[:6]}", batch)
        assert part.error_code == 3
        assert produce_raw(client, topic, batch, partition=5).error_code == 3
        assert produce_raw(client, topic, batch).error_code == 0  # still serving


def test_produce_corrupt_crc(bootstrap: str) -> None:
    topic = _topic()
    _create_topic(bootstrap, topic)
    batch = bytearray(make_batch([(b"k", b"value")]))
    batch[-1] ^= 0xFF  # flip a byte of the last record: the CRC no longer matches
    with raw(bootstrap) as client:
        part = produce_raw(client, topic, bytes(batch))
        assert part.error_code == 2  # CORRUPT_MESSAGE
        good = produce_raw(client, topic, make_batch([(b"k", b"ok")]))
        assert (good.error_code, good.base_offset) == (0, 0)


def test_produce_message_too_large(bootstrap: str) -> None:
    topic = _topic()
    _create_topic(bootstrap, topic, configs={"max.message.bytes": "2000"})
    with raw(bootstrap) as client:
        part = produce_raw(client, topic, make_batch([(b"k", b"x" * 5000)]))
        assert part.error_code == 10  # MESSAGE_TOO_LARGE
        assert produce_raw(client, topic, make_batch([(b"k", b"x")])).error_code == 0


def test_produce_keyless_record_to_compacted_topic(bootstrap: str) -> None:
    topic = _topic()
    _create_topic(bootstrap, topic, configs={"cleanup.policy": "compact"})
    with raw(bootstrap) as client:
        part = produce_raw(client, topic, make_batch([(b"k", b"v"), (None, b"no key")]))
        assert part.error_code == 87  # INVALID_RECORD
        assert part.error_message
        assert produce_raw(client, topic, make_batch([(b"k", b"v")])).error_code == 0


def test_produce_invalid_acks(bootstrap: str) -> None:
    topic = _topic()
    _create_topic(bootstrap, topic)
    with raw(bootstrap) as client:
        part = produce_raw(client, topic, make_batch([(b"k", b"v")]), acks=2)
        assert part.error_code == 21  # INVALID_REQUIRED_ACKS


def test_produce_acks_zero_sends_no_response(bootstrap: str) -> None:
    topic = _topic()
    _create_topic(bootstrap, topic)
    with raw(bootstrap) as client:
        client.send(
            0,
            8,
            acks=0,
            timeout_ms=1000,
            topic_data=[
                {
                    "name": topic,
                    "partition_data": [{"index": 0, "records": make_batch([(b"k", b"v")])}],
                }
            ],
        )
        # The next answer on this connection belongs to the next request.
        part = fetch_raw(client, topic, 0)
        assert part.error_code == 0
        assert _batch_offsets(part.records) == [(0, 1)]


@pytest.mark.parametrize("version", [3, 5, 7, 9])
def test_produce_versions(bootstrap: str, version: int) -> None:
    topic = _topic()
    _create_topic(bootstrap, topic)
    with raw(bootstrap) as client:
        part = produce_raw(client, topic, make_batch([(b"k", b"v")]), version=version)
        assert (part.error_code, part.base_offset) == (0, 0)


def test_concurrent_durable_produce_shares_fsyncs(bootstrap: str) -> None:
    """Many acks=-1 producers on a flush.messages=1 topic all get acknowledged in order."""
    topic = _topic()
    _create_topic(bootstrap, topic, configs={"flush.messages": "1"})
    results: list[int] = []
    lock = threading.Lock()

    def one(n: int) -> None:
        with raw(bootstrap) as client:
            for _ in range(5):
                part = produce_raw(client, topic, make_batch([(b"k", b"%d" % n)]), acks=-1)
                assert part.error_code == 0
                with lock:
                    results.append(part.base_offset)

    threads = [threading.Thread(target=one, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(results) == list(range(40))


def test_fetch_max_bytes_is_soft_only_for_the_first_partition(bootstrap: str) -> None:
    topic = _topic()
    _create_topic(bootstrap, topic, partitions=2)
    batch = make_batch([(b"k", b"y" * 300)])
    with raw(bootstrap) as client:
        for p in (0, 1):
            assert produce_raw(client, topic, batch, partition=p).error_code == 0

        def fetch_both(max_bytes: int) -> list[Any]:
            body = client.call(
                1,
                11,
                replica_id=-1,
                max_wait_ms=0,
                min_bytes=1,
                max_bytes=max_bytes,
                topics=[
                    {
                        "topic": topic,
                        "partitions": [
                            {"partition": p, "fetch_offset": 0, "partition_max_bytes": 1 << 20}
                            for p in (0, 1)
                        ],
                    }
                ],
            )
            return list(body.responses[0].partitions)

        small = fetch_both(100)
        assert _batch_offsets(small[0].records) == [(0, 1)]
        assert small[1].records in (b"", None)
        assert (small[1].error_code, small[1].high_watermark) == (0, 1)
        both = fetch_both(1 << 20)
        assert [_batch_offsets(p.records) for p in both] == [[(0, 1)], [(0, 1)]]


def test_read_committed_fetch_without_transactions(bootstrap: str) -> None:
    topic = _topic()
    _create_topic(bootstrap, topic)
    with raw(bootstrap) as client:
        produce_raw(client, topic, make_batch([(b"k", b"v")]))
        part = fetch_raw(client, topic, 0, isolation_level=1)
        assert part.error_code == 0
        assert part.aborted_transactions == ()
        assert part.last_stable_offset == 1
        assert _batch_offsets(part.records) == [(0, 1)]
        uncommitted = fetch_raw(client, topic, 0, isolation_level=0)
        assert uncommitted.aborted_transactions is None


def test_long_poll_waits_through_several_appends_for_min_bytes(bootstrap: str) -> None:
    topic = _topic()
    _create_topic(bootstrap, topic)
    batch = make_batch([(b"k", b"z" * 50)])
    result: dict[str, Any] = {}

    def waiting_fetch() -> None:
        with raw(bootstrap) as client:
            result["part"] = fetch_raw(
                client, topic, 0, max_wait_ms=30_000, min_bytes=3 * len(batch)
            )

    thread = threading.Thread(target=waiting_fetch)
    thread.start()
    with raw(bootstrap) as client:
        for _ in range(3):
            time.sleep(0.1)  # spread the appends out; correctness does not depend on it
            assert produce_raw(client, topic, batch).error_code == 0
    thread.join(60)
    assert not thread.is_alive()
    assert _batch_offsets(result["part"].records) == [(0, 1), (1, 1), (2, 1)]


def test_byte_counters(broker_process: Any, tmp_path: Any) -> None:
    import urllib.request

    bp = broker_process(tmp_path, extra_args=["--metrics-port", "0"])
    metrics_line = next(line for line in bp.stdout_lines if "/metrics" in line)
    url = metrics_line.split(" on ", 1)[1].replace("0.0.0.0", "127.0.0.1")
    topic = _topic()
    _create_topic(bp.bootstrap, topic)
    batch = make_batch([(b"k", b"v" * 20) for _ in range(4)])
    with raw(bp.bootstrap) as client:
        produce_raw(client, topic, batch)
        produce_raw(client, topic, batch)
        fetch_raw(client, topic, 0)
    text = urllib.request.urlopen(url, timeout=10).read().decode()

    def sample(name: str) -> float:
        prefix = f'flows_broker_{name}{{topic="{topic}"}} '
        return float(
            next(line for line in text.splitlines() if line.startswith(prefix)).split()[-1]
        )

    assert sample("bytes_in_total") == 2 * len(batch)
    assert sample("bytes_out_total") == 2 * len(batch)


class _CountingLog:
    """Stands in for a partition log: counts flushes, each taking a little time."""

    topic = "t"
    partition = 0

    def __init__(self) -> None:
        self.flushes = 0
        self.fail = False

    def flush(self) -> None:
        time.sleep(0.02)
        self.flushes += 1
        if self.fail:
            raise OSError("disk gone")


async def test_group_commit_shares_fsyncs() -> None:
    from broker.handlers.produce import GroupCommit

    log = _CountingLog()
    commit = GroupCommit(log)  # type: ignore[arg-type]
    first = commit.sync()
    # Requests that append while that fsync runs all share the single next one.
    rest = [commit.sync() for _ in range(20)]
    await first
    await asyncio.gather(*rest)
    assert log.flushes == 2
    await commit.sync()  # idle again: a new request starts its own fsync
    assert log.flushes == 3


async def test_group_commit_reports_fsync_failure() -> None:
    from broker.handlers.produce import GroupCommit

    log = _CountingLog()
    log.fail = True
    commit = GroupCommit(log)  # type: ignore[arg-type]
    with pytest.raises(OSError):
        await commit.sync()
    log.fail = False
    await commit.sync()  # recovers for later requests


def test_list_offsets_max_timestamp(bootstrap: str) -> None:
    from confluent_kafka import TopicPartition
    from confluent_kafka.admin import AdminClient, OffsetSpec

    topic = _topic()
    _create_topic(bootstrap, topic)
    base = _recent_ms()
    with raw(bootstrap) as client:
        empty = list_offsets_raw(client, topic, -3, version=7)
        assert (empty.error_code, empty.offset, empty.timestamp) == (0, -1, -1)
        for ts in (base + 5000, base + 9000, base + 1000, base + 9000):
            produce_raw(client, topic, make_batch([(b"k", b"v")], base_timestamp=ts))
        part = list_offsets_raw(client, topic, -3, version=7)
        assert (part.error_code, part.offset, part.timestamp) == (0, 1, base + 9000)
    admin = AdminClient({"bootstrap.servers": bootstrap})
    tp = TopicPartition(topic, 0)
    result = admin.list_offsets({tp: OffsetSpec.max_timestamp()})[tp].result(timeout=15)
    assert (result.offset, result.timestamp) == (1, base + 9000)


def test_produce_mixed_partitions_in_one_request(bootstrap: str) -> None:
    topic = _topic()
    _create_topic(bootstrap, topic, partitions=2)
    batch = make_batch([(b"k", b"v")])
    with raw(bootstrap) as client:
        body = client.call(
            0,
            8,
            acks=1,
            timeout_ms=10_000,
            topic_data=[
                {
                    "name": topic,
                    "partition_data": [
                        {"index": 0, "records": batch},
                        {"index": 9, "records": batch},
                        {"index": 1, "records": batch},
                    ],
                },
                {"name": "absent-topic-mixed", "partition_data": [{"index": 0, "records": batch}]},
            ],
        )
    parts = body.responses[0].partition_responses
    assert [(p.index, p.error_code, p.base_offset) for p in parts] == [
        (0, 0, 0),
        (9, 3, -1),
        (1, 0, 0),
    ]
    assert parts[1].error_message  # says which partition is unknown
    assert body.responses[1].partition_responses[0].error_code == 3


def test_produce_log_append_time(bootstrap: str) -> None:
    topic = _topic()
    _create_topic(bootstrap, topic, configs={"message.timestamp.type": "LogAppendTime"})
    plain = _topic()
    _create_topic(bootstrap, plain)
    with raw(bootstrap) as client:
        part = produce_raw(client, topic, make_batch([(b"k", b"v")], base_timestamp=1000))
        assert part.error_code == 0
        assert part.log_append_time is not None  # the broker's clock, not the record's
        assert part.log_append_time.timestamp() > 1_600_000_000
        other = produce_raw(client, plain, make_batch([(b"k", b"v")]))
        assert other.log_append_time is None  # CreateTime topics answer -1


def _inflated_length() -> bytes:
    batch = bytearray(make_batch([(b"k", b"v")]))
    struct.pack_into(">i", batch, 8, len(batch) + 100)  # batchLength beyond the data
    return bytes(batch)


@pytest.mark.parametrize(
    ("records", "code"),
    [
        (b"", 87),  # no batch at all: INVALID_RECORD, as Kafka answers
        (b"garbage", 2),  # shorter than a batch header: CORRUPT_MESSAGE
        (_inflated_length(), 2),  # length field runs past the data: CORRUPT_MESSAGE
        (b"\x00" * 8 + struct.pack(">i", 60) + b"\x00" * 60, 43),  # magic 0: old format
    ],
    ids=["empty", "garbage", "inflated-length", "magic-0"],
)
def test_produce_malformed_record_sets(bootstrap: str, records: bytes, code: int) -> None:
    topic = _topic()
    _create_topic(bootstrap, topic)
    with raw(bootstrap) as client:
        assert produce_raw(client, topic, records).error_code == code
        assert produce_raw(client, topic, make_batch([(b"k", b"v")])).error_code == 0


async def test_group_commit_survives_a_cancelled_waiter() -> None:
    """A client hanging up mid-fsync must not fail the other requests sharing it."""
    from broker.handlers.produce import GroupCommit

    log = _CountingLog()
    commit = GroupCommit(log)  # type: ignore[arg-type]

    async def request() -> None:
        await asyncio.shield(commit.sync())

    running = commit.sync()  # an fsync in flight: the next two requests share the next one
    first = asyncio.ensure_future(request())
    second = asyncio.ensure_future(request())
    await asyncio.sleep(0)
    first.cancel()
    await second
    await running
    assert first.cancelled()
    assert log.flushes == 2
