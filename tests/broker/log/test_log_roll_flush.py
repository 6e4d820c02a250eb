"""Rolling without waiting for the disk, and appending without copying the request.

A roll seals the segment and leaves its fsync to a background thread; the recovery point
(in the checkpoint) moves past the sealed segment only after that fsync. An append
writes patched headers next to views of the request, and the log must hold exactly the
bytes the in-place patching produced before.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future
from pathlib import Path
from typing import Any

import pytest

from broker.errors import KafkaError
from broker.log import segment as segment_module
from broker.log.partition import CHECKPOINT_FILE, Partition
from broker.log.records import (
    Record,
    build_batch,
    iter_batches,
    patch_base_offset,
    patch_leader_epoch,
    set_log_append_time,
)
from broker.log.segment import Segment
from broker.log.topic_config import TopicConfig

Batch = Callable[..., bytes]
Job = tuple[Future[Any], Callable[..., Any], tuple[Any, ...]]


class HeldExecutor(Executor):
    """Keeps submitted jobs until the test runs them: a crash can come before."""

    def __init__(self) -> None:
        self.jobs: list[Job] = []

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        self.jobs.append((future, fn, args))
        return future

    def run(self, index: int) -> None:
        future, fn, args = self.jobs.pop(index)
        future.set_running_or_notify_cancel()
        try:
            future.set_result(fn(*args))
        except BaseException as e:  # handed to the waiter, as a real executor does
            future.set_exception(e)

    def run_all(self) -> None:
        while self.jobs:
            self.run(0)

    def drop_all(self) -> None:
        """The process died: the jobs never run (their fds are closed to avoid a leak)."""
        for _future, _fn, args in self.jobs:
            for fd in args[0]:
                os.close(fd)
        self.jobs.clear()


def open_partition(path: Path, executor: Executor | None = None, /, **overrides: str) -> Partition:
    cfg = TopicConfig.resolve({k.replace("_", "."): v for k, v in overrides.items()})
    return Partition(path / "t-0", "t", 0, cfg, executor=executor)


def one(i: int) -> bytes:
    return build_batch(
        [Record(offset=0, timestamp=1000 + i, key=b"k%d" % i, value=b"v%d" % i)], base_offset=0
    )


def fill(part: Partition, n: int) -> None:
    for i in range(n):
        part.append(one(i), now_ms=1000 + i)


def checkpoint_recovery_point(path: Path) -> int:
    return int(json.loads((path / "t-0" / CHECKPOINT_FILE).read_bytes())["recovery_point"])


def crash(part: Partition) -> None:
    """Drop the partition without a clean shutdown (fds closed, no marker, no flush)."""
    for seg in part.segments:
        seg.offset_index.file.close()
        seg.time_index.file.close()
        os.close(seg.fd)


def offsets(part: Partition) -> list[int]:
    data = part.read(part.log_start_offset, 1 << 20)
    return [h.base_offset for _p, h in iter_batches(data)]


# --- roll fsync ------------------------------------------------------------------------


def test_roll_fsyncs_the_sealed_segment_off_the_callers_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    part = open_partition(tmp_path)
    fill(part, 3)
    sealed = part.active
    sealed_files = {
        os.stat(p).st_ino
        for p in (sealed.log_path, sealed.offset_index.file.path, sealed.time_index.file.path)
    }
    calls: list[tuple[int, int]] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        calls.append((threading.get_ident(), os.fstat(fd).st_ino))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    part.roll(2000)
    part.wait_for_roll_syncs()
    caller = threading.get_ident()
    synced_here = {ino for thread, ino in calls if thread == caller}
    synced_elsewhere = {ino for thread, ino in calls if thread != caller}
    assert sealed.log_path.stat().st_ino in synced_elsewhere
    assert not synced_here & sealed_files
    assert part.recovery_point == 3
    part.close()


def test_recovery_point_moves_only_after_the_background_fsync(tmp_path: Path) -> None:
    held = HeldExecutor()
    part = open_partition(tmp_path, held, segment_bytes=str(len(one(0)) * 2))
    fill(part, 6)
    assert [s.base_offset for s in part.segments] == [0, 2, 4]
    assert len(held.jobs) == 2
    assert part.recovery_point == 0
    assert checkpoint_recovery_point(tmp_path) == 0
    held.run(1)  # the later roll finishes first: the earlier segment is still unsynced
    assert part.recovery_point == 0
    assert checkpoint_recovery_point(tmp_path) == 0
    held.run(0)
    assert part.recovery_point == 4
    assert checkpoint_recovery_point(tmp_path) == 4
    part.close()


def test_crash_before_the_fsync_rescans_the_sealed_segment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    held = HeldExecutor()
    part = open_partition(tmp_path, held, segment_bytes=str(len(one(0)) * 2))
    fill(part, 5)
    assert [s.base_offset for s in part.segments] == [0, 2, 4]
    held.run(0)  # the first sealed segment reached the disk, the second did not
    assert checkpoint_recovery_point(tmp_path) == 2
    crash(part)
    held.drop_all()
    recovered: list[int] = []
    real_recover = Segment.recover

    def recording_recover(self: Segment) -> int:
        recovered.append(self.base_offset)
        return real_recover(self)

    monkeypatch.setattr(Segment, "recover", recording_recover)
    part = open_partition(tmp_path, segment_bytes=str(len(one(0)) * 2))
    assert recovered == [2, 4]
    assert part.log_end_offset == 5
    assert offsets(part) == [0, 1, 2, 3, 4]
    part.close()


def test_flush_and_close_wait_for_roll_fsyncs(tmp_path: Path) -> None:
    gate = threading.Event()

    class GatedExecutor(Executor):
        def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
            future: Future[Any] = Future()

            def run() -> None:
                gate.wait()
                future.set_running_or_notify_cancel()
                future.set_result(fn(*args))

            threading.Thread(target=run).start()
            return future

    part = open_partition(tmp_path, GatedExecutor(), segment_bytes=str(len(one(0)) * 2))
    fill(part, 3)
    flushed = threading.Event()

    def flush() -> None:
        part.flush()
        flushed.set()

    flusher = threading.Thread(target=flush)
    flusher.start()
    assert not flushed.wait(0.05)
    gate.set()
    flusher.join()
    assert part.recovery_point == 2
    part.close()
    assert checkpoint_recovery_point(tmp_path) == 3


def test_close_waits_for_a_pending_roll_fsync(tmp_path: Path) -> None:
    part = open_partition(tmp_path, segment_bytes=str(len(one(0)) * 2))
    fill(part, 7)
    part.close()
    assert checkpoint_recovery_point(tmp_path) == 7
    part = open_partition(tmp_path, segment_bytes=str(len(one(0)) * 2))
    assert offsets(part) == list(range(7))
    part.close()


def test_deleting_segments_while_their_fsync_is_pending(tmp_path: Path) -> None:
    held = HeldExecutor()
    part = open_partition(tmp_path, held, segment_bytes=str(len(one(0)) * 2))
    fill(part, 5)
    assert part.delete_oldest_segments(1, "a test") == 1
    held.run_all()  # fsyncs of a deleted file and of a live one: both fine
    assert part.recovery_point == 4
    assert offsets(part) == [2, 3, 4]
    part.close()


def test_removing_the_partition_while_a_roll_fsync_is_pending(tmp_path: Path) -> None:
    held = HeldExecutor()
    part = open_partition(tmp_path, held, segment_bytes=str(len(one(0)) * 2))
    fill(part, 3)
    part.remove()
    held.run_all()  # skipped: closes its fds and writes no checkpoint
    assert not (tmp_path / "t-0").exists()


def test_a_failed_roll_fsync_is_reported_by_flush(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    held = HeldExecutor()
    part = open_partition(tmp_path, held, segment_bytes=str(len(one(0)) * 2))
    fill(part, 3)

    def failing_fsync(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    held.run_all()
    monkeypatch.undo()
    assert part.recovery_point == 0
    with pytest.raises(KafkaError, match="fsync of t-0 before offset 2 failed"):
        part.flush()
    crash(part)


# --- append without copying -------------------------------------------------------------


def old_way(batches: list[bytes], base: int, epoch: int, append_ms: int | None) -> bytes:
    """The log bytes the in-place patching of a copied request produced."""
    buf = bytearray(b"".join(batches))
    offset = base
    for pos, h in list(iter_batches(bytes(buf))):
        patch_base_offset(buf, pos, offset)
        patch_leader_epoch(buf, pos, epoch)
        if append_ms is not None:
            set_log_append_time(buf, pos, h._replace(base_offset=offset), append_ms)
        offset += h.last_offset_delta + 1
    return bytes(buf)


def records(n: int, ts: int = 1000) -> list[Record]:
    return [
        Record(offset=i, timestamp=ts + i, key=b"key-%d" % i, value=b"value-%d" % i * 3)
        for i in range(n)
    ]


@pytest.mark.parametrize("codec", [0, 1, 2, 3, 4])
@pytest.mark.parametrize("append_time", [False, True])
def test_append_writes_the_same_bytes_as_in_place_patching(
    tmp_path: Path, codec: int, append_time: bool
) -> None:
    overrides = {"message_timestamp_type": "LogAppendTime"} if append_time else {}
    part = open_partition(tmp_path, **overrides)
    part.leader_epoch = 7
    first = [
        build_batch(records(3), compression=codec, base_offset=0),
        build_batch(records(1), compression=codec, base_offset=0),
    ]
    second = [build_batch(records(5, 2000), compression=codec, base_offset=0)]
    part.append(b"".join(first), now_ms=5000)
    part.append(b"".join(second), now_ms=6000)
    ms = (5000, 6000) if append_time else (None, None)
    expected = old_way(first, 0, 7, ms[0]) + old_way(second, 4, 7, ms[1])
    assert part.active.log_path.read_bytes() == expected
    assert part.read(0, 1 << 20) == expected
    part.close()


def test_transactional_batches_and_markers_are_byte_identical(tmp_path: Path) -> None:
    part = open_partition(tmp_path)
    part.leader_epoch = 3
    txn = build_batch(
        records(2),
        base_offset=0,
        is_transactional=True,
        producer_id=42,
        producer_epoch=1,
        base_sequence=0,
    )
    part.append(txn, now_ms=5000)
    part.append_control(42, 1, True, 9, now_ms=5001)
    data = part.active.log_path.read_bytes()
    assert data[: len(txn)] == old_way([txn], 0, 3, None)
    marker_pos, marker = list(iter_batches(data))[1]
    assert marker.is_control and marker.base_offset == 2 and marker.partition_leader_epoch == 3
    rebuilt = build_batch(
        [
            Record(
                offset=0, timestamp=5001, key=b"\x00\x00\x00\x01", value=b"\x00\x00\x00\x00\x00\x09"
            )
        ],
        base_offset=0,
        is_transactional=True,
        is_control=True,
        producer_id=42,
        producer_epoch=1,
    )
    assert data[marker_pos:] == old_way([rebuilt], 2, 3, None)
    part.close()


def test_many_batches_in_one_request(tmp_path: Path) -> None:
    """More pieces than one ``writev`` takes."""
    part = open_partition(tmp_path)
    batches = [build_batch(records(1, 1000 + i), base_offset=0) for i in range(700)]
    part.append(b"".join(batches), now_ms=5000)
    assert part.read(0, 1 << 24) == old_way(batches, 0, 0, None)
    part.close()


def test_short_writes_are_resumed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_writev = os.writev

    def short_writev(fd: int, pieces: list[Any]) -> int:
        budget, cut = 7, []
        for p in pieces:
            take = memoryview(p)[:budget]
            if len(take):
                cut.append(take)
            budget -= len(take)
            if not budget:
                break
        return real_writev(fd, cut)

    monkeypatch.setattr(segment_module.os, "writev", short_writev)
    part = open_partition(tmp_path)
    batches = [build_batch(records(2), base_offset=0), build_batch(records(3), base_offset=0)]
    part.append(b"".join(batches), now_ms=5000)
    monkeypatch.undo()
    assert part.read(0, 1 << 20) == old_way(batches, 0, 0, None)
    part.close()


def test_a_bad_crc_is_still_rejected_before_anything_is_written(tmp_path: Path) -> None:
    part = open_partition(tmp_path)
    bad = bytearray(build_batch(records(2), base_offset=0))
    bad[-1] ^= 0xFF
    with pytest.raises(KafkaError, match="fails its CRC check"):
        part.append(bytes(bad), now_ms=5000)
    assert part.active.size == 0
    part.close()
