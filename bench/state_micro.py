"""Micro-benchmark of the state layer: the write-back cache over RocksDB, and raw RocksDB.

Run: ``python bench/state_micro.py [--records N] [--keys K]``

Measures, for a keyed count (``cache.put(k, (cache.get(k) or 0) + 1)``) over K string keys:
the hit path alone, the full path including a flush + commit every C records, and the cost
of one flush + commit; then raw ``RocksDBStore.write_batch`` and ``get`` throughput.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from state import RocksDBStore, WriteBackCache


def enc_int(v: int) -> bytes:
    return v.to_bytes(8, "big", signed=True)


def dec_int(b: bytes) -> int:
    return int.from_bytes(b, "big", signed=True)


def keyed_count(cache: WriteBackCache[str, int], words: list[str], commit_every: int) -> float:
    """ns per record of get+put, with flush+commit every ``commit_every`` records."""
    get = cache.get
    put = cache.put
    offset = 0
    t0 = time.perf_counter_ns()
    for start in range(0, len(words), commit_every):
        for w in words[start : start + commit_every]:
            put(w, (get(w) or 0) + 1)
        changes = cache.flush()
        offset += len(changes)
        cache.commit(changes, changelog_offset=offset)
    return (time.perf_counter_ns() - t0) / len(words)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--keys", type=int, default=100_000)
    args = parser.parse_args()
    rng = random.Random(7)
    keys = [f"key-{i}" for i in range(args.keys)]
    words = [keys[rng.randrange(args.keys)] for _ in range(args.records)]
    rows: list[tuple[str, float, str]] = []

    # baseline: the same count in a plain dict, the floor for any Python per-record state
    plain: dict[str, int] = {}
    t0 = time.perf_counter_ns()
    for w in words:
        plain[w] = plain.get(w, 0) + 1
    rows.append(
        ("baseline: plain dict count", (time.perf_counter_ns() - t0) / len(words), "ns/record")
    )

    with tempfile.TemporaryDirectory() as tmp:
        store = RocksDBStore("counts", Path(tmp) / "counts")
        cache: WriteBackCache[str, int] = WriteBackCache(
            store, str.encode, enc_int, dec_int, max_entries=args.keys * 2
        )
        # cold pass: every key misses once and is read from RocksDB
        cold = keyed_count(cache, words, 10_000)
        rows.append(("count, cold cache, commit every 10k", cold, "ns/record"))
        for every in (10_000, 100_000):
            ns = keyed_count(cache, words, every)
            rows.append((f"count, warm cache, commit every {every // 1000}k", ns, "ns/record"))
        # hit path alone: no flush/commit inside the timed loop
        get, put = cache.get, cache.put
        t0 = time.perf_counter_ns()
        for w in words:
            put(w, (get(w) or 0) + 1)
        hit = (time.perf_counter_ns() - t0) / len(words)
        rows.append(("count, warm cache, get+put only", hit, "ns/record"))
        t0 = time.perf_counter_ns()
        changes = cache.flush()
        t1 = time.perf_counter_ns()
        cache.commit(changes, changelog_offset=1)
        t2 = time.perf_counter_ns()
        rows.append((f"flush of {len(changes)} dirty keys", (t1 - t0) / len(changes), "ns/key"))
        rows.append((f"commit of {len(changes)} dirty keys", (t2 - t1) / len(changes), "ns/key"))
        # a smaller cache than the key space: misses and eviction
        small: WriteBackCache[str, int] = WriteBackCache(
            store, str.encode, enc_int, dec_int, max_entries=args.keys // 10
        )
        ns = keyed_count(small, words, 10_000)
        rows.append((f"count, cache of {args.keys // 10} entries, commit 10k", ns, "ns/record"))
        store.close()

        raw = RocksDBStore("raw", Path(tmp) / "raw")
        batch = [(k.encode(), enc_int(i)) for i, k in enumerate(keys)]
        t0 = time.perf_counter_ns()
        for start in range(0, len(batch), 10_000):
            raw.write_batch(batch[start : start + 10_000], changelog_offset=start)
        ns = (time.perf_counter_ns() - t0) / len(batch)
        rows.append(("rocksdb write_batch (10k puts per batch)", ns, "ns/entry"))
        probe = [k.encode() for k in words[:200_000]]
        g = raw.get
        t0 = time.perf_counter_ns()
        for k in probe:
            g(k)
        rows.append(
            ("rocksdb get (present keys)", (time.perf_counter_ns() - t0) / len(probe), "ns/get")
        )
        raw.close()

    print(f"state micro-benchmark: {args.records:,} records over {args.keys:,} keys")
    width = max(len(r[0]) for r in rows)
    for label, value, unit in rows:
        print(f"  {label:<{width}}  {value:>9.0f} {unit}")


if __name__ == "__main__":
    main()
