"""``flows groups list|describe|reset-offsets`` against a real broker in a known state."""

from __future__ import annotations

import asyncio
import datetime
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.structs import OffsetAndMetadata, TopicPartition
from confluent_kafka import Consumer, Producer
from typer.testing import CliRunner

import flows.cli.groups  # noqa: F401  (registers the `groups` commands)
from flows.cli import app

TOPIC = "events"
PARTITIONS = 3
PER_PARTITION = 4
BASE_MS = (int(time.time()) - 600) * 1000
"""Record i of each partition has timestamp BASE_MS + 1000 * i."""


@pytest.fixture(scope="module")
def bootstrap(module_broker_factory) -> str:  # type: ignore[no-untyped-def]
    broker = module_broker_factory({"group.initial.rebalance.delay.ms": "0"})

    async def setup() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(TOPIC, PARTITIONS, 1)])
        finally:
            await admin.close()

    asyncio.run(setup())
    producer = Producer({"bootstrap.servers": broker.bootstrap})
    for p in range(PARTITIONS):
        for i in range(PER_PARTITION):
            producer.produce(
                TOPIC, value=f"{p}-{i}".encode(), partition=p, timestamp=BASE_MS + 1000 * i
            )
    assert producer.flush(30) == 0
    return str(broker.bootstrap)


def commit(bootstrap: str, group: str, offsets: dict[int, int]) -> None:
    async def go() -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
        )
        await consumer.start()
        try:
            tps = [TopicPartition(TOPIC, p) for p in offsets]
            consumer.assign(tps)
            await consumer.commit(
                {TopicPartition(TOPIC, p): OffsetAndMetadata(o, "") for p, o in offsets.items()}
            )
        finally:
            await consumer.stop()

    asyncio.run(go())


def cli(*args: str) -> Any:
    result = CliRunner().invoke(app, ["groups", *args])
    return result


def cli_json(*args: str) -> Any:
    result = cli(*args, "--format", "json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture
def live_member(bootstrap: str) -> Iterator[Consumer]:
    """A consumer (librdkafka heartbeats in its own thread) that owns every partition."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "live",
            "client.id": "live-client",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 6000,
        }
    )
    consumer.subscribe([TOPIC])
    deadline = time.monotonic() + 30
    while len(consumer.assignment()) < PARTITIONS:
        assert time.monotonic() < deadline, "live consumer got no assignment"
        consumer.poll(0.2)
    try:
        yield consumer
    finally:
        consumer.close()


def test_describe_shows_offsets_end_offsets_and_lag(bootstrap: str) -> None:
    commit(bootstrap, "known", {0: 1, 1: PER_PARTITION})
    doc = cli_json("describe", "known", "--broker", f"kafka://{bootstrap}")
    assert doc["state"] == "Empty" and doc["members"] == []
    rows = {r["partition"]: r for r in doc["partitions"]}
    assert set(rows) == {0, 1}
    assert rows[0] == {
        "topic": TOPIC,
        "partition": 0,
        "committed_offset": 1,
        "end_offset": PER_PARTITION,
        "lag": PER_PARTITION - 1,
        "consumer_id": None,
        "host": None,
        "client_id": None,
    }
    assert rows[1]["lag"] == 0
    table = cli("describe", "known", "--broker", f"kafka://{bootstrap}")
    assert table.exit_code == 0
    assert "group known: Empty" in table.stdout and f"{TOPIC}  0" in table.stdout


def test_describe_and_list_show_owner(bootstrap: str, live_member: Consumer) -> None:
    doc = cli_json("describe", "live", "--broker", bootstrap)
    assert doc["state"] == "Stable"
    (member,) = doc["members"]
    assert member["client_id"] == "live-client" and member["host"] == "/127.0.0.1"
    assert member["consumer_id"] == live_member.memberid()
    rows = doc["partitions"]
    assert [r["partition"] for r in rows] == list(range(PARTITIONS))
    assert all(r["consumer_id"] == member["consumer_id"] for r in rows)
    assert all(r["committed_offset"] is None and r["lag"] is None for r in rows)
    assert all(r["end_offset"] == PER_PARTITION for r in rows)
    listed = {g["group"]: g for g in cli_json("list", "--broker", bootstrap)}
    assert listed["live"] == {"group": "live", "protocol_type": "consumer", "state": "Stable"}

    refused = cli(
        "reset-offsets",
        "live",
        "--topic",
        TOPIC,
        "--to-earliest",
        "--execute",
        "--broker",
        bootstrap,
    )
    assert refused.exit_code == 1
    assert refused.stderr.count("\n") == 1 and "stop the consumers first" in refused.stderr


def committed(bootstrap: str, group: str) -> dict[int, int]:
    doc = cli_json("describe", group, "--broker", bootstrap)
    return {r["partition"]: r["committed_offset"] for r in doc["partitions"]}


def test_reset_offsets_modes(bootstrap: str) -> None:
    commit(bootstrap, "resettable", {0: 2, 1: 2, 2: 2})
    dry = cli_json(
        "reset-offsets", "resettable", "--topic", TOPIC, "--to-earliest", "--broker", bootstrap
    )
    assert dry["executed"] is False
    assert [p["new_offset"] for p in dry["partitions"]] == [0, 0, 0]
    assert committed(bootstrap, "resettable") == {0: 2, 1: 2, 2: 2}

    def reset(*mode: str) -> dict[int, int]:
        cli_json(
            "reset-offsets",
            "resettable",
            "--topic",
            TOPIC,
            *mode,
            "--execute",
            "--broker",
            bootstrap,
        )
        return committed(bootstrap, "resettable")

    assert reset("--to-earliest") == {0: 0, 1: 0, 2: 0}
    assert reset("--shift-by", "3") == {0: 3, 1: 3, 2: 3}
    assert reset("--shift-by", "5") == {0: PER_PARTITION, 1: PER_PARTITION, 2: PER_PARTITION}
    assert reset("--to-offset", "1") == {0: 1, 1: 1, 2: 1}
    assert reset("--to-latest") == {0: PER_PARTITION, 1: PER_PARTITION, 2: PER_PARTITION}
    # The first record at or after BASE_MS + 1.5 s is the one at offset 2.
    moment = datetime.datetime.fromtimestamp(BASE_MS / 1000 + 1.5, tz=datetime.UTC).isoformat()
    assert reset("--to-datetime", moment) == {0: 2, 1: 2, 2: 2}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["reset-offsets", "g", "--topic", TOPIC], "give exactly one of"),
        (
            ["reset-offsets", "g", "--topic", TOPIC, "--to-earliest", "--to-latest"],
            "give exactly one of",
        ),
        (
            ["reset-offsets", "g", "--topic", TOPIC, "--to-datetime", "yesterday"],
            "invalid --to-datetime",
        ),
        (["reset-offsets", "g", "--topic", TOPIC, "--to-offset", "-3"], "invalid --to-offset"),
        (["reset-offsets", "g", "--topic", "no-such-topic", "--to-earliest"], "unknown topic"),
        (["describe", "never-seen"], "does not exist"),
        (["list", "--format", "xml"], "invalid --format"),
    ],
)
def test_bad_input_is_one_line(bootstrap: str, args: list[str], message: str) -> None:
    result = cli(*args, "--broker", bootstrap)
    assert result.exit_code == 1, result.output
    assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr
    assert "Traceback" not in result.output


def test_unreachable_broker_is_one_line() -> None:
    result = cli("list", "--broker", "kafka://127.0.0.1:1")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
