"""Micro-benchmark of the broker's log storage: append and read throughput, no network.

Run: ``python bench/log_micro.py [--total-mib 512] [--dir DIR]``. It appends requests of
one 1 MiB batch and of sixteen 16 KiB batches to a fresh partition (default configs: no
forced fsync), then reads everything back with 1 MiB fetches, and prints MB/s.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from broker.log.partition import Partition
from broker.log.records import Record, build_batch
from broker.log.topic_config import TopicConfig


def make_batch(size: int, record_size: int = 1000) -> bytes:
    n = max(1, size // (record_size + 20))
    value = os.urandom(record_size)
    recs = [Record(offset=i, timestamp=1_700_000_000_000, key=None, value=value) for i in range(n)]
    return build_batch(recs, base_offset=0)


def run(directory: Path, batch_size: int, per_request: int, total: int) -> None:
    part = Partition(directory, "bench", 0, TopicConfig.resolve({}))
    payload = make_batch(batch_size) * per_request
    requests = max(1, total // len(payload))
    t0 = time.perf_counter()
    for _ in range(requests):
        part.append(payload, now_ms=1_700_000_000_000)
    t1 = time.perf_counter()
    written = requests * len(payload)
    offset, read = 0, 0
    end = part.log_end_offset
    t2 = time.perf_counter()
    while offset < end:
        data = part.read(offset, 1 << 20)
        read += len(data)
        # the next offset: last batch's last offset + 1 (header fields at 0 and 23)
        pos = 0
        while pos < len(data):
            base = int.from_bytes(data[pos : pos + 8], "big")
            length = int.from_bytes(data[pos + 8 : pos + 12], "big")
            delta = int.from_bytes(data[pos + 23 : pos + 27], "big")
            offset = base + delta + 1
            pos += length + 12
    t3 = time.perf_counter()
    part.close()
    mb = 1e6
    print(
        f"batch {batch_size // 1024:>5} KiB x{per_request:<3} "
        f"append {written / mb / (t1 - t0):8.0f} MB/s"
        f"   read(1 MiB fetches) {read / mb / (t3 - t2):8.0f} MB/s   ({written / mb:.0f} MB)"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--total-mib", type=int, default=512)
    ap.add_argument("--dir", type=Path, default=None)
    args = ap.parse_args()
    total = args.total_mib << 20
    with tempfile.TemporaryDirectory(dir=args.dir) as d:
        run(Path(d) / "big-0", 1 << 20, 1, total)
        run(Path(d) / "small-0", 16 << 10, 16, total)


if __name__ == "__main__":
    main()
