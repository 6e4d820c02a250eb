"""Event time (timestamp extractors, timestamp-ordered multi-topic batches), punctuation, cron."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

import flows
from core.partition_group import PartitionGroup, merge_by_timestamp
from flows import Windowed, windows
from flows.testing import TopologyTestDriver


def test_topic_timestamp_extractor_drives_windows() -> None:
    app = flows.App("tx")
    src = app.topic(
        "in", key_serde="str", value_serde="json", timestamp_extractor=lambda v: v["at"]
    )
    out = app.topic("out", key_serde=windows.windowed_serde("str"), value_serde="int")
    grouped = app.stream(src).group_by_key()
    grouped.window(windows.tumbling(10, grace=5)).count().to_stream().to(out)
    with TopologyTestDriver(app) as driver:
        # the record timestamps (wall clock 0) are ignored: the value says when it happened
        driver.input_topic("in").pipe_input("a", {"at": 12_000})
        driver.input_topic("in").pipe_input("a", {"at": 3_000})
        records = driver.output_topic("out").read_records_to_list()
        assert [(r.key, r.value, r.timestamp) for r in records] == [
            (Windowed("a", 10_000, 20_000), 1, 12_000),
            (Windowed("a", 0, 10_000), 1, 3_000),
        ]


def test_stream_timestamp_extractor_with_record_args_and_datetime() -> None:
    app = flows.App("tx2")
    out = app.topic("out", key_serde="str", value_serde="str")

    def when(key: Any, value: Any, ts: int) -> datetime:
        return (
            datetime(2024, 1, 1, tzinfo=UTC)
            if value == "new-year"
            else datetime.fromtimestamp(ts / 1000, tz=UTC)
        )

    app.stream(app.topic("in", key_serde="str", value_serde="str"), timestamp_extractor=when).to(
        out
    )
    with TopologyTestDriver(app) as driver:
        driver.input_topic("in").pipe_input("k", "new-year", timestamp=5)
        driver.input_topic("in").pipe_input("k", "other", timestamp=7)
        ts = [r.timestamp for r in driver.output_topic("out").read_records_to_list()]
        assert ts == [1_704_067_200_000, 7]


def test_bad_timestamp_extractors() -> None:
    app = flows.App("txbad")
    with pytest.raises(flows.TopologyError, match="must be a function"):
        app.topic("a", value_serde="str", timestamp_extractor=5)
    with pytest.raises(flows.TopologyError, match=r"\(value\) or \(key, value, record_timestamp\)"):
        app.stream(app.topic("b", value_serde="str"), timestamp_extractor=lambda a, b: 0)
    app2 = flows.App("txfail")
    out = app2.topic("out", value_serde="str")
    app2.stream(
        app2.topic("c", value_serde="json"), timestamp_extractor=lambda v: v["missing"], name="src"
    ).to(out)
    with TopologyTestDriver(app2) as driver, pytest.raises(flows.ProcessingError) as err:
        driver.input_topic("c").pipe_input({"x": 1})
    assert err.value.step == "src"
    assert "KeyError" in str(err.value)


def test_multi_topic_batch_is_processed_lowest_timestamp_first() -> None:
    app = flows.App("order")
    left = app.stream(app.topic("L", key_serde="str", value_serde="str"))
    right = app.stream(app.topic("R", key_serde="str", value_serde="str"))
    out = app.topic("out", key_serde="str", value_serde="str")
    left.join(right, lambda a, b: a + b, window=windows.join_window(5)).to(out)
    with TopologyTestDriver(app) as driver:
        # one batch per topic, as one fetch would return them; L's second record is far ahead:
        # processing L first would make x late, timestamp order joins it with a
        driver.pipe_batches({"L": [("k", "a", 0), ("k", "c", 20_000)], "R": [("k", "x", 3_000)]})
        assert driver.output_topic("out").read_values_to_list() == ["ax"]
        assert driver.dropped_late_records == 0


def test_merge_by_timestamp_keeps_runs_and_per_topic_order() -> None:
    a = [(None, None, t) for t in (1, 2, 3, 10)]
    b = [(None, None, t) for t in (4, 5)]
    runs = merge_by_timestamp([("a", a), ("b", b)])
    assert [(t, [r[2] for r in run]) for t, run in runs] == [
        ("a", [1, 2, 3]),
        ("b", [4, 5]),
        ("a", [10]),
    ]
    assert merge_by_timestamp([("a", []), ("b", b)]) == [("b", b)]


def test_partition_group_waits_for_idle_inputs() -> None:
    group = PartitionGroup(["a", "b"], max_idle_ms=50)
    group.add("a", [(None, None, 1)])
    assert group.drain(0) == []
    assert group.drain(49) == []
    assert group.drain(50) == [("a", [(None, None, 1)])]
    never = PartitionGroup(["a", "b"], max_idle_ms=-1)
    never.add("a", [(None, None, 1)])
    assert never.drain(0) == [("a", [(None, None, 1)])]
    assert never.buffered() == 0


class _Ticker:
    def __init__(self, kind: str, log: list[tuple[str, int]]) -> None:
        self.kind = kind
        self.log = log

    def init(self, ctx: Any) -> None:
        self.ctx = ctx
        self.cancel = ctx.schedule(10, self.kind, self.tick)

    def tick(self, now: int) -> None:
        self.log.append((self.kind, now))
        self.ctx.forward(flows.Record("tick", now, now))
        if len(self.log) == 3:
            self.cancel()

    def process(self, record: Any, ctx: Any) -> None:
        pass


@pytest.mark.parametrize("kind", ["stream_time", "wall_clock"])
def test_punctuation_fires_on_stream_time_or_wall_clock(kind: str) -> None:
    log: list[tuple[str, int]] = []
    app = flows.App(f"punct-{kind}")
    out = app.topic("out", key_serde="str", value_serde="int")
    app.stream(app.topic("in", key_serde="str", value_serde="int")).process(
        lambda: _Ticker(kind, log), key_serde="str", value_serde="int"
    ).to(out)
    with TopologyTestDriver(app) as driver:
        src = driver.input_topic("in")
        if kind == "stream_time":
            for ts in (1_000, 5_000, 11_000, 12_000, 35_000, 60_000):
                src.pipe_input("k", 0, timestamp=ts)
            driver.advance_wall_clock(seconds=100)  # wall clock does not move stream time
            # first at the first record, then every 10 s of stream time (missed ones skipped)
            assert log == [(kind, 1_000), (kind, 11_000), (kind, 35_000)]
        else:
            src.pipe_input("k", 0, timestamp=500_000)  # stream time does not move wall clock
            for _ in range(5):
                driver.advance_wall_clock(seconds=6)
            assert log == [(kind, 12_000), (kind, 24_000), (kind, 30_000)]
        assert driver.output_topic("out").read_values_to_list() == [n for _, n in log]


def _cron_app(name: str, **kw: Any) -> tuple[flows.App, list[Any]]:
    app = flows.App(name)
    fired: list[Any] = []
    counts = app.stream(app.topic("in", key_serde="str", value_serde="str")).group_by_key().count()
    counts.to_stream().to(app.topic("counts", key_serde="str", value_serde="int"))
    app.stream(app.topic("other", value_serde="str")).to(app.topic("copy", value_serde="str"))
    app.topic("ticks", key_serde="str", value_serde="int")

    @app.cron("*/5 * * * *", **kw)
    def every_five(ctx: Any) -> None:
        fired.append((ctx.task_id, ctx.timestamp))
        ctx.send("ticks", ctx.task_id, ctx.timestamp)

    return app, fired


def test_cron_runs_once_per_application_on_the_driver_clock() -> None:
    app, fired = _cron_app("cron-app")
    with TopologyTestDriver(app) as driver:
        driver.advance_wall_clock(seconds=299)
        assert fired == []
        driver.advance_wall_clock(seconds=1)
        assert fired == [("0_0", 300_000)]
        driver.advance_wall_clock(seconds=60)
        driver.advance_wall_clock(seconds=240)
        driver.advance_wall_clock(seconds=1_000)  # jumps over 3 due times: runs once
        assert fired == [("0_0", 300_000), ("0_0", 600_000), ("0_0", 1_500_000)]
        assert driver.output_topic("ticks").read_values_to_list() == [t for _, t in fired]


def test_cron_per_task_and_time_zone() -> None:
    app, fired = _cron_app("cron-task", per="task")
    with TopologyTestDriver(app) as driver:
        driver.advance_wall_clock(seconds=300)
        assert sorted(fired) == [("0_0", 300_000), ("1_0", 300_000)]
    app2 = flows.App("cron-tz")
    seen: list[int] = []
    app2.stream(app2.topic("in", value_serde="str")).to(app2.topic("out", value_serde="str"))
    app2.cron("0 9 * * *", tz="Europe/Paris")(lambda: seen.append(1))
    with TopologyTestDriver(app2) as driver:
        driver.advance_wall_clock(seconds=8 * 3600 - 1)  # 08:59:59 Paris on 1970-01-01
        assert seen == []
        driver.advance_wall_clock(seconds=1)  # 09:00 Paris = 08:00 UTC
        assert seen == [1]


def test_bad_cron_definitions() -> None:
    app = flows.App("cron-bad")
    with pytest.raises(flows.TopologyError, match="not valid"):
        app.cron("every minute")
    with pytest.raises(flows.TopologyError, match="time zone 'Mars/Olympus' is unknown"):
        app.cron("* * * * *", tz="Mars/Olympus")
    with pytest.raises(flows.TopologyError, match="per= must be"):
        app.cron("* * * * *", per="worker")
    with pytest.raises(flows.TopologyError, match="must decorate a function"):
        app.cron("* * * * *")(42)  # type: ignore[arg-type]


def test_stream_time_follows_extracted_event_time() -> None:
    fired: list[int] = []

    class Tick:
        def init(self, ctx: Any) -> None:
            ctx.schedule(10, "stream_time", fired.append)

        def process(self, record: Any, ctx: Any) -> None:
            pass

    app = flows.App("tx-time")
    src = app.topic("in", value_serde="json", timestamp_extractor=lambda v: v["at"])
    app.stream(src).process(Tick)
    with TopologyTestDriver(app) as driver:
        for at in (5_000, 12_000, 16_000):
            driver.input_topic("in").pipe_input({"at": at}, timestamp=999_999_999)
        assert driver.tasks[0].stream_time == 16_000
        assert fired == [5_000, 16_000]


def test_describe_lists_cron_jobs() -> None:
    app, _ = _cron_app("cron-desc", tz="UTC")
    assert "Cron: every_five ('*/5 * * * *', tz UTC, once per application)" in (
        app.topology.describe()
    )
