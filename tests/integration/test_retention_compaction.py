"""Time index, retention and compaction, observed through real clients.

The storage layer has its own unit tests; these check the same behaviour end to end:
ListOffsets by timestamp (``offsets_for_times``), deletion of old segments by time and by
size, and log compaction. Background work is awaited by polling for the expected state
with a deadline; nothing here asserts on timing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

FAST_MAINTENANCE = {"log.retention.check.interval.ms": "200"}
T0 = 1_600_000_000_000
"""A fixed, old timestamp (September 2020) for records produced with explicit times."""


def wait_for(condition: Callable[[], Any], what: str, timeout_s: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout_s
    last = None
    while True:
        last = condition()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(0.25)


def create_topic(bootstrap: str, name: str, configs: dict[str, str]) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics(
        [NewTopic(name, num_partitions=1, replication_factor=1, config=configs)]
    )
    futures[name].result(30)


def produce_each(
    bootstrap: str,
    topic: str,
    items: Sequence[tuple[bytes, bytes | None, int]],
    *,
    batch_each: bool,
) -> list[int]:
    """Produce (key, value, timestamp) to partition 0; returns the acknowledged offsets."""
    offsets: list[int] = []
    errors: list[str] = []

    def on_delivery(err: Any, msg: Any) -> None:
        if err is not None:
            errors.append(str(err))
        else:
            offsets.append(msg.offset())

    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 50})
    for key, value, ts in items:
        producer.produce(
            topic, key=key, value=value, partition=0, timestamp=ts, on_delivery=on_delivery
        )
        if batch_each:
            producer.flush(30)
    assert producer.flush(30) == 0
    assert not errors, errors[:5]
    return offsets


def watermarks(bootstrap: str, topic: str) -> tuple[int, int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "retention-probe"})
    try:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
        return int(low), int(high)
    finally:
        consumer.close()


def read_partition(bootstrap: str, topic: str) -> list[tuple[int, bytes | None, bytes | None]]:
    """(offset, key, value) of partition 0 from the beginning to the high watermark."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "retention-reader",
            "enable.partition.eof": True,
        }
    )
    out: list[tuple[int, bytes | None, bytes | None]] = []
    try:
        consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            msg: Any = consumer.poll(1.0)
            if msg is None:
                continue
            if msg.error():
                if msg.error().code() == -191:  # _PARTITION_EOF
                    break
                raise AssertionError(f"consume error: {msg.error()}")
            out.append((msg.offset(), msg.key(), msg.value()))
        else:
            raise AssertionError(f"did not reach the end of {topic}-0")
    finally:
        consumer.close()
    return out


def test_offsets_for_times_gives_exact_offsets(broker: Any) -> None:
    topic = "time-index"
    create_topic(broker.bootstrap, topic, {})
    # 100 records one second apart, in a few multi-record batches and some single ones.
    items = [(f"k{i}".encode(), f"v{i}".encode(), T0 + i * 1000) for i in range(100)]
    offsets = produce_each(broker.bootstrap, topic, items[:60], batch_each=False)
    offsets += produce_each(broker.bootstrap, topic, items[60:], batch_each=True)
    assert offsets == list(range(100))

    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "times"})
    try:
        cases = {
            T0 - 5000: 0,  # before everything: the first record
            T0: 0,
            T0 + 1: 1,  # inside a batch: the first record at or after the time
            T0 + 30_000: 30,
            T0 + 59_500: 60,  # crosses from the multi-record batch to the single ones
            T0 + 75_000: 75,
            T0 + 99_000: 99,
        }
        for ts, expected in cases.items():
            (tp,) = consumer.offsets_for_times([TopicPartition(topic, 0, ts)], timeout=10)
            assert tp.error is None, tp.error
            assert tp.offset == expected, f"offsets_for_times({ts - T0:+d} ms): {tp.offset}"
        (tp,) = consumer.offsets_for_times([TopicPartition(topic, 0, T0 + 100_000)], timeout=10)
        assert tp.offset in (-1, 100), f"after the last record: {tp.offset} (want -1 / end)"
    finally:
        consumer.close()


def test_retention_by_time_deletes_old_segments(start_broker: Any) -> None:
    broker = start_broker(FAST_MAINTENANCE)
    topic = "retention-time"
    # One ~700-byte batch per record and 1000-byte segments: each segment holds one or
    # two batches, so old and new records never share a segment (the old count is even).
    create_topic(broker.bootstrap, topic, {"retention.ms": "60000", "segment.bytes": "1000"})
    now = int(time.time() * 1000)
    old = [(f"old{i}".encode(), b"o" * 650, now - 3_600_000 + i) for i in range(20)]
    new = [(f"new{i}".encode(), b"n" * 650, now + i) for i in range(6)]
    offsets = produce_each(broker.bootstrap, topic, old + new, batch_each=True)
    assert offsets == list(range(26))

    wait_for(lambda: watermarks(broker.bootstrap, topic)[0] >= 20, "old segments deleted")
    assert watermarks(broker.bootstrap, topic) == (20, 26)
    remaining = read_partition(broker.bootstrap, topic)
    assert remaining == [(20 + i, k, v) for i, (k, v, _) in enumerate(new)]


def test_retention_by_size_keeps_newest_segments(start_broker: Any) -> None:
    broker = start_broker(FAST_MAINTENANCE)
    topic = "retention-size"
    create_topic(broker.bootstrap, topic, {"retention.bytes": "3000", "segment.bytes": "1000"})
    now = int(time.time() * 1000)
    items = [(f"s{i}".encode(), f"{i:04d}".encode() + b"s" * 650, now + i) for i in range(20)]
    offsets = produce_each(broker.bootstrap, topic, items, batch_each=True)
    assert offsets == list(range(20))

    def settled() -> tuple[int, list[Any]] | None:
        # Retention runs every 200 ms: take a read that no deletion overlapped.
        low = watermarks(broker.bootstrap, topic)[0]
        if low == 0:
            return None
        remaining = read_partition(broker.bootstrap, topic)
        if watermarks(broker.bootstrap, topic)[0] != low:
            return None
        return low, remaining

    low, remaining = wait_for(settled, "oldest segments deleted")
    assert remaining == [(o, items[o][0], items[o][1]) for o in range(low, 20)]
    # Whole segments go, oldest first, while the rest still exceeds retention.bytes:
    # ~700-byte batches and <= 2 per segment leave between 3000 bytes and 3000 + one segment.
    assert 4 <= len(remaining) <= 8, f"{len(remaining)} records left"


def test_compaction_keeps_latest_value_per_key_at_its_offset(start_broker: Any) -> None:
    broker = start_broker(FAST_MAINTENANCE)
    topic = "compacted"
    create_topic(
        broker.bootstrap,
        topic,
        {
            "cleanup.policy": "compact",
            "segment.bytes": "200",
            "segment.ms": "100",
            "min.cleanable.dirty.ratio": "0.01",
            "delete.retention.ms": "0",
        },
    )
    now = int(time.time() * 1000)
    items: list[tuple[bytes, bytes | None, int]] = []
    for rnd in range(5):
        for k in range(10):
            items.append((f"key-{k}".encode(), f"key-{k}-round-{rnd}".encode(), now))
    items.append((b"key-3", None, now))  # tombstone
    items.append((b"zz-last", b"sentinel", now))  # keeps the real keys out of the active segment
    offsets = produce_each(broker.bootstrap, topic, items, batch_each=True)
    assert offsets == list(range(len(items)))

    latest: dict[bytes, tuple[int, bytes | None]] = {}
    for offset, (key, value, _) in enumerate(items):
        latest[key] = (offset, value)
    expected = sorted((o, k, v) for k, (o, v) in latest.items())
    tombstone = (50, b"key-3", None)
    without_tombstone = [r for r in expected if r != tombstone]

    def compacted() -> bool:
        got = read_partition(broker.bootstrap, topic)
        return got in (expected, without_tombstone)

    wait_for(compacted, "compaction to leave only the latest value per key")
