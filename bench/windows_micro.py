"""Per-record cost of windowed counting and a stream-table join, through the batch path.

No Kafka and no serdes on the hot path (bytes keys/values), like ``bench/dsl_micro.py``:

* tumbling count: ``group_by_key().window(tumbling(60 s)).count()`` over ``--keys`` distinct
  keys, with a RocksDB window store; record times advance 1 ms per record, so windows roll
  over and expire as they would in production; commit (cache flush + changelog + one RocksDB
  write batch) every ``--commit-every`` records;
* stream-table join: a table of ``--keys`` rows (RocksDB), then a stream joined against it.

Run: ``python bench/windows_micro.py [--records N] [--keys K]``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import flows
from core.collector import NullCollector
from core.task import commit
from flows import windows
from state.rocksdb import RocksDBStore


def _opener(state_dir: Path) -> Any:
    def open_store(spec: Any, task_id: str) -> RocksDBStore:
        return RocksDBStore(spec.name, state_dir / task_id / spec.name)

    return open_store


def _batches(records: int, keys: int, batch: int, per_ms: int = 1) -> list[list[Any]]:
    """Records over ``keys`` keys in a scattered order, ``per_ms`` records per ms of time."""
    key_list = [b"key-%06d" % i for i in range(keys)]
    out = []
    for b in range(records // batch):
        base = b * batch
        out.append(
            [
                (key_list[(base + i) * 7919 % keys], b"x", (base + i) // per_ms, None, 0, base + i)
                for i in range(batch)
            ]
        )
    return out


def _run(
    task: Any, topic: str, batches: list[list[Any]], commit_every: int, collector: Any
) -> float:
    since = 0
    start = time.perf_counter()
    for data in batches:
        task.process(topic, data)
        since += len(data)
        if since >= commit_every:
            commit([task], collector)
            since = 0
    commit([task], collector)
    return time.perf_counter() - start


def tumbling_count(
    records: int, keys: int, batch: int, commit_every: int, state_dir: Path, per_ms: int = 1
) -> float:
    app = flows.App("bench-window", default_serde=None)
    src = app.topic("in", key_serde="bytes", value_serde="bytes")
    app.stream(src).group_by_key().window(windows.tumbling(60)).count(name="counts")
    collector = NullCollector()
    task = app.topology.create_task(0, 0, stores=_opener(state_dir), collector=collector)
    data = _batches(records, keys, batch, per_ms)
    elapsed = _run(task, "in", data, commit_every, collector)
    task.close()
    return elapsed / sum(len(b) for b in data) * 1e6


def stream_table_join(
    records: int, keys: int, batch: int, commit_every: int, state_dir: Path
) -> float:
    app = flows.App("bench-join", default_serde=None)
    table = app.table(app.topic("users", key_serde="bytes", value_serde="bytes"), name="users")
    clicks = app.topic("clicks", key_serde="bytes", value_serde="bytes")
    out = app.topic("out", key_serde="bytes", value_serde="bytes")
    app.stream(clicks).join(table, lambda c, u: u).to(out)
    collector = NullCollector()
    task = app.topology.create_task(0, 0, stores=_opener(state_dir), collector=collector)
    rows = [(b"key-%06d" % i, b"user-%d" % i, 0, None, 0, i) for i in range(keys)]
    for i in range(0, keys, batch):
        task.process("users", rows[i : i + batch])
    commit([task], collector)
    task.caches["users"].discard()  # start cold: lookups go to RocksDB first
    data = _batches(records, keys, batch)
    before = collector.count
    elapsed = _run(task, "clicks", data, commit_every, collector)
    assert collector.count - before == sum(len(b) for b in data)
    task.close()
    return elapsed / sum(len(b) for b in data) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--keys", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--commit-every", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for per_ms in (1, 100):
            count = tumbling_count(
                args.records,
                args.keys,
                args.batch,
                args.commit_every,
                Path(tmp) / f"w{per_ms}",
                per_ms,
            )
            span = args.records // per_ms / 1000
            print(
                f"tumbling-window count, RocksDB ({args.keys} keys, 60 s windows, {span:.0f} s "
                f"of event time, commit every {args.commit_every}): {count:.3f} us/record"
            )
        join = stream_table_join(
            args.records, args.keys, args.batch, args.commit_every, Path(tmp) / "j"
        )
        print(f"stream-table join, RocksDB table ({args.keys} rows): {join:.3f} us/record")


if __name__ == "__main__":
    main()
