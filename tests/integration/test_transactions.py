"""Idempotent and transactional producers of unmodified clients against the broker.

Consume-transform-produce in transactions with confluent-kafka and aiokafka (commit and
abort), read_committed consumers that must never see aborted records, a transactional
producer killed with SIGKILL mid-transaction (ended by the coordinator's timeout, or by
a new producer with the same transactional id), and offsets committed in a transaction
that become visible only with the commit.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.conftest import BrokerFactory, BrokerProcess

WAIT_S = 60.0
OVERRIDES = {
    "offsets.topic.num.partitions": "1",
    "transaction.state.log.num.partitions": "1",
    "transaction.abort.timed.out.transaction.cleanup.interval.ms": "200",
    "group.initial.rebalance.delay.ms": "0",
}


@pytest.fixture(scope="module")
def broker(module_broker_factory: BrokerFactory) -> BrokerProcess:
    return module_broker_factory(OVERRIDES)


def create_topic(bootstrap: str, name: str, partitions: int = 1) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(name, partitions, 1)]).values():
        future.result(30)


def produce_plain(bootstrap: str, topic: str, values: list[bytes]) -> None:
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap})
    for v in values:
        producer.produce(topic, value=v)
    assert producer.flush(30) == 0


def read_values(
    bootstrap: str, topic: str, expected: int, *, committed: bool = True, partitions: int = 1
) -> list[bytes]:
    """Read a topic from the start until ``expected`` values arrived (then a little more)."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "txn-test-reader",
            "enable.auto.commit": False,
            "isolation.level": "read_committed" if committed else "read_uncommitted",
        }
    )
    out: list[bytes] = []
    try:
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
        deadline = time.monotonic() + WAIT_S
        idle = 0
        while time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            if msg is None:
                idle += 1
                if len(out) >= expected and idle >= 3:
                    break
                continue
            idle = 0
            assert msg.error() is None, msg.error()
            out.append(msg.value())
    finally:
        consumer.close()
    return out


# --------------------------------------------------------------------------- idempotence


def test_kafka_python_default_producer_is_idempotent(broker: BrokerProcess) -> None:
    from kafka import KafkaProducer

    topic = "txn-kafka-python-idempotent"
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap)  # idempotent by default
    try:
        futures = [producer.send(topic, value=b"v%d" % i) for i in range(50)]
        producer.flush(30)
        offsets = [f.get(timeout=30).offset for f in futures]
    finally:
        producer.close(10)
    assert offsets == list(range(50))
    assert read_values(broker.bootstrap, topic, 50) == [b"v%d" % i for i in range(50)]


@pytest.mark.parametrize("stop", ["clean", "kill9"])
def test_idempotent_producer_survives_broker_restart(
    start_broker: BrokerFactory, stop: str
) -> None:
    """The broker remembers the producer's sequences across a restart (snapshot or log)."""
    from kafka import KafkaProducer

    broker = start_broker(OVERRIDES)
    topic = "txn-restart"
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, retries=20)
    try:
        first = [producer.send(topic, value=b"a%d" % i) for i in range(10)]
        producer.flush(30)
        assert [f.get(timeout=30).offset for f in first] == list(range(10))
        if stop == "clean":
            broker.restart()
        else:
            broker.kill9()
            broker.start(port=broker.port)
        second = [producer.send(topic, value=b"b%d" % i) for i in range(10)]
        producer.flush(60)
        assert [f.get(timeout=60).offset for f in second] == list(range(10, 20))
    finally:
        producer.close(10)
    expected = [b"a%d" % i for i in range(10)] + [b"b%d" % i for i in range(10)]
    assert read_values(broker.bootstrap, topic, 20) == expected


# --------------------------------------------------------------------------- confluent


def test_confluent_consume_transform_produce(broker: BrokerProcess) -> None:
    from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

    src, dst, group = "txn-cf-in", "txn-cf-out", "txn-cf-app"
    create_topic(broker.bootstrap, dst)
    produce_plain(broker.bootstrap, src, [b"%d" % i for i in range(20)])
    consumer = Consumer(
        {
            "bootstrap.servers": broker.bootstrap,
            "group.id": group,
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "auto.offset.reset": "earliest",
        }
    )
    producer = Producer({"bootstrap.servers": broker.bootstrap, "transactional.id": "cf-app"})
    producer.init_transactions(30)
    consumer.assign([TopicPartition(src, 0, 0)])
    # read_uncommitted: OffsetFetch without require_stable answers at once.
    watcher = Consumer(
        {
            "bootstrap.servers": broker.bootstrap,
            "group.id": group,
            "isolation.level": "read_uncommitted",
        }
    )
    # read_committed: OffsetFetch with require_stable gets UNSTABLE_OFFSET_COMMIT (and
    # retries) while the transaction holds an offset of the group.
    stable = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group})
    try:

        def run_batch(commit: bool, start: int) -> None:
            got: list[Any] = []
            deadline = time.monotonic() + WAIT_S
            while len(got) < 10 and time.monotonic() < deadline:
                got += [m for m in consumer.consume(10 - len(got), 0.5) if m.error() is None]
            assert len(got) == 10
            producer.begin_transaction()
            for m in got:
                producer.produce(dst, value=b"x" + m.value())
            producer.send_offsets_to_transaction(
                [TopicPartition(src, 0, got[-1].offset() + 1)],
                consumer.consumer_group_metadata(),
                30,
            )
            # Inside the transaction the group's offset is not committed yet.
            assert watcher.committed([TopicPartition(src, 0)], 30)[0].offset == start or start == 0
            if start == 0 and not commit:
                assert watcher.committed([TopicPartition(src, 0)], 30)[0].offset < 0
                with pytest.raises(KafkaException):
                    stable.committed([TopicPartition(src, 0)], 1)
            if commit:
                producer.commit_transaction(30)
            else:
                producer.abort_transaction(30)
                consumer.seek(TopicPartition(src, 0, start))

        run_batch(False, 0)  # aborted: rewind and redo
        assert watcher.committed([TopicPartition(src, 0)], 30)[0].offset < 0
        run_batch(True, 0)
        assert watcher.committed([TopicPartition(src, 0)], 30)[0].offset == 10
        run_batch(True, 10)
        assert watcher.committed([TopicPartition(src, 0)], 30)[0].offset == 20
    finally:
        stable.close()
        watcher.close()
        consumer.close()
    expected = [b"x%d" % i for i in range(20)]
    assert read_values(broker.bootstrap, dst, 20) == expected
    everything = read_values(broker.bootstrap, dst, 30, committed=False)
    assert len(everything) == 30  # the aborted ten are in the log, hidden from read_committed


# --------------------------------------------------------------------------- aiokafka


def test_aiokafka_transactions_commit_and_abort(broker: BrokerProcess) -> None:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

    src, dst, group = "txn-aio-in", "txn-aio-out", "txn-aio-app"
    create_topic(broker.bootstrap, dst, 2)
    produce_plain(broker.bootstrap, src, [b"%d" % i for i in range(10)])

    async def run() -> list[bytes]:
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, transactional_id="aio-app")
        consumer = AIOKafkaConsumer(
            bootstrap_servers=broker.bootstrap,
            group_id=group,
            enable_auto_commit=False,
            isolation_level="read_committed",
            auto_offset_reset="earliest",
        )
        await producer.start()
        await consumer.start()
        tp = TopicPartition(src, 0)
        consumer.assign([tp])
        try:
            records: list[Any] = []
            while len(records) < 10:
                batch = await consumer.getmany(tp, timeout_ms=1000, max_records=10)
                records += batch.get(tp, [])
            for commit in (False, True):
                async with producer.transaction() if commit else _aborting(producer):
                    for r in records:
                        await producer.send(dst, value=(b"ok" if commit else b"no") + r.value)
                    await producer.send_offsets_to_transaction({tp: records[-1].offset + 1}, group)
            committed = await consumer.committed(tp)
        finally:
            await consumer.stop()
            await producer.stop()
        assert committed == 10
        reader = AIOKafkaConsumer(
            dst,
            bootstrap_servers=broker.bootstrap,
            isolation_level="read_committed",
            auto_offset_reset="earliest",
        )
        await reader.start()
        out: list[bytes] = []
        try:
            deadline = time.monotonic() + WAIT_S
            while len(out) < 10 and time.monotonic() < deadline:
                for msgs in (await reader.getmany(timeout_ms=500)).values():
                    out += [m.value for m in msgs]
            for msgs in (await reader.getmany(timeout_ms=500)).values():
                out += [m.value for m in msgs]
        finally:
            await reader.stop()
        return out

    out = asyncio.run(run())
    assert sorted(out) == sorted(b"ok%d" % i for i in range(10))


class _aborting:
    """``async with``: a transaction that is always aborted at the end."""

    def __init__(self, producer: Any) -> None:
        self.producer = producer

    async def __aenter__(self) -> None:
        await self.producer.begin_transaction()

    async def __aexit__(self, *exc: object) -> None:
        await self.producer.abort_transaction()


# --------------------------------------------------------------------------- kill -9

_ZOMBIE = """
import sys, time
from confluent_kafka import Producer
bootstrap, topic, timeout_ms = sys.argv[1], sys.argv[2], sys.argv[3]
p = Producer({"bootstrap.servers": bootstrap, "transactional.id": "zombie",
              "transaction.timeout.ms": int(timeout_ms)})
p.init_transactions(30)
p.begin_transaction()
for i in range(5):
    p.produce(topic, value=b"zombie%d" % i)
assert p.flush(30) == 0
print("in-transaction", flush=True)
time.sleep(600)
"""


@pytest.fixture
def zombie(broker: BrokerProcess) -> Iterator[Any]:
    procs: list[subprocess.Popen[str]] = []

    def start(topic: str, timeout_ms: int) -> None:
        proc = subprocess.Popen(
            [sys.executable, "-c", _ZOMBIE, broker.bootstrap, topic, str(timeout_ms)],
            stdout=subprocess.PIPE,
            text=True,
        )
        procs.append(proc)
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "in-transaction"
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


@pytest.mark.parametrize("ending", ["timeout", "fenced"])
def test_killed_transactional_producer_is_aborted(
    broker: BrokerProcess, zombie: Any, ending: str
) -> None:
    from confluent_kafka import Producer

    topic = f"txn-zombie-{ending}"
    create_topic(broker.bootstrap, topic)
    # A long timeout for the fencing case, so only the new producer can end it.
    zombie(topic, 2000 if ending == "timeout" else 600000)
    produce_plain(broker.bootstrap, topic, [b"after"])  # held back by the open transaction
    if ending == "fenced":
        p = Producer({"bootstrap.servers": broker.bootstrap, "transactional.id": "zombie"})
        p.init_transactions(30)
        p.begin_transaction()
        p.produce(topic, value=b"successor")
        p.commit_transaction(30)
        expected = [b"after", b"successor"]
    else:
        expected = [b"after"]
    assert read_values(broker.bootstrap, topic, len(expected)) == expected
    assert len(read_values(broker.bootstrap, topic, 5 + len(expected), committed=False)) == (
        5 + len(expected)
    )
