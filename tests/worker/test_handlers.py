"""Error handlers and worker settings, on real tasks without a broker."""

from __future__ import annotations

import json
from typing import Any

import pytest

import flows
from core.collector import InMemoryCollector
from core.errors import TopologyError
from core.worker.config import ErrorHandling, WorkerConfig
from core.worker.handlers import BatchRunner, WorkerFailure
from core.worker.topics import TopicSetupError, plan_layout
from state.memory import InMemoryStore


def _task(app: flows.App, sub: int = 0) -> tuple[Any, InMemoryCollector]:
    collector = InMemoryCollector()
    task = app.topology.create_task(
        sub, 0, stores=lambda spec, tid: InMemoryStore(spec.name), collector=collector
    )
    return task, collector


def _app(**kw: Any) -> flows.App:
    app = flows.App("h", **kw)
    src = app.topic("in", key_serde="str", value_serde="json")
    out = app.topic("out", key_serde="str", value_serde="json")
    app.stream(src).map_values(lambda v: 10 // v["n"], name="divide").to(out)
    return app


def _batch(values: list[bytes]) -> list[tuple[Any, ...]]:
    return [(b"k", v, 0, None, 0, 100 + i) for i, v in enumerate(values)]


def _n(n: int) -> bytes:
    return json.dumps({"n": n}).encode()


def test_fail_names_step_topic_partition_offset() -> None:
    app = _app()
    task, _ = _task(app)
    runner = BatchRunner(app.errors, app.id, lambda t, r: None)
    with pytest.raises(WorkerFailure) as err:
        runner.run(task, "in", _batch([_n(1), b"{bad", _n(2)]))
    msg = str(err.value)
    assert "deserialization error" in msg
    assert "topic 'in'" in msg and "partition 0, offset 101" in msg
    assert "on_deserialization_error" in msg


def test_dead_letter_keeps_the_rest_of_the_batch() -> None:
    app = _app(on_deserialization_error="dead_letter", on_processing_error="dead_letter")
    task, collector = _task(app)
    dead: list[tuple[str, list[Any]]] = []
    runner = BatchRunner(app.errors, app.id, lambda t, r: dead.append((t, r)))
    runner.run(task, "in", _batch([_n(1), b"{bad", _n(2), _n(0), _n(5)]))
    out = [json.loads(r.value) for r in collector.records["out"]]
    assert out == [10, 5, 2]
    assert [d[0] for d in dead] == ["h-dlq", "h-dlq"]
    first = dict(dead[0][1][0][3])
    assert first["flows.error.offset"] == b"101"
    assert first["flows.error.kind"] == b"deserialization"
    second = dict(dead[1][1][0][3])
    assert second["flows.error.offset"] == b"103"
    assert second["flows.error.step"] == b"divide"
    assert second["flows.error.exception"] == b"ZeroDivisionError"
    assert task.consumed[("in", 0)] == 105


def test_log_and_skip_last_record_advances_offset() -> None:
    app = _app(on_processing_error="log_and_skip")
    task, collector = _task(app)
    runner = BatchRunner(app.errors, app.id, lambda t, r: None)
    runner.run(task, "in", _batch([_n(2), _n(0)]))
    assert len(collector.records["out"]) == 1
    assert task.consumed[("in", 0)] == 102
    assert runner.skipped == 1


def test_downstream_error_replays_record_by_record() -> None:
    app = flows.App("agg", on_processing_error="log_and_skip")
    src = app.topic("in", key_serde="str", value_serde="int")
    out = app.topic("out", key_serde="str", value_serde="int")
    (
        app.stream(src)
        .group_by_key(name="g", key_serde="str", value_serde="int")
        .reduce(lambda agg, v: agg + 100 // v, name="r")
        .to_stream()
        .to(out)
    )
    task, _ = _task(app)
    runner = BatchRunner(app.errors, app.id, lambda t, r: None)
    enc = [v.to_bytes(8, "big", signed=True) for v in (1, 0, 4)]
    runner.run(task, "in", [(b"k", e, 0, None, 0, i) for i, e in enumerate(enc)])
    assert runner.skipped == 1
    assert task.consumed[("in", 0)] == 3


def test_config_validation() -> None:
    with pytest.raises(TopologyError, match="not a handler"):
        ErrorHandling(on_deserialization_error="ignore")
    with pytest.raises(TopologyError, match="on_production_error='dead_letter'"):
        ErrorHandling(on_production_error="dead_letter")
    with pytest.raises(TopologyError, match="processing guarantee"):
        WorkerConfig("h:1", processing_guarantee="exactly_twice")
    with pytest.raises(TopologyError, match="standby"):
        WorkerConfig("h:1", num_standby_replicas=-1)
    assert WorkerConfig("h:1").commit_interval_s == 30.0
    assert WorkerConfig("h:1", processing_guarantee="exactly_once").commit_interval_s == 0.1
    assert ErrorHandling(dead_letter_topic="bad-records").dlq_topic("x") == "bad-records"


def test_layout_counts_and_missing_source() -> None:
    app = flows.App("wc")
    lines = app.topic("lines", value_serde="str")
    counts = app.topic("counts-out", key_serde="str", value_serde="int")
    (
        app.stream(lines)
        .flat_map_values(str.split, name="split")
        .group_by(lambda k, w: w, name="by-word", key_serde="str", value_serde="str")
        .count(name="counts")
        .to_stream()
        .to(counts)
    )
    layout = plan_layout(app.topology, {"lines": 6})
    assert layout.partitions["wc-by-word-repartition"] == 6
    assert layout.partitions["wc-counts-changelog"] == 6
    assert layout.internal["wc-counts-changelog"] == {"cleanup.policy": "compact"}
    assert layout.tasks == {0: 6, 1: 6}
    with pytest.raises(TopicSetupError, match=r"source topic 'lines'.*flows topics create"):
        plan_layout(app.topology, {})
