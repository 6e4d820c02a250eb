"""Consumer groups against the real broker with three real clients.

Each consumer runs in its own process (the script below), so one can be SIGKILLed like a
crashed machine. A consumer writes one line per event to its own file: the partitions it
was assigned, every record it processed, every offset it committed. The tests read those
files to check that every partition has exactly one owner, that the group rebalances
after a member leaves or dies, and that no record below a committed offset is processed
again (at-least-once: only records after the last commit may repeat).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.structs import OffsetAndMetadata, TopicPartition
from confluent_kafka import Producer

TOPIC = "orders"
PARTITIONS = 6
SESSION_TIMEOUT_MS = 6000
BROKER_OVERRIDES = {"group.initial.rebalance.delay.ms": "100"}

WORKER = r"""
import signal, sys, time

lib, bootstrap, topic, group, out_path = sys.argv[1:6]
out = open(out_path, "a", buffering=1)
stop = False


def note(kind, text=""):
    out.write(f"{time.monotonic():.6f} {kind} {text}\n")


def on_term(*_):
    global stop
    stop = True


signal.signal(signal.SIGTERM, on_term)
COMMON = dict(session_ms=6000, heartbeat_ms=500)


def parts(tps):
    return ",".join(str(tp.partition) for tp in sorted(tps, key=lambda tp: tp.partition))


if lib == "aiokafka":
    import asyncio
    from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener

    class Listener(ConsumerRebalanceListener):
        def __init__(self, consumer):
            self.consumer = consumer

        async def on_partitions_revoked(self, revoked):
            note("REVOKE", parts(revoked))

        async def on_partitions_assigned(self, assigned):
            note("ASSIGN", parts(self.consumer.assignment()))

    async def main():
        c = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, group_id=group, client_id=f"w-{lib}",
            enable_auto_commit=False, auto_offset_reset="earliest",
            session_timeout_ms=6000, heartbeat_interval_ms=500,
        )
        c.subscribe([topic], listener=Listener(c))
        await c.start()
        note("READY")
        while not stop:
            batch = await c.getmany(timeout_ms=200)
            offsets = {}
            for tp, records in batch.items():
                for r in records:
                    note("REC", f"{tp.partition}:{r.offset}")
                offsets[tp] = records[-1].offset + 1
            if offsets:
                try:
                    await c.commit(offsets)
                    for tp, o in offsets.items():
                        note("COMMIT", f"{tp.partition}:{o}")
                except Exception as exc:
                    note("COMMITFAIL", type(exc).__name__)
        await c.stop()
        note("CLOSED")

    asyncio.run(main())

elif lib == "kafka-python":
    from kafka import KafkaConsumer, ConsumerRebalanceListener
    from kafka.structs import OffsetAndMetadata

    c = KafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, client_id=f"w-{lib}",
        enable_auto_commit=False, auto_offset_reset="earliest",
        session_timeout_ms=6000, heartbeat_interval_ms=500,
    )

    class Listener(ConsumerRebalanceListener):
        def on_partitions_revoked(self, revoked):
            note("REVOKE", parts(revoked))

        def on_partitions_assigned(self, assigned):
            note("ASSIGN", parts(c.assignment()))

    c.subscribe([topic], listener=Listener())
    note("READY")
    while not stop:
        batch = c.poll(timeout_ms=200)
        offsets = {}
        for tp, records in batch.items():
            for r in records:
                note("REC", f"{tp.partition}:{r.offset}")
            offsets[tp] = OffsetAndMetadata(records[-1].offset + 1, "", -1)
        if offsets:
            try:
                c.commit(offsets)
                for tp, om in offsets.items():
                    note("COMMIT", f"{tp.partition}:{om.offset}")
            except Exception as exc:
                note("COMMITFAIL", type(exc).__name__)
    c.close()
    note("CLOSED")

else:
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({
        "bootstrap.servers": bootstrap, "group.id": group, "client.id": f"w-{lib}",
        "enable.auto.commit": False, "auto.offset.reset": "earliest",
        "session.timeout.ms": 6000, "heartbeat.interval.ms": 500,
    })

    def on_assign(consumer, assigned):
        note("ASSIGN", parts(assigned))

    def on_revoke(consumer, revoked):
        note("REVOKE", parts(revoked))

    c.subscribe([topic], on_assign=on_assign, on_revoke=on_revoke)
    note("READY")
    while not stop:
        msgs = c.consume(num_messages=200, timeout=0.2)
        offsets = {}
        for m in msgs:
            if m.error():
                continue
            note("REC", f"{m.partition()}:{m.offset()}")
            offsets[m.partition()] = m.offset() + 1
        if offsets:
            try:
                c.commit(offsets=[TopicPartition(topic, p, o) for p, o in offsets.items()],
                         asynchronous=False)
                for p, o in offsets.items():
                    note("COMMIT", f"{p}:{o}")
            except Exception as exc:
                note("COMMITFAIL", type(exc).__name__)
    c.close()
    note("CLOSED")
"""


@dataclass
class Worker:
    name: str
    proc: subprocess.Popen[bytes]
    path: Path
    alive: bool = True

    def events(self) -> list[tuple[float, str, str]]:
        out = []
        for line in self.path.read_text().splitlines():
            parts = line.split(" ", 2)
            if len(parts) >= 2:
                out.append((float(parts[0]), parts[1], parts[2] if len(parts) > 2 else ""))
        return out

    def assignment(self) -> set[int] | None:
        """Partitions currently owned (None while revoked or before the first assignment)."""
        current: set[int] | None = None
        for _, kind, text in self.events():
            if kind == "ASSIGN":
                current = {int(p) for p in text.split(",") if p}
            elif kind == "REVOKE":
                current = None
        return current


@dataclass
class Group:
    lib: str
    bootstrap: str
    tmp: Path
    workers: list[Worker] = field(default_factory=list)

    def start(self, name: str) -> Worker:
        script = self.tmp / "worker.py"
        script.write_text(WORKER)
        path = self.tmp / f"{name}.log"
        path.touch()
        proc = subprocess.Popen(
            [
                sys.executable,
                str(script),
                self.lib,
                self.bootstrap,
                TOPIC,
                f"g-{self.lib}",
                str(path),
            ],
            stdout=subprocess.DEVNULL,
            stderr=open(self.tmp / f"{name}.err", "wb"),  # noqa: SIM115
        )
        worker = Worker(name, proc, path)
        self.workers.append(worker)
        return worker

    def live(self) -> list[Worker]:
        return [w for w in self.workers if w.alive]

    def wait_until(self, what: str, check: object, timeout_s: float = 40.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if check():  # type: ignore[operator]
                return
            time.sleep(0.2)
        logs = {w.name: w.path.read_text()[-1500:] for w in self.workers}
        errs = {w.name: (self.tmp / f"{w.name}.err").read_text()[-1500:] for w in self.workers}
        raise AssertionError(f"timed out waiting for {what}\nlogs: {logs}\nstderr: {errs}")

    def owners_ok(self) -> bool:
        """Every partition has exactly one owner among the live workers."""
        owned: list[int] = []
        for w in self.live():
            a = w.assignment()
            if a is None:
                return False
            owned += sorted(a)
        return sorted(owned) == list(range(PARTITIONS))

    def processed(self) -> set[tuple[int, int]]:
        return {
            (int(t.split(":")[0]), int(t.split(":")[1]))
            for w in self.workers
            for _, kind, t in w.events()
            if kind == "REC"
        }

    def close(self) -> None:
        for w in self.workers:
            if w.proc.poll() is None:
                w.proc.kill()
                w.proc.wait(10)


def produce(bootstrap: str, start: int, count: int) -> set[tuple[int, int]]:
    """``count`` records spread over all partitions; returns their (partition, offset)."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    delivered: set[tuple[int, int]] = set()

    def done(err: object, msg: object) -> None:
        assert err is None, err
        delivered.add((msg.partition(), msg.offset()))  # type: ignore[attr-defined]

    for i in range(start, start + count):
        producer.produce(TOPIC, value=f"v{i}".encode(), partition=i % PARTITIONS, on_delivery=done)
    assert producer.flush(30) == 0
    return delivered


def create_topic(bootstrap: str) -> None:
    async def go() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(TOPIC, PARTITIONS, 1)])
        finally:
            await admin.close()

    asyncio.run(go())


def check_no_reprocessing_below_commit(group: Group) -> None:
    """A record processed twice must not be below an offset committed before the repeat."""
    commits: list[tuple[float, int, int]] = []
    records: dict[tuple[int, int], list[float]] = {}
    for w in group.workers:
        for t, kind, text in w.events():
            if kind == "COMMIT":
                p, o = text.split(":")
                commits.append((t, int(p), int(o)))
            elif kind == "REC":
                p, o = text.split(":")
                records.setdefault((int(p), int(o)), []).append(t)
    for (p, o), times in records.items():
        for t_again in sorted(times)[1:]:
            committed = max((c for t, q, c in commits if q == p and t < t_again), default=0)
            assert o >= committed, (
                f"record {p}:{o} processed again at {t_again} after offset {committed} "
                "was committed"
            )


@pytest.fixture
def group_env(start_broker, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Group]:  # type: ignore[no-untyped-def]
    broker = start_broker(BROKER_OVERRIDES)
    create_topic(broker.bootstrap)
    group = Group(request.param, broker.bootstrap, tmp_path)
    try:
        yield group
    finally:
        group.close()


@pytest.mark.parametrize(
    "group_env", ["aiokafka", "kafka-python", "confluent-kafka"], indirect=True
)
def test_three_consumers_leave_and_crash(group_env: Group) -> None:
    g = group_env
    expected = produce(g.bootstrap, 0, 120)
    a, b, c = g.start("a"), g.start("b"), g.start("c")
    g.wait_until(
        "three owners for six partitions",
        lambda: len(g.live()) == 3 and all(w.assignment() for w in g.live()) and g.owners_ok(),
    )
    g.wait_until("all records processed", lambda: expected <= g.processed())

    # A member that leaves cleanly: the other two take over its partitions.
    a.proc.send_signal(signal.SIGTERM)
    assert a.proc.wait(30) == 0
    a.alive = False
    assert a.events()[-1][1] == "CLOSED"
    expected |= produce(g.bootstrap, 1000, 60)
    g.wait_until("two owners after a leave", g.owners_ok)
    g.wait_until("records after the leave processed", lambda: expected <= g.processed())

    # A member that dies without leaving: removed when its session times out.
    os.kill(b.proc.pid, signal.SIGKILL)
    b.proc.wait(10)
    b.alive = False
    expected |= produce(g.bootstrap, 2000, 60)
    g.wait_until("one owner after a crash", lambda: c.assignment() == set(range(PARTITIONS)))
    g.wait_until("records after the crash processed", lambda: expected <= g.processed())
    check_no_reprocessing_below_commit(g)
    c.proc.send_signal(signal.SIGTERM)
    assert c.proc.wait(30) == 0


def test_committed_offsets_survive_restart(start_broker) -> None:  # type: ignore[no-untyped-def]
    broker = start_broker(BROKER_OVERRIDES)
    create_topic(broker.bootstrap)
    produce(broker.bootstrap, 0, 12)
    tps = [TopicPartition(TOPIC, p) for p in range(PARTITIONS)]
    wanted = {tp: OffsetAndMetadata(tp.partition + 1, f"meta-{tp.partition}") for tp in tps}

    async def commit() -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=broker.bootstrap, group_id="durable", enable_auto_commit=False
        )
        await consumer.start()
        try:
            consumer.assign(tps)
            await consumer.commit(wanted)
        finally:
            await consumer.stop()

    async def read_back() -> dict[TopicPartition, OffsetAndMetadata]:
        admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
        await admin.start()
        try:
            return await admin.list_consumer_group_offsets("durable")
        finally:
            await admin.close()

    asyncio.run(commit())
    assert asyncio.run(read_back()) == wanted
    broker.restart()
    assert asyncio.run(read_back()) == wanted

    # A consumer using the group resumes from the committed offsets.
    async def positions() -> list[int]:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=broker.bootstrap, group_id="durable", enable_auto_commit=False
        )
        await consumer.start()
        try:
            consumer.assign(tps)
            return [await consumer.position(tp) for tp in tps]
        finally:
            await consumer.stop()

    assert asyncio.run(positions()) == [p + 1 for p in range(PARTITIONS)]


def test_static_member_rejoins_with_its_partitions(start_broker) -> None:  # type: ignore[no-untyped-def]
    from confluent_kafka import Consumer

    broker = start_broker(BROKER_OVERRIDES)
    create_topic(broker.bootstrap)

    def member(instance: str) -> Consumer:
        consumer = Consumer(
            {
                "bootstrap.servers": broker.bootstrap,
                "group.id": "static",
                "group.instance.id": instance,
                "session.timeout.ms": SESSION_TIMEOUT_MS,
                "heartbeat.interval.ms": 500,
                "enable.auto.commit": False,
            }
        )
        consumer.subscribe([TOPIC])
        return consumer

    def owned(consumers: list[Consumer]) -> list[set[int]]:
        deadline = time.monotonic() + 40
        while True:
            for c in consumers:
                c.poll(0.1)
            sets = [{tp.partition for tp in c.assignment()} for c in consumers]
            if sorted(p for s in sets for p in s) == list(range(PARTITIONS)) and all(sets):
                return sets
            assert time.monotonic() < deadline, f"no stable assignment: {sets}"

    first, second = member("s1"), member("s2")
    before = owned([first, second])
    first.close()  # a static member does not leave the group on close
    again = member("s1")
    try:
        after = owned([again, second])
        assert after == before
    finally:
        again.close()
        second.close()
