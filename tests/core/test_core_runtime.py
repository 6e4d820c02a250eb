"""The runtime seams a worker uses: tasks fed batches of consumed records, the collector,
the commit protocol, restore, and the partitioner."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pytest

import flows
from core.collector import InMemoryCollector
from core.errors import ProcessingError
from core.partitioner import default_partition, murmur2
from core.task import Task, commit
from state.memory import InMemoryStore


def _signed(h: int) -> int:
    return h - (1 << 32) if h & 0x80000000 else h


def test_murmur2_matches_kafka_vectors() -> None:
    assert _signed(murmur2(b"21")) == -973932308
    assert _signed(murmur2(b"foobar")) == -790332482
    assert _signed(murmur2(b"a-little-bit-long-string")) == -985981536
    assert _signed(murmur2(b"")) == 275646681
    assert default_partition(None, 8) == 0
    assert 0 <= default_partition(b"abc", 8) < 8


class RecordingCollector(InMemoryCollector):
    def __init__(self) -> None:
        super().__init__(partitions=lambda topic: 4)
        self.events: list[str] = []

    def send(self, topic: str, records: Sequence[Any], partition: int | None = None) -> None:
        self.events.append(f"send {topic} {len(records)} p={partition}")
        super().send(topic, records, partition)

    def flush(self) -> None:
        self.events.append("flush")

    def offsets(self) -> Mapping[tuple[str, int], int]:
        self.events.append("offsets")
        return super().offsets()


def _count_app() -> flows.App:
    app = flows.App("rt")
    s = app.stream(app.topic("in", key_serde="str", value_serde="str", partitions=4))
    s.filter(lambda k, v: v != "skip").group_by_key().count(name="n").to_stream().to(
        app.topic("out", key_serde="str", value_serde="int")
    )
    return app


def _task(app: flows.App, collector: Any, partition: int = 2) -> tuple[Task, dict[str, Any]]:
    opened: dict[str, Any] = {}

    def open_store(spec: Any, task_id: str) -> InMemoryStore:
        opened[spec.name] = InMemoryStore(spec.name)
        return opened[spec.name]

    return app.topology.create_task(0, partition, stores=open_store, collector=collector), opened


def test_task_processes_a_consumed_batch_and_commits_in_protocol_order() -> None:
    collector = RecordingCollector()
    task, stores = _task(_count_app(), collector)
    assert task.id == "0_2"
    batch = [
        (b"a", b"x", 10, None, 2, 100),
        (b"b", b"x", 11, None, 2, 101),
        (b"a", b"skip", 12, None, 2, 102),
        (b"a", b"y", 13, None, 2, 103),
    ]
    task.process("in", batch)
    assert collector.events == ["send out 3 p=None"]
    out = collector.records["out"]
    assert [(r.key, int.from_bytes(r.value or b"", "big")) for r in out] == [
        (b"a", 1),
        (b"b", 1),
        (b"a", 2),
    ]
    assert task.consumed == {("in", 2): 104}
    assert stores["n"].get(b"a") is None  # not written before commit
    committed: list[dict[tuple[str, int], int]] = []
    commit([task], collector, committed.append)
    # one changelog record per changed key, to the task's partition; store written last
    assert collector.events[1:] == ["send rt-n-changelog 2 p=2", "flush", "offsets"]
    assert committed == [{("in", 2): 104}]
    assert stores["n"].get(b"a") == (2).to_bytes(8, "big")
    assert stores["n"].changelog_offset() == 1
    assert task.stream_time == 13


def test_task_restores_from_changelog_then_continues() -> None:
    collector = InMemoryCollector()
    task, _ = _task(_count_app(), collector)
    task.process("in", [(b"a", b"x", 1, None, 2, 0), (b"a", b"x", 2, None, 2, 1)])
    commit([task], collector)
    changelog = [(r.offset, r.key, r.value) for r in collector.records["rt-n-changelog"]]

    fresh = InMemoryCollector()
    task2, stores2 = _task(_count_app(), fresh)
    assert task2.restore("n", changelog) == 1
    assert stores2["n"].changelog_offset() == changelog[-1][0]
    assert task2.restore_start("n") == changelog[-1][0] + 1
    assert not task2.needs_commit
    task2.process("in", [(b"a", b"x", 3, None, 2, 2)])
    assert int.from_bytes(fresh.records["out"][-1].value or b"", "big") == 3


def test_stateless_chain_is_one_generated_function() -> None:
    app = flows.App("fu")
    s = app.stream(app.topic("in", value_serde="str"))
    (
        s.filter(lambda k, v: True)
        .map_values(str.upper)
        .flat_map_values(list)
        .peek(lambda k, v: None)
        .to(app.topic("out", value_serde="str"))
    )
    task, _ = _task(app, InMemoryCollector(), 0)
    assert list(task.generated) == ["KSTREAM-SOURCE-0000000000"]
    body = task.generated["KSTREAM-SOURCE-0000000000"]
    assert "if not f0(k, v): continue" in body
    assert "for v in f2(v):" in body
    assert body.count("append((") == 1  # one tuple append per output record
    task.process("in", [(None, b"ab", 0, None, 0, 0)])
    assert [r.value for r in task.collector.records["out"]] == [b"A", b"B"]


def test_task_rejects_a_topic_it_does_not_read() -> None:
    task, _ = _task(_count_app(), InMemoryCollector())
    with pytest.raises(ProcessingError, match="does not read topic 'other'"):
        task.process("other", [(None, b"x", 0, None, 0, 0)])
    task.process("in", [])  # an empty batch is a no-op


def test_error_in_aggregator_names_step_and_task() -> None:
    app = flows.App("ag")
    s = app.stream(app.topic("in", key_serde="str", value_serde="str"))
    s.group_by_key().aggregate(lambda: 0, lambda k, v, a: a + v, name="bad-sum", value_serde="int")
    task, _ = _task(app, InMemoryCollector(), 0)
    with pytest.raises(ProcessingError, match=r"'bad-sum'.*task 0_0.*TypeError"):
        task.process("in", [(b"k", b"x", 0, None, 0, 0)])


def test_global_subtopology_has_no_tasks() -> None:
    app = flows.App("gl")
    app.global_table(app.topic("g", key_serde="str", value_serde="str"), name="g")
    app.stream(app.topic("in", value_serde="str")).to(app.topic("out", value_serde="str"))
    assert [s.is_global for s in app.topology.subtopologies] == [False, True]
    with pytest.raises(flows.TopologyError, match="global stores"):
        app.topology.create_task(1, 0, stores=InMemoryStore, collector=InMemoryCollector())  # type: ignore[arg-type]
