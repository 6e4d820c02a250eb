"""Shared builders for the log storage tests."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from broker.log.partition import Partition
from broker.log.records import Record, build_batch, decode_records, iter_batches
from broker.log.topic_config import TopicConfig

KV = tuple[bytes | None, bytes | None, int]


def make_batch(items: Sequence[KV], codec: int = 0) -> bytes:
    """One batch of ``(key, value, timestamp)`` records, offsets from 0."""
    recs = [Record(offset=i, timestamp=ts, key=k, value=v) for i, (k, v, ts) in enumerate(items)]
    return build_batch(recs, base_offset=0, compression=codec)


def all_records(data: bytes) -> list[Record]:
    """Decode every record of a read result."""
    out: list[Record] = []
    for pos, h in iter_batches(data):
        out.extend(decode_records(data[pos : pos + h.size]))
    return out


@pytest.fixture
def batch() -> Callable[..., bytes]:
    return make_batch


@pytest.fixture
def records_of() -> Callable[[bytes], list[Record]]:
    return all_records


@pytest.fixture
def open_part(tmp_path: Path) -> Callable[..., Partition]:
    """Open (or reopen) partition ``t-0`` under ``tmp_path`` with topic config overrides."""

    def _open(**overrides: str) -> Partition:
        cfg = TopicConfig.resolve({k.replace("_", "."): v for k, v in overrides.items()})
        return Partition(tmp_path / "t-0", "t", 0, cfg)

    return _open
