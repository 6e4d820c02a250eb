"""Unmodified Kafka clients against the included broker: produce, then read back byte-exact.

Every client (kcat, kafka-python, aiokafka, confluent-kafka) produces 10,000 keyed
records with headers, with each compression codec it supports, to a 3-partition topic,
and reads them back with partition assignment (no consumer group). Partitioning is the
client's own keyed partitioner, so the check is partitioner-agnostic: every key lands in
exactly one partition, and each partition holds exactly the records of its keys, in
produce order, at offsets 0..n-1.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import pytest

Header = tuple[str, bytes]
Rec = tuple[bytes, bytes, tuple[Header, ...]]
"""(key, value, headers) exactly as produced."""

N_RECORDS = 10_000
PARTITIONS = 3
N_KEYS = 500
CODECS = ("none", "gzip", "snappy", "lz4", "zstd")
CLIENTS = ("kcat", "kafka-python", "aiokafka", "confluent")
READ_TIMEOUT_S = 120.0
KCAT_HEADERS: tuple[Header, ...] = (("origin", b"kcat"), ("trace", b"abc-123"))


def make_records(
    n: int, *, ascii_only: bool, static_headers: tuple[Header, ...] | None
) -> list[Rec]:
    """Keyed records; binary bytes unless a text-only client (kcat) is on either end."""
    out: list[Rec] = []
    for i in range(n):
        key = f"key-{i % N_KEYS:04d}".encode()
        if ascii_only:
            value = f"value-{i:06d}-".encode() + b"x" * (i % 37)
        else:
            value = f"value-{i:06d}-".encode() + bytes([i % 256, 0, 255, 10]) + b"y" * (i % 37)
        if static_headers is not None:
            headers = static_headers
        elif ascii_only:
            headers = (("seq", str(i).encode()), ("kind", b"test"))
        else:
            headers = (("seq", str(i).encode()), ("bin", bytes([0, i % 256, 255])), ("seq", b"dup"))
        out.append((key, value, headers))
    return out


# --------------------------------------------------------------------------- producers


def produce_confluent(bootstrap: str, topic: str, records: list[Rec], codec: str) -> None:
    from confluent_kafka import Producer

    errors: list[str] = []

    def on_delivery(err: Any, msg: Any) -> None:
        if err is not None:
            errors.append(str(err))

    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "compression.type": codec,
            "linger.ms": 20,
            "acks": "all",
            "enable.idempotence": False,
            "max.in.flight.requests.per.connection": 1,
        }
    )
    for key, value, headers in records:
        while True:
            try:
                producer.produce(
                    topic, value=value, key=key, headers=list(headers), on_delivery=on_delivery
                )
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    remaining = producer.flush(60)
    assert remaining == 0, f"confluent: {remaining} records not delivered"
    assert not errors, f"confluent delivery errors: {errors[:5]}"


def produce_kafka_python(bootstrap: str, topic: str, records: list[Rec], codec: str) -> None:
    from kafka import KafkaProducer

    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        compression_type=None if codec == "none" else codec,
        linger_ms=20,
        acks="all",
        max_in_flight_requests_per_connection=1,
        # The codec matrix tests the data path; the default (idempotent) producer is
        # covered by test_kafka_python_default_producer.
        enable_idempotence=False,
    )
    try:
        futures = [producer.send(topic, key=k, value=v, headers=list(h)) for k, v, h in records]
        producer.flush(60)
        for f in futures:
            f.get(timeout=60)
    finally:
        producer.close(10)


def produce_aiokafka(bootstrap: str, topic: str, records: list[Rec], codec: str) -> None:
    from aiokafka import AIOKafkaProducer

    async def run() -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap,
            compression_type=None if codec == "none" else codec,
            linger_ms=20,
            acks="all",
            max_batch_size=256 * 1024,
        )
        await producer.start()
        try:
            futures = [
                await producer.send(topic, key=k, value=v, headers=list(h)) for k, v, h in records
            ]
            await producer.flush()
            await asyncio.gather(*futures)
        finally:
            await producer.stop()

    asyncio.run(run())


def produce_kcat(bootstrap: str, topic: str, records: list[Rec], codec: str) -> None:
    headers = {h for _, _, h in records}
    assert len(headers) == 1, "kcat can only add the same headers to every record"
    lines = b"".join(k + b"\t" + v + b"\n" for k, v, _ in records)
    cmd = ["kcat", "-b", bootstrap, "-P", "-t", topic, "-K", "\t", "-z", codec, "-X", "acks=all"]
    for name, value in next(iter(headers)):
        cmd += ["-H", f"{name}={value.decode()}"]
    proc = subprocess.run(cmd, input=lines, capture_output=True, timeout=120)
    assert proc.returncode == 0, f"kcat produce failed: {proc.stderr.decode()[-2000:]}"


PRODUCERS: dict[str, Callable[[str, str, list[Rec], str], None]] = {
    "confluent": produce_confluent,
    "kafka-python": produce_kafka_python,
    "aiokafka": produce_aiokafka,
    "kcat": produce_kcat,
}

# --------------------------------------------------------------------------- consumers

Read = dict[int, list[tuple[int, Any]]]
"""partition -> [(offset, record)] in the order read."""


def consume_confluent(bootstrap: str, topic: str, expected: int) -> Read:
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "flows-test-assign-only",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
        }
    )
    out: Read = defaultdict(list)
    try:
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
        n = 0
        deadline = time.monotonic() + READ_TIMEOUT_S
        while n < expected and time.monotonic() < deadline:
            batch: list[Any] = consumer.consume(num_messages=5000, timeout=1.0)
            for msg in batch:
                if msg.error():
                    raise AssertionError(f"confluent consume error: {msg.error()}")
                headers = tuple((k, v) for k, v in (msg.headers() or []))
                out[msg.partition()].append((msg.offset(), (msg.key(), msg.value(), headers)))
                n += 1
    finally:
        consumer.close()
    return out


def consume_kafka_python(bootstrap: str, topic: str, expected: int) -> Read:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    out: Read = defaultdict(list)
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        n = 0
        deadline = time.monotonic() + READ_TIMEOUT_S
        while n < expected and time.monotonic() < deadline:
            for tp, msgs in consumer.poll(timeout_ms=1000, max_records=5000).items():
                for m in msgs:
                    raw_headers: Any = m.headers
                    headers = tuple((k, v) for k, v in raw_headers)
                    out[tp.partition].append((m.offset, (m.key, m.value, headers)))
                    n += 1
    finally:
        consumer.close()
    return out


def consume_aiokafka(bootstrap: str, topic: str, expected: int) -> Read:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    async def run() -> Read:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await consumer.start()
        out: Read = defaultdict(list)
        try:
            tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            n = 0
            deadline = time.monotonic() + READ_TIMEOUT_S
            while n < expected and time.monotonic() < deadline:
                batches = await consumer.getmany(timeout_ms=1000, max_records=5000)
                for tp, msgs in batches.items():
                    for m in msgs:
                        headers = tuple((k, bytes(v)) for k, v in m.headers)
                        out[tp.partition].append((m.offset, (m.key, m.value, headers)))
                        n += 1
        finally:
            await consumer.stop()
        return out

    return asyncio.run(run())


def consume_kcat(bootstrap: str, topic: str, expected: int) -> Read:
    out: Read = defaultdict(list)
    for p in range(PARTITIONS):
        cmd = [
            "kcat",
            "-b",
            bootstrap,
            "-C",
            "-t",
            topic,
            "-p",
            str(p),
            "-o",
            "beginning",
            "-e",
            "-J",
        ]
        proc = subprocess.run(cmd, capture_output=True, timeout=READ_TIMEOUT_S)
        assert proc.returncode == 0, f"kcat consume failed: {proc.stderr.decode()[-2000:]}"
        for line in proc.stdout.decode().splitlines():
            if not line.strip():
                continue
            m = json.loads(line)
            raw = m.get("headers") or []
            headers = tuple((raw[i], raw[i + 1].encode()) for i in range(0, len(raw), 2))
            key = None if m["key"] is None else m["key"].encode()
            value = None if m["payload"] is None else m["payload"].encode()
            out[m["partition"]].append((m["offset"], (key, value, headers)))
    return out


CONSUMERS: dict[str, Callable[[str, str, int], Read]] = {
    "confluent": consume_confluent,
    "kafka-python": consume_kafka_python,
    "aiokafka": consume_aiokafka,
    "kcat": consume_kcat,
}

# --------------------------------------------------------------------------- the check


def check_read_back(produced: list[Rec], read: Read, who: str) -> None:
    total = sum(len(v) for v in read.values())
    assert total == len(produced), f"{who}: read {total} records, produced {len(produced)}"
    assert set(read) <= set(range(PARTITIONS))
    key_partition: dict[bytes, int] = {}
    for p, items in read.items():
        offsets = [o for o, _ in items]
        assert offsets == list(range(len(items))), (
            f"{who}: partition {p} offsets are not 0..{len(items) - 1} in order "
            f"(first few: {offsets[:10]})"
        )
        for _, (key, _, _) in items:
            assert key is not None
            other = key_partition.setdefault(key, p)
            assert other == p, f"{who}: key {key!r} found in partitions {other} and {p}"
    assert len({p for p, items in read.items() if items}) == PARTITIONS, (
        f"{who}: keyed records should spread over all {PARTITIONS} partitions"
    )
    for p, items in read.items():
        expected = [r for r in produced if key_partition.get(r[0]) == p]
        got = [r for _, r in items]
        if got != expected:
            for i, (g, e) in enumerate(zip(got, expected, strict=False)):
                if g != e:
                    raise AssertionError(
                        f"{who}: partition {p} offset {i}: read {g!r}, expected {e!r}"
                    )
            raise AssertionError(f"{who}: partition {p} differs in length")


def _available(client: str) -> None:
    if client == "kcat" and shutil.which("kcat") is None:
        pytest.skip("kcat is not installed (apt-get install kcat)")


@pytest.fixture(scope="module")
def bootstrap(module_broker_factory: Any) -> str:
    broker = module_broker_factory({"num.partitions": str(PARTITIONS)})
    return str(broker.bootstrap)


def _roundtrip(bootstrap: str, producer: str, consumer: str, codec: str) -> None:
    _available(producer)
    _available(consumer)
    text_only = "kcat" in (producer, consumer)
    records = make_records(
        N_RECORDS,
        ascii_only=text_only,
        static_headers=KCAT_HEADERS if producer == "kcat" else None,
    )
    topic = f"clients-{producer}-to-{consumer}-{codec}"
    PRODUCERS[producer](bootstrap, topic, records, codec)
    read = CONSUMERS[consumer](bootstrap, topic, len(records))
    check_read_back(records, read, f"{producer} -> {consumer} ({codec})")


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("client", CLIENTS)
def test_client_roundtrip(bootstrap: str, client: str, codec: str) -> None:
    _roundtrip(bootstrap, client, client, codec)


@pytest.mark.parametrize(
    ("producer", "consumer", "codec"),
    [
        ("confluent", "kafka-python", "zstd"),
        ("kafka-python", "confluent", "lz4"),
        ("aiokafka", "kcat", "snappy"),
        ("kcat", "aiokafka", "gzip"),
        ("kafka-python", "aiokafka", "none"),
    ],
)
def test_cross_client(bootstrap: str, producer: str, consumer: str, codec: str) -> None:
    _roundtrip(bootstrap, producer, consumer, codec)


def test_kafka_python_default_producer(bootstrap: str) -> None:
    """kafka-python 3.x with default settings: idempotent, so it needs InitProducerId."""
    from kafka import KafkaProducer

    topic = "clients-kafka-python-defaults"
    records = make_records(100, ascii_only=False, static_headers=None)
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    try:
        futures = [producer.send(topic, key=k, value=v, headers=list(h)) for k, v, h in records]
        producer.flush(30)
        for f in futures:
            f.get(timeout=30)
    finally:
        producer.close(10)
    check_read_back(records, consume_kafka_python(bootstrap, topic, len(records)), "defaults")
