"""Per-record cost of the fused batch path, without Kafka and without serdes.

Two cases, fed to a compiled task in batches of ``--batch`` records:

* stateless: ``filter -> map -> to`` (and ``filter -> map_values -> to``) with bytes serdes
  (the identity: no encode/decode);
* count: ``group_by_key().count()`` over ``--keys`` distinct keys with a RocksDB store, committing
  (cache flush + changelog + one RocksDB write batch) after every ``--commit-every`` records.

Run: ``python bench/dsl_micro.py [--records N] [--keys K]``.
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
from state.rocksdb import RocksDBStore


def _stateless(records: int, batch: int, values_only: bool = False) -> float:
    app = flows.App("bench-stateless")
    src = app.topic("in", value_serde="bytes")
    out = app.topic("out", value_serde="bytes")
    s = app.stream(src).filter(lambda k, v: v[0] != 0x21)
    if values_only:
        s.map_values(lambda v: v[:4]).to(out)
    else:
        s.map(lambda k, v: (k, v[:4])).to(out)
    collector = NullCollector()
    task = app.topology.create_task(0, 0, stores=lambda s, t: None, collector=collector)  # type: ignore[arg-type,return-value]
    data = [(b"k%d" % (i % 1000), b"value-%d" % i, i, None, 0, i) for i in range(batch)]
    n = records // batch
    start = time.perf_counter()
    for _ in range(n):
        task.process("in", data)
    elapsed = time.perf_counter() - start
    assert collector.count == n * batch
    return elapsed / (n * batch) * 1e6


def _count(
    records: int, keys: int, batch: int, commit_every: int, state_dir: Path
) -> tuple[float, float, int]:
    app = flows.App("bench-count", default_serde=None)
    src = app.topic("in", key_serde="bytes", value_serde="bytes")
    app.stream(src).group_by_key().count(name="counts")
    collector = NullCollector()

    def open_store(spec: Any, task_id: str) -> RocksDBStore:
        return RocksDBStore(spec.name, state_dir / task_id / spec.name)

    task = app.topology.create_task(0, 0, stores=open_store, collector=collector)
    key_list = [b"key-%06d" % i for i in range(keys)]
    batches = []
    for b in range(records // batch):
        base = b * batch
        batches.append(
            [
                (key_list[(base + i) * 7919 % keys], b"x", base + i, None, 0, base + i)
                for i in range(batch)
            ]
        )
    since_commit = 0
    in_commit = 0.0
    clock = time.perf_counter
    start = clock()
    for data in batches:
        task.process("in", data)
        since_commit += len(data)
        if since_commit >= commit_every:
            t0 = clock()
            commit([task], collector)
            in_commit += clock() - t0
            since_commit = 0
    t0 = clock()
    commit([task], collector)
    in_commit += clock() - t0
    elapsed = clock() - start
    total = sum(len(b) for b in batches)
    store = task.stores["counts"]
    assert store.approximate_num_entries() > 0
    task.close()
    return elapsed / total * 1e6, in_commit / total * 1e6, collector.count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--keys", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--commit-every", type=int, default=1_000_000)
    args = parser.parse_args()
    stateless = min(_stateless(args.records, args.batch) for _ in range(3))
    print(f"fused filter+map+to        : {stateless:.3f} us/record (target <= 0.5)")
    values = min(_stateless(args.records, args.batch, values_only=True) for _ in range(3))
    print(f"fused filter+map_values+to : {values:.3f} us/record")
    with tempfile.TemporaryDirectory() as tmp:
        counts, commits, changes = _count(
            args.records, args.keys, args.batch, args.commit_every, Path(tmp)
        )
    print(
        f"keyed count, RocksDB store ({args.keys} keys, commit every {args.commit_every}): "
        f"{counts:.3f} us/record (target <= 2.0), of which commit {commits:.3f} "
        f"({changes} changelog records)"
    )


if __name__ == "__main__":
    main()
