"""Changelog topics: naming and restoring a store from its records.

Every change a task commits to a store is also produced to a compacted changelog topic, keyed
by the store key, with a ``None`` value (tombstone) for a delete. A store rebuilt by replaying
the topic equals the original; a store that kept its data locally replays only the records after
the offset stored with its data.
"""

from __future__ import annotations

from collections.abc import Iterable

from state.api import KeyValueStore


def changelog_topic(app_id: str, store: str) -> str:
    """The changelog topic of ``store`` in application ``app_id``.

    >>> changelog_topic("wordcount", "counts")
    'wordcount-counts-changelog'
    """
    return f"{app_id}-{store}-changelog"


def restore_start(store: KeyValueStore) -> int:
    """The changelog offset to resume restoring ``store`` from (0 if it holds none).

    >>> from state.memory import InMemoryStore
    >>> s = InMemoryStore("counts")
    >>> restore_start(s), restore(s, [(4, b"k", b"v")]), restore_start(s)
    (0, 1, 5)
    """
    offset = store.changelog_offset()
    return 0 if offset is None else offset + 1


def restore(
    store: KeyValueStore,
    records: Iterable[tuple[int, bytes, bytes | None]],
    *,
    batch_size: int = 10_000,
) -> int:
    """Apply changelog ``(offset, key, value | None)`` records to ``store``; return the count.

    Records are written in batches of ``batch_size``, each together with the offset of its last
    record, so an interrupted restore resumes where the last batch ended. Offsets must increase
    (compaction leaves gaps, which is fine).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    restored = 0
    batch: list[tuple[bytes, bytes | None]] = []
    append = batch.append
    last = -1
    for offset, key, value in records:
        append((key, value))
        last = offset
        if len(batch) >= batch_size:
            store.write_batch(batch, changelog_offset=last)
            restored += len(batch)
            batch.clear()
    if batch:
        store.write_batch(batch, changelog_offset=last)
        restored += len(batch)
    return restored
