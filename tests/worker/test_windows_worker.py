"""A windowed count and a stream-table join through ``flows worker`` on the included broker,
compared with what the TopologyTestDriver computes for the same input."""

from __future__ import annotations

import importlib.util
import sys
import time
from pathlib import Path
from typing import Any

from conftest import create_topics, produce, read_all, wait_for

from flows import windows
from flows.testing import TopologyTestDriver

APP = """
import flows
from flows import windows

app = flows.App("{app_id}")
clicks = app.topic("clicks", key_serde="str", value_serde="str")
users = app.topic("users", key_serde="str", value_serde="str")
per_window = app.topic("clicks-per-window", key_serde=windows.windowed_serde("str"),
                       value_serde="int")
enriched = app.topic("enriched", key_serde="str", value_serde="str")

click_stream = app.stream(clicks, name="clicks")
(click_stream.group_by_key()
    .window(windows.tumbling(10, grace=60))
    .count(name="per-window")
    .to_stream()
    .to(per_window))
user_table = app.table(users, name="users")
click_stream.join(user_table, lambda c, u: f"{{u}}:{{c}}", name="enrich").to(enriched)
"""


def _produce(bootstrap: str, topic: str, records: list[tuple[str, str, int]]) -> None:
    produce(bootstrap, topic, [(k.encode(), v.encode(), ts) for k, v, ts in records])


def _load(path: Path) -> Any:
    spec = importlib.util.spec_from_file_location(f"win_app_{path.parent.name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module.app


def test_windowed_count_and_stream_table_join_match_the_driver(
    broker: Any, workers: Any, tmp_path: Path
) -> None:
    b = broker.bootstrap
    create_topics(b, {"clicks": 2, "users": 2, "clicks-per-window": 2, "enriched": 2})
    app_file = tmp_path / "win_app.py"
    app_file.write_text(APP.format(app_id="win-e2e"))
    base = (int(time.time() * 1000) // 10_000 - 20) * 10_000  # recent: kept by retention
    users = [(f"u{i}", f"name{i}", base) for i in range(6)]
    clicks = [
        (f"u{i % 6}", f"page{i}", base + (i * 1_700) % 45_000 + (i % 3) * 100) for i in range(120)
    ]
    worker = workers(app_file, b, "a", "--commit-interval-ms", "300")
    # internal topics exist once the worker has its tasks (reading them earlier would
    # auto-create them with the wrong partition count)
    wait_for("the worker's tasks", lambda: "tasks: active ['" in worker.output())
    _produce(b, "users", users)
    # the table must be complete before clicks arrive, for a deterministic join
    wait_for(
        "the users table changelog",
        lambda: len(read_all(b, "win-e2e-users-changelog")) >= len(users),
        timeout=120,
    )
    _produce(b, "clicks", clicks)
    wait_for(
        "all join results",
        lambda: len(read_all(b, "enriched")) >= len(clicks),
        timeout=180,
    )
    wait_for(
        "all window updates",
        lambda: len(read_all(b, "clicks-per-window")) >= len(clicks),
        timeout=180,
    )
    assert worker.alive()

    with TopologyTestDriver(_load(app_file)) as driver:
        for k, v, ts in users:
            driver.input_topic("users").pipe_input(k, v, timestamp=ts)
        for k, v, ts in clicks:
            driver.input_topic("clicks").pipe_input(k, v, timestamp=ts)
        expected_counts = driver.output_topic("clicks-per-window").read_key_values_to_map()
        expected_join = sorted(driver.output_topic("enriched").read_key_values_to_list())

    wk = windows.windowed_serde("str")
    counts: dict[Any, int] = {}
    for r in sorted(read_all(b, "clicks-per-window"), key=lambda r: (r.partition, r.offset)):
        counts[wk.decode(r.key)] = int.from_bytes(r.value, "big", signed=True)
    joined = sorted((r.key.decode(), r.value.decode()) for r in read_all(b, "enriched"))
    assert counts == expected_counts
    assert joined == expected_join
    assert len(expected_counts) > 6  # several windows per key
    assert worker.terminate() == 0
