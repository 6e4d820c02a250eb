"""Durability of the included broker across clean restarts, crashes and torn segment files.

* A clean stop and start keeps data, topics (partition counts) and topic configs.
* ``kill -9`` during an acks=all produce load with ``log.flush.interval.messages=1``:
  every record the producer saw acknowledged is there afterwards, at its acknowledged
  offset, and the broker starts cleanly.
* Garbage appended to, or a batch cut off at, the tail of a segment file: the broker
  starts and every earlier record is intact.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

DURABLE = {"log.flush.interval.messages": "1"}


def wait_for(condition: Callable[[], Any], what: str, timeout_s: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(0.2)


def create_topic(bootstrap: str, name: str, partitions: int, configs: dict[str, str]) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics(
        [NewTopic(name, num_partitions=partitions, replication_factor=1, config=configs)],
        operation_timeout=30,
    )
    futures[name].result(30)


def topic_configs(bootstrap: str, name: str) -> dict[str, str]:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    resource = ConfigResource(ConfigResource.Type.TOPIC, name)
    entries = admin.describe_configs([resource])[resource].result(30)
    return {k: e.value for k, e in entries.items()}


def topic_partitions(bootstrap: str, name: str) -> int:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    md = admin.list_topics(name, timeout=30)
    topic = md.topics[name]
    assert topic.error is None, f"metadata for {name}: {topic.error}"
    return len(topic.partitions)


def produce(
    bootstrap: str,
    topic: str,
    values: list[bytes],
    *,
    partition: int | None = None,
    one_batch_each: bool = False,
) -> list[tuple[int, int, bytes]]:
    """Produce with acks=all; returns the acknowledged (partition, offset, value)."""
    acked: list[tuple[int, int, bytes]] = []
    errors: list[str] = []

    def on_delivery(err: Any, msg: Any) -> None:
        if err is not None:
            errors.append(str(err))
        else:
            acked.append((msg.partition(), msg.offset(), msg.value()))

    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})
    for v in values:
        kwargs: dict[str, Any] = {"key": v[:8], "value": v, "on_delivery": on_delivery}
        if partition is not None:
            kwargs["partition"] = partition
        producer.produce(topic, **kwargs)
        if one_batch_each:
            producer.flush(30)
    assert producer.flush(60) == 0
    assert not errors, errors[:5]
    return acked


def read_all(bootstrap: str, topic: str, partitions: int) -> dict[int, dict[int, bytes]]:
    """partition -> {offset: value}, read from the beginning up to each high watermark."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "durability-reader",
            "enable.auto.commit": False,
        }
    )
    out: dict[int, dict[int, bytes]] = {p: {} for p in range(partitions)}
    try:
        ends = {}
        for p in range(partitions):
            _, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)
            ends[p] = high
        todo = {p for p in range(partitions) if ends[p] > 0}
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in todo])
        deadline = time.monotonic() + 120
        while todo and time.monotonic() < deadline:
            batch: list[Any] = consumer.consume(num_messages=5000, timeout=1.0)
            for msg in batch:
                if msg.error():
                    raise AssertionError(f"consume error: {msg.error()}")
                out[msg.partition()][msg.offset()] = msg.value()
                if msg.offset() >= ends[msg.partition()] - 1:
                    todo.discard(msg.partition())
        assert not todo, f"partitions {sorted(todo)} not read to their end {ends}"
    finally:
        consumer.close()
    return out


def test_clean_restart_keeps_data_topics_and_configs(broker: Any) -> None:
    topic = "durable-restart"
    create_topic(
        broker.bootstrap, topic, 3, {"retention.ms": "123456789", "cleanup.policy": "delete"}
    )
    values = [f"record-{i:05d}".encode() for i in range(3000)]
    acked = produce(broker.bootstrap, topic, values)
    before = read_all(broker.bootstrap, topic, 3)

    broker.restart()

    assert topic_partitions(broker.bootstrap, topic) == 3
    assert topic_configs(broker.bootstrap, topic)["retention.ms"] == "123456789"
    after = read_all(broker.bootstrap, topic, 3)
    assert after == before
    for p, o, v in acked:
        assert after[p][o] == v
    # Appends continue after the last offset of each partition.
    more = produce(broker.bootstrap, topic, [b"after-restart"], partition=0)
    assert more == [(0, len(before[0]), b"after-restart")]


class LoadProducer(threading.Thread):
    """acks=all producer in a thread, recording what the broker acknowledged."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        super().__init__(daemon=True)
        self.acked: list[tuple[int, int, bytes]] = []
        self.failed = 0
        self.stop_flag = threading.Event()
        self.producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "acks": "all",
                "linger.ms": 2,
                "message.timeout.ms": 5000,
                "retries": 0,
                "reconnect.backoff.max.ms": 200,
            }
        )
        self.topic = topic

    def _on_delivery(self, err: Any, msg: Any) -> None:
        if err is None:
            self.acked.append((msg.partition(), msg.offset(), msg.value()))
        else:
            self.failed += 1

    def run(self) -> None:
        i = 0
        while not self.stop_flag.is_set():
            value = f"load-{i:08d}".encode()
            try:
                self.producer.produce(
                    self.topic, key=value[-3:], value=value, on_delivery=self._on_delivery
                )
                i += 1
            except BufferError:
                pass
            self.producer.poll(0.0005 if i % 50 else 0.01)
        self.producer.flush(15)


def test_kill9_during_acks_all_load_keeps_acknowledged_records(start_broker: Any) -> None:
    broker = start_broker(DURABLE)
    topic = "durable-kill9"
    create_topic(broker.bootstrap, topic, 3, {})
    load = LoadProducer(broker.bootstrap, topic)
    load.start()
    try:
        wait_for(lambda: len(load.acked) >= 3000, "3000 acknowledged records before the crash")
        broker.kill9()
    finally:
        load.stop_flag.set()
        load.join(60)
    acked = list(load.acked)
    assert len(acked) >= 3000

    broker.start(port=broker.port)
    assert "Traceback" not in broker.output_since_start(), broker.tail()
    stored = read_all(broker.bootstrap, topic, 3)
    missing = [(p, o, v) for p, o, v in acked if stored[p].get(o) != v]
    assert not missing, (
        f"{len(missing)} of {len(acked)} acknowledged records lost or changed after kill -9, "
        f"first: {missing[:5]} (stored there: {[stored[p].get(o) for p, o, _ in missing[:5]]})"
    )
    # The broker keeps working on the recovered log.
    ends = {p: max(stored[p], default=-1) + 1 for p in stored}
    more = produce(broker.bootstrap, topic, [b"after-crash"], partition=1)
    assert more == [(1, ends[1], b"after-crash")]


def _segment_files(log_dir: Path, topic: str, partition: int) -> list[Path]:
    part_dir = [d for d in log_dir.rglob(f"{topic}-{partition}") if d.is_dir()]
    assert len(part_dir) == 1, f"expected one {topic}-{partition} directory under the log dir"
    return sorted(part_dir[0].glob("*.log"))


@pytest.mark.parametrize("stop", ["crash", "clean-stop"])
@pytest.mark.parametrize("damage", ["garbage-appended", "batch-cut-short"])
def test_torn_segment_tail_is_truncated_on_start(start_broker: Any, damage: str, stop: str) -> None:
    """Torn tails come with crashes; after a clean stop the damage is by hand (disk, tools)."""
    broker = start_broker(DURABLE)
    topic = f"torn-{damage}-{stop}"
    create_topic(broker.bootstrap, topic, 1, {})
    values = [f"torn-{i:04d}-".encode() + b"z" * 50 for i in range(100)]
    acked = produce(broker.bootstrap, topic, values, partition=0, one_batch_each=True)
    assert [o for _, o, _ in acked] == list(range(100))
    if stop == "crash":
        broker.kill9()
    else:
        broker.stop()

    segment = _segment_files(broker.log_dir, topic, 0)[-1]
    data = segment.read_bytes()
    if damage == "garbage-appended":
        segment.write_bytes(data + b"\x00\x00\x00\x00\x00\x00\x00\x63\x00\x00\x01\x00garbage!" * 7)
        survivors = 100
    else:
        segment.write_bytes(data[:-10])  # the last batch (one record) loses its end
        survivors = 99

    broker.start()
    stored = read_all(broker.bootstrap, topic, 1)[0]
    assert stored == {i: values[i] for i in range(survivors)}
    more = produce(broker.bootstrap, topic, [b"after-repair"], partition=0)
    assert more == [(0, survivors, b"after-repair")]
    # A crash-free restart now finds nothing to repair and keeps everything.
    broker.restart()
    assert read_all(broker.bootstrap, topic, 1)[0] == {
        **{i: values[i] for i in range(survivors)},
        survivors: b"after-repair",
    }
