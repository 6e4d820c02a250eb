"""Opening a partition after a crash, a clean shutdown, or an interrupted compaction."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from broker.log.partition import CLEAN_SHUTDOWN_FILE, Partition
from broker.log.records import Record, iter_batches

Batch = Callable[..., bytes]
Open = Callable[..., Partition]
RecordsOf = Callable[[bytes], list[Record]]


def crash(part: Partition) -> None:
    """Drop the partition without a clean shutdown (fds closed, no marker, no final flush)."""
    for seg in part.segments:
        seg.offset_index.file.close()
        seg.time_index.file.close()
        os.close(seg.fd)


def fill(part: Partition, batch: Batch, n: int) -> None:
    for i in range(n):
        part.append(batch([(b"k%d" % i, b"v%d" % i, 1000 + i)]), now_ms=1000 + i)


def last_log(tmp_path: Path) -> Path:
    return sorted((tmp_path / "t-0").glob("*.log"))[-1]


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage"])
def test_torn_tail_is_truncated(
    open_part: Open,
    batch: Batch,
    records_of: RecordsOf,
    tmp_path: Path,
    damage: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    part = open_part(index_interval_bytes="50")
    fill(part, batch, 20)
    size_before = part.size_bytes
    crash(part)
    path = last_log(tmp_path)
    data = bytearray(path.read_bytes())
    one = len(batch([(b"k19", b"v19", 1019)]))
    if damage == "truncate":
        data = data[: len(data) - one // 2]
    elif damage == "flip":
        data[-3] ^= 0xFF
    else:
        data += b"\x00" * 30
    path.write_bytes(bytes(data))
    part = open_part(index_interval_bytes="50")
    assert "truncating" in caplog.text
    expected_end = 20 if damage == "garbage" else 19
    assert part.log_end_offset == expected_end
    assert part.size_bytes == (size_before if damage == "garbage" else size_before - one)
    got = records_of(part.read(0, 1 << 20))
    assert [r.key for r in got] == [b"k%d" % i for i in range(expected_end)]
    # indexes were rebuilt and serve reads at every offset
    assert len(part.active.offset_index) > 3
    for off in range(expected_end):
        assert records_of(part.read(off, 1))[0].offset == off
    # appends continue at the right offset
    info = part.append(batch([(b"new", b"x", 5000)]), now_ms=5000)
    assert info.base_offset == expected_end
    assert part.offset_for_timestamp(4000) == (expected_end, 5000)


def test_torn_segment_drops_later_segments(open_part: Open, batch: Batch, tmp_path: Path) -> None:
    one = batch([(b"k0", b"v0", 1000)])
    part = open_part(segment_bytes=str(len(one) * 2))
    fill(part, batch, 6)
    assert len(part.segments) == 3
    # pretend nothing was ever flushed: the recovery point is the start of the log
    part.write_checkpoint(recovery_point=0)
    crash(part)
    first = sorted((tmp_path / "t-0").glob("*.log"))[0]
    first.write_bytes(first.read_bytes()[:-5])
    part = open_part(segment_bytes=str(len(one) * 2))
    assert part.log_end_offset == 1
    assert [s.base_offset for s in part.segments] == [0]
    assert sorted(p.name for p in (tmp_path / "t-0").glob("*.log")) == [f"{0:020d}.log"]


def test_clean_shutdown_skips_recovery(
    open_part: Open, batch: Batch, records_of: RecordsOf, tmp_path: Path
) -> None:
    part = open_part(segment_bytes="400", index_interval_bytes="60")
    fill(part, batch, 30)
    part.close()
    assert (tmp_path / "t-0" / CLEAN_SHUTDOWN_FILE).exists()
    part = open_part(segment_bytes="400", index_interval_bytes="60")
    assert not (tmp_path / "t-0" / CLEAN_SHUTDOWN_FILE).exists()
    assert part.log_end_offset == 30
    assert [r.key for r in records_of(part.read(0, 1 << 20))] == [b"k%d" % i for i in range(30)]
    assert part.offset_for_timestamp(1017) == (17, 1017)
    assert part.append(batch([(b"x", b"y", 2000)]), now_ms=2000).base_offset == 30


def test_missing_index_is_rebuilt(
    open_part: Open, batch: Batch, records_of: RecordsOf, tmp_path: Path
) -> None:
    part = open_part(index_interval_bytes="50")
    fill(part, batch, 10)
    part.close()
    (tmp_path / "t-0" / f"{0:020d}.index").unlink()
    (tmp_path / "t-0" / f"{0:020d}.timeindex").write_bytes(b"\x00" * 5)
    part = open_part(index_interval_bytes="50")
    assert len(part.active.offset_index) > 2
    assert part.offset_for_timestamp(1005) == (5, 1005)
    assert records_of(part.read(7, 1))[0].offset == 7


def test_log_start_offset_survives_restart(open_part: Open, batch: Batch) -> None:
    part = open_part()
    fill(part, batch, 10)
    assert part.delete_records_before(4) == 4
    crash(part)
    part = open_part()
    assert part.log_start_offset == 4
    assert part.log_end_offset == 10


def test_interrupted_compaction_files(
    open_part: Open, batch: Batch, records_of: RecordsOf, tmp_path: Path
) -> None:
    part = open_part(segment_bytes="200")
    fill(part, batch, 8)
    bases = [s.base_offset for s in part.segments]
    assert len(bases) > 2
    part.close()
    d = tmp_path / "t-0"
    # an unfinished .cleaned file is discarded
    (d / f"{bases[0]:020d}.log.cleaned").write_bytes(b"partial")
    # a finished .swap replaces its segment (here: the segment without its first batch)
    seg1 = d / f"{bases[1]:020d}.log"
    raw = seg1.read_bytes()
    first_size = next(iter_batches(raw))[1].size
    (d / f"{bases[1]:020d}.log.swap").write_bytes(raw[first_size:])
    part = open_part(segment_bytes="200")
    assert not list(d.glob("*.cleaned")) and not list(d.glob("*.swap"))
    keys = [r.key for r in records_of(part.read(0, 1 << 20))]
    assert keys == [b"k%d" % i for i in range(8) if i != bases[1]]


@pytest.mark.parametrize("damage", ["garbage", "cut"])
def test_damage_after_clean_shutdown_is_repaired(
    open_part: Open, batch: Batch, records_of: RecordsOf, tmp_path: Path, damage: str
) -> None:
    part = open_part()
    fill(part, batch, 10)
    part.close()
    path = last_log(tmp_path)
    data = path.read_bytes()
    path.write_bytes(
        data + b"\x00" * 7 + b"c" + b"garbage!" * 5 if damage == "garbage" else data[:-10]
    )
    part = open_part()
    survivors = 10 if damage == "garbage" else 9
    assert part.log_end_offset == survivors
    assert [r.key for r in records_of(part.read(0, 1 << 20))] == [
        b"k%d" % i for i in range(survivors)
    ]
    assert part.append(batch([(b"x", b"y", 1)]), now_ms=1).base_offset == survivors
