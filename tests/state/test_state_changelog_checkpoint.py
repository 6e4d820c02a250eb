"""Changelog naming and restore; checkpoint files; local offsets for the assignor."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import pytest

from state import (
    CHECKPOINT_FILE,
    CheckpointError,
    InMemoryStore,
    RocksDBStore,
    changelog_topic,
    local_offsets,
    read_checkpoint,
    remove_checkpoint,
    restore,
    restore_start,
    store_dir,
    task_dir,
    task_dirs,
    write_checkpoint,
)


def test_changelog_topic_name() -> None:
    assert changelog_topic("wordcount", "counts") == "wordcount-counts-changelog"


class BatchRecorder(InMemoryStore):
    def __init__(self) -> None:
        super().__init__("r")
        self.offsets: list[int | None] = []

    def write_batch(
        self, items: Iterable[tuple[bytes, bytes | None]], *, changelog_offset: int | None = None
    ) -> None:
        self.offsets.append(changelog_offset)
        super().write_batch(items, changelog_offset=changelog_offset)


def test_restore_writes_batches_with_the_last_offset_of_each() -> None:
    records: list[tuple[int, bytes, bytes | None]] = [
        (o * 2, b"k%d" % (o % 4), b"v%d" % o) for o in range(10)
    ]
    records.append((25, b"k0", None))
    store = BatchRecorder()
    assert restore(store, records, batch_size=4) == 11
    assert store.offsets == [6, 14, 25]
    assert dict(store.items()) == {b"k1": b"v9", b"k2": b"v6", b"k3": b"v7"}
    assert restore_start(store) == 26


def test_restore_of_nothing() -> None:
    store = InMemoryStore("s")
    assert restore(store, []) == 0
    assert store.changelog_offset() is None
    assert restore_start(store) == 0


def test_restore_rejects_bad_batch_size() -> None:
    with pytest.raises(ValueError, match="batch_size"):
        restore(InMemoryStore("s"), [], batch_size=0)


def test_restore_into_rocksdb_resumes_after_reopen(tmp_path: Path) -> None:
    records = [(o, b"%03d" % o, b"v") for o in range(50)]
    store = RocksDBStore("s", tmp_path / "s")
    restore(store, records[:30], batch_size=8)
    store.close()
    store = RocksDBStore("s", tmp_path / "s")
    start = restore_start(store)
    assert start == 30
    restore(store, records[start:])
    assert len(list(store.items())) == 50
    assert store.changelog_offset() == 49
    store.close()


def test_checkpoint_round_trip_and_atomic_replace(tmp_path: Path) -> None:
    directory = task_dir(tmp_path, "app", "0_1")
    assert read_checkpoint(directory) == {}
    path = write_checkpoint(directory, {"counts": 10, "other": 0})
    assert path == directory / CHECKPOINT_FILE
    assert read_checkpoint(directory) == {"counts": 10, "other": 0}
    write_checkpoint(directory, {"counts": 11})
    assert read_checkpoint(directory) == {"counts": 11}
    assert sorted(p.name for p in directory.iterdir()) == [CHECKPOINT_FILE]  # no temp left
    remove_checkpoint(directory)
    remove_checkpoint(directory)
    assert read_checkpoint(directory) == {}


@pytest.mark.parametrize(
    "content",
    [
        b"not json{",
        b"\xff\xfe",
        b"[1, 2]",
        b'{"version": 99, "offsets": {}}',
        b'{"version": 1, "offsets": {"s": -1}}',
        b'{"version": 1, "offsets": {"s": "7"}}',
        b'{"version": 1}',
    ],
)
def test_unreadable_checkpoint_names_file_and_fix(tmp_path: Path, content: bytes) -> None:
    (tmp_path / CHECKPOINT_FILE).write_bytes(content)
    with pytest.raises(CheckpointError, match=r"\.checkpoint.*delete it"):
        read_checkpoint(tmp_path)
    assert local_offsets(tmp_path) == {}  # the assignor treats it as no local state


def test_checkpoint_that_is_a_directory(tmp_path: Path) -> None:
    (tmp_path / CHECKPOINT_FILE).mkdir()
    with pytest.raises(CheckpointError):
        read_checkpoint(tmp_path)


def test_local_offsets_prefer_the_offset_inside_rocksdb(tmp_path: Path) -> None:
    directory = task_dir(tmp_path, "app", "1_0")
    closed = RocksDBStore("closed", store_dir(tmp_path, "app", "1_0", "closed"))
    closed.write_batch([(b"a", b"1")], changelog_offset=40)
    closed.close()
    empty = RocksDBStore("empty", directory / "empty")
    empty.close()
    live = InMemoryStore("live")
    live.write_batch([(b"a", b"1")], changelog_offset=7)
    # the checkpoint is stale for 'closed' and knows an in-memory store from before
    write_checkpoint(directory, {"closed": 30, "empty": 3, "live": 1, "mem": 5})
    offsets = local_offsets(directory, {"live": live})
    assert offsets == {"closed": 40, "live": 7, "mem": 5}
    assert task_dirs(tmp_path, "app") == {"1_0": directory}
    assert task_dirs(tmp_path, "nothing") == {}


def test_local_offsets_skip_a_corrupted_store(tmp_path: Path) -> None:
    directory = tmp_path / "0_0"
    store = RocksDBStore("s", directory / "s")
    store.write_batch([(b"a", b"1")], changelog_offset=4)
    store.close()
    for f in (directory / "s").glob("MANIFEST-*"):
        f.write_bytes(b"garbage" * 10)
    write_checkpoint(directory, {"s": 4})
    assert local_offsets(directory) == {}


def test_checkpoint_json_is_plain(tmp_path: Path) -> None:
    write_checkpoint(tmp_path, {"counts": 3})
    doc = json.loads((tmp_path / CHECKPOINT_FILE).read_text())
    assert doc == {"version": 1, "offsets": {"counts": 3}}
