"""examples/pipeline.py (the demo's flow) on the test driver: exact per-minute and total counts."""

from __future__ import annotations

import doctest
from pathlib import Path
from typing import Any

import pytest

import flows
from examples import pipeline
from examples.pipeline import PageView, User
from flows.testing import TopologyTestDriver

MIN = 60_000

USERS = {
    "ann": User(name="Ann", country="FR", plan="pro"),
    "bob": User(name="Bob", country="DE"),
    "crawler": User(name="Crawler", is_bot=True),
    "probe": User(name="Uptime probe", plan="internal", is_bot=True),
}

# (user, page, event time); "zoe" has no user record: a left join keeps her views
VIEWS = [
    ("ann", "/docs", 1_000),
    ("crawler", "/docs", 1_500),
    ("bob", "/", 2_000),
    ("probe", "/", 3_000),
    ("zoe", "/docs", 30_000),
    ("ann", "/pricing", 59_999),
    ("bob", "/docs", MIN),  # the first instant of the second minute
    ("crawler", "/pricing", MIN + 1_000),
    ("ann", "/docs", 50_000),  # out of order, within the 5 s grace (stream time 61 s)
    ("bob", "/", MIN + 4_999),  # minute 0 closes when stream time reaches its end + grace
    ("ann", "/", 59_000),  # still accepted: stream time is 1 ms short of 65 s
    ("zoe", "/pricing", MIN + 5_000),  # stream time 65 s: minute 0 is closed now
    ("bob", "/docs", 10_000),  # too late for its minute: dropped from the windows only
    ("ann", "/docs", 2 * MIN + 500),
]

EXPECTED_WINDOW_UPDATES = [
    ("/docs", 0, MIN, 1),
    ("/", 0, MIN, 1),
    ("/docs", 0, MIN, 2),
    ("/pricing", 0, MIN, 1),
    ("/docs", MIN, 2 * MIN, 1),
    ("/docs", 0, MIN, 3),
    ("/", MIN, 2 * MIN, 1),
    ("/", 0, MIN, 2),
    ("/pricing", MIN, 2 * MIN, 1),
    ("/docs", 2 * MIN, 3 * MIN, 1),
]

EXPECTED_TOTALS = {"/docs": 6, "/": 3, "/pricing": 2}


def _driver(kind: str, tmp_path: Path) -> TopologyTestDriver:
    if kind == "rocksdb":
        return TopologyTestDriver(pipeline.app, store="rocksdb", state_dir=tmp_path)
    return TopologyTestDriver(pipeline.app)


def _rows(driver: TopologyTestDriver) -> list[tuple[Any, ...]]:
    out = driver.output_topic("page-views-per-minute")
    rows = []
    for page, row in out.read_key_values_to_list():
        assert page == row["page"]
        rows.append((row["page"], row["window_start"], row["window_end"], row["count"]))
    return rows


@pytest.mark.parametrize("kind", ["memory", "rocksdb"])
def test_views_joined_to_users_counted_per_page_and_minute(kind: str, tmp_path: Path) -> None:
    with _driver(kind, tmp_path) as driver:
        users = driver.input_topic("users")
        for user_id, user in USERS.items():
            users.pipe_input(user_id, user, timestamp=0)
        views = driver.input_topic("page-views")
        for user_id, page, ts in VIEWS:
            # the event time is the view's own timestamp, not the record's
            views.pipe_input(user_id, PageView(page=page, timestamp=ts), timestamp=7)
        assert _rows(driver) == EXPECTED_WINDOW_UPDATES
        totals = driver.output_topic("page-view-counts")
        assert totals.read_key_values_to_map() == EXPECTED_TOTALS
        assert driver.dropped_late_records == 1
        assert driver.store("views-per-page").all() == EXPECTED_TOTALS
        assert driver.store("users").get("crawler") == USERS["crawler"]


def test_window_records_carry_the_view_time_and_fall_back_to_the_record_time() -> None:
    with TopologyTestDriver(pipeline.app) as driver:
        views = driver.input_topic("page-views")
        views.pipe_input("ann", PageView(page="/a", timestamp=3 * MIN + 1), timestamp=5)
        views.pipe_input("ann", PageView(page="/a"), timestamp=3 * MIN + 2)  # no timestamp
        views.pipe_input("ann", None, timestamp=3 * MIN + 3)  # a tombstone is no view
        records = driver.output_topic("page-views-per-minute").read_records_to_list()
    assert [(r.key, r.value["window_start"], r.value["count"]) for r in records] == [
        ("/a", 3 * MIN, 1),
        ("/a", 3 * MIN, 2),
    ]
    assert [r.timestamp for r in records] == [3 * MIN + 1, 3 * MIN + 2]


def test_users_table_changes_apply_to_later_views_only() -> None:
    with TopologyTestDriver(pipeline.app) as driver:
        users = driver.input_topic("users")
        views = driver.input_topic("page-views")
        views.pipe_input("kim", PageView(page="/", timestamp=1_000))  # unknown yet: counted
        users.pipe_input("kim", User(name="Kim", is_bot=True), timestamp=1_500)
        views.pipe_input("kim", PageView(page="/", timestamp=2_000))  # a bot now: dropped
        users.pipe_input("kim", User(name="Kim"), timestamp=2_500)
        views.pipe_input("kim", PageView(page="/", timestamp=3_000))  # a human again
        users.pipe_input("kim", User(name="Kim", is_bot=True), timestamp=3_500)
        users.pipe_input("kim", None, timestamp=4_000)  # deleted: unknown, counted
        views.pipe_input("kim", PageView(page="/", timestamp=5_000))
        assert [r[3] for r in _rows(driver)] == [1, 2, 3]
        assert driver.output_topic("page-view-counts").read_key_values_to_map() == {"/": 3}


def test_a_view_that_is_not_a_page_view_names_the_topic() -> None:
    # on the driver a bad record raises; a worker sends it to pipeline-dlq (the worker test)
    assert pipeline.app.errors.on_deserialization_error == "dead_letter"
    with TopologyTestDriver(pipeline.app) as driver:
        src = driver.input_topic("page-views", value_serde="str")
        with pytest.raises(flows.ProcessingError, match="topic 'page-views'"):
            src.pipe_input("ann", '{"referrer": "/"}')
        assert driver.output_topic("page-view-counts").read_key_values_to_list() == []


def test_module_docstring_example() -> None:
    result = doctest.testmod(pipeline, verbose=False)
    assert result.attempted > 0
    assert result.failed == 0
