"""Several tasks per sub-topology, fed the way a worker feeds them: each repartition record
reaches the task of its partition, so every key's state lives in exactly one task."""

from __future__ import annotations

from typing import Any

import flows
from core.collector import InMemoryCollector
from core.task import Task, commit
from state.memory import InMemoryStore


def test_wordcount_over_three_partitions() -> None:
    app = flows.App("mt")
    lines = app.topic("lines", value_serde="str", partitions=3)
    counts = app.topic("counts", key_serde="str", value_serde="int", partitions=3)
    (
        app.stream(lines)
        .flat_map_values(str.split)
        .group_by(lambda k, w: w, name="by-word", key_serde="str")
        .count(name="n")
        .to_stream()
        .to(counts)
    )
    topology = app.topology
    assert [s.partitions for s in topology.subtopologies] == [3, 3]
    collector = InMemoryCollector(partitions=lambda topic: 3)

    def open_store(spec: Any, task_id: str) -> InMemoryStore:
        return InMemoryStore(spec.name)

    tasks: dict[str, Task] = {
        f"{s}_{p}": topology.create_task(s, p, stores=open_store, collector=collector)
        for s in (0, 1)
        for p in range(3)
    }
    assert sorted(tasks) == ["0_0", "0_1", "0_2", "1_0", "1_1", "1_2"]
    text = ["a b c", "a b", "a", "d e f g", "a g"]
    for offset, line in enumerate(text):
        p = offset % 3
        tasks[f"0_{p}"].process("lines", [(None, line.encode(), offset, None, p, offset)])
    by_partition: dict[int, list[tuple[Any, ...]]] = {}
    for r in collector.records["mt-by-word-repartition"]:
        by_partition.setdefault(r.partition, []).append(
            (r.key, r.value, r.timestamp, r.headers, r.partition, r.offset)
        )
    for p, batch in by_partition.items():
        tasks[f"1_{p}"].process("mt-by-word-repartition", batch)
    commit(tasks.values(), collector)
    owners: dict[str, list[str]] = {}
    totals: dict[str, int] = {}
    for tid, task in tasks.items():
        if "n" in task.stores:
            for key, value in task.stores["n"].range():
                owners.setdefault(key.decode(), []).append(tid)
                totals[key.decode()] = int.from_bytes(value, "big")
    assert totals == {"a": 4, "b": 2, "c": 1, "d": 1, "e": 1, "f": 1, "g": 2}
    assert all(len(t) == 1 for t in owners.values())
    changelog_partitions = {r.partition for r in collector.records["mt-n-changelog"]}
    assert changelog_partitions <= {0, 1, 2}
    for r in collector.records["mt-n-changelog"]:
        assert owners[r.key.decode() if r.key else ""] == [f"1_{r.partition}"]
