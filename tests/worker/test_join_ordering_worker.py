"""A stream-table join whose two topics were written before the worker started.

The worker must not process stream records before the table partition of the same task is
loaded (Kafka Streams' rule since KIP-695): every stream record finds its user, although small
fetches hand out stream records before the table is read.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from conftest import committed_to_end, create_topics, produce, read_all, wait_for

from core.errors import TopologyError
from core.worker.config import WorkerConfig

APP = """
import flows

app = flows.App("join-order")
orders = app.topic("orders", key_serde="str", value_serde="str")
users = app.topic("users", key_serde="str", value_serde="str")
enriched = app.topic("enriched", key_serde="str", value_serde="str")

user_table = app.table(users, name="users")
app.stream(orders, name="orders").join(
    user_table, lambda o, u: f"{u}:{o}", name="enrich"
).to(enriched)
"""

N = 2000


def _produce(bootstrap: str, topic: str, records: list[tuple[str, str, int]]) -> None:
    produce(bootstrap, topic, [(k.encode(), v.encode(), ts) for k, v, ts in records])


@pytest.mark.parametrize("guarantee", ["at_least_once", "exactly_once"])
def test_stream_records_wait_for_the_table_written_before_the_worker_started(
    broker: Any, workers: Any, tmp_path: Path, guarantee: str
) -> None:
    b = broker.bootstrap
    create_topics(b, {"orders": 2, "users": 2, "enriched": 2})
    base = int(time.time() * 1000) - 3_600_000  # recent: kept by retention
    # written first in time order, but the orders topic is filled before the worker reads
    # anything, so the first small fetches may well hold orders only
    _produce(b, "users", [(f"u{i}", f"name{i}", base + i) for i in range(N)])
    _produce(b, "orders", [(f"u{i}", f"order{i}", base + N + i) for i in range(N)])
    app_file = tmp_path / "join_app.py"
    app_file.write_text(APP)
    worker = workers(
        app_file,
        b,
        "a",
        "--commit-interval-ms",
        "300",
        "--max-poll-records",
        "20",
        "--processing-guarantee",
        guarantee,
    )
    wait_for(
        "the worker to commit both inputs to their end",
        lambda: committed_to_end(b, "join-order", ["orders", "users"]),
        timeout=120,
    )
    isolation = "read_committed" if guarantee == "exactly_once" else "read_uncommitted"
    records = read_all(b, "enriched", isolation_level=isolation)
    joined = sorted((r.key.decode(), r.value.decode()) for r in records)
    assert joined == sorted((f"u{i}", f"name{i}:order{i}") for i in range(N))
    assert worker.alive()
    assert worker.terminate() == 0


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("max_task_idle_ms", -2, "--max-task-idle-ms must be >= 0, or -1 to never wait"),
        ("max_poll_records", 0, "--max-poll-records must be >= 1"),
    ],
)
def test_bad_worker_settings_are_refused(field: str, value: int, message: str) -> None:
    with pytest.raises(TopologyError, match=message):
        WorkerConfig(bootstrap="localhost:9092", **{field: value})
