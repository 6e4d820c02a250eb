"""Topic metadata, configs and restarts of the LogManager."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from broker.errors import ErrorCode, KafkaError
from broker.log import LogManager
from broker.log.records import Record

Batch = Callable[..., bytes]
RecordsOf = Callable[[bytes], list[Record]]


def code(exc: pytest.ExceptionInfo[KafkaError]) -> ErrorCode:
    return exc.value.code


def test_create_append_restart(tmp_path: Path, batch: Batch, records_of: RecordsOf) -> None:
    dirs = [tmp_path / "a", tmp_path / "b"]
    logs = LogManager(dirs, {"log.retention.hours": "2"})
    info = logs.create_topic("orders", 3, {"cleanup.policy": "compact", "segment.bytes": "4096"})
    assert info.partitions == 3 and len(info.topic_id) == 16 and not info.internal
    for p in range(3):
        logs.partition("orders", p).append(batch([(b"k%d" % p, b"v", 1)]), now_ms=1)
    logs.create_topic("__consumer_offsets", 1, {})
    logs.close()
    # partitions spread over both log dirs
    assert {p.parent.name for p in tmp_path.glob("*/orders-*")} == {"a", "b"}

    logs = LogManager(dirs, {"log.retention.hours": "2"})
    topics = logs.topics()
    assert set(topics) == {"orders", "__consumer_offsets"}
    assert topics["orders"].topic_id == info.topic_id
    assert topics["orders"].configs == {"cleanup.policy": "compact", "segment.bytes": "4096"}
    assert topics["__consumer_offsets"].internal
    for p in range(3):
        part = logs.partition("orders", p)
        assert [r.key for r in records_of(part.read(0, 1000))] == [b"k%d" % p]
        assert part.config.compact and part.config.retention_ms == 7_200_000
    logs.close()


def test_topic_names(tmp_path: Path) -> None:
    logs = LogManager([tmp_path], {})
    for bad in ("", ".", "..", "a" * 250, "bad name", "ü", "a/b"):
        with pytest.raises(KafkaError) as e:
            logs.create_topic(bad, 1, {})
        assert code(e) == ErrorCode.invalid_topic_exception
    logs.create_topic("a" * 249, 1, {})
    logs.create_topic("my.topic", 1, {})
    with pytest.raises(KafkaError) as e:
        logs.create_topic("my.topic", 1, {})
    assert code(e) == ErrorCode.topic_already_exists
    with pytest.raises(KafkaError) as e:
        logs.create_topic("my_topic", 1, {})
    assert code(e) == ErrorCode.invalid_topic_exception
    with pytest.raises(KafkaError) as e:
        logs.create_topic("zero", 0, {})
    assert code(e) == ErrorCode.invalid_partitions
    logs.close()


def test_validate_only_and_default_partitions(tmp_path: Path) -> None:
    logs = LogManager([tmp_path], {"num.partitions": "4"})
    logs.create_topic("dry", 2, {}, validate_only=True)
    assert "dry" not in logs.topics()
    assert logs.create_topic("dflt", -1, {}).partitions == 4
    logs.close()


def test_bad_configs(tmp_path: Path) -> None:
    logs = LogManager([tmp_path], {})
    cases = {
        "no.such.config": "1",
        "retention.ms": "soon",
        "cleanup.policy": "shred",
        "min.cleanable.dirty.ratio": "1.5",
        "segment.bytes": "3",
        "preallocate": "maybe",
    }
    for name, value in cases.items():
        with pytest.raises(KafkaError) as e:
            logs.create_topic("t", 1, {name: value})
        assert code(e) == ErrorCode.invalid_config
        assert name in e.value.message
    assert "t" not in logs.topics()
    with pytest.raises(KafkaError) as e:
        LogManager([tmp_path / "x"], {"log.retention.ms": "later"})
    assert "log.retention.ms" in e.value.message
    logs.close()


def test_create_partitions(tmp_path: Path, batch: Batch) -> None:
    logs = LogManager([tmp_path], {})
    logs.create_topic("t", 2, {})
    for total in (1, 2):
        with pytest.raises(KafkaError) as e:
            logs.create_partitions("t", total)
        assert code(e) == ErrorCode.invalid_partitions
        assert "partitions can only be added" in e.value.message
    logs.create_partitions("t", 5, validate_only=True)
    assert logs.topics()["t"].partitions == 2
    logs.create_partitions("t", 5)
    logs.partition("t", 4).append(batch([(b"k", b"v", 1)]), now_ms=1)
    with pytest.raises(KafkaError) as e:
        logs.create_partitions("nope", 3)
    assert code(e) == ErrorCode.unknown_topic_or_partition
    logs.close()
    logs = LogManager([tmp_path], {})
    assert logs.topics()["t"].partitions == 5
    assert logs.partition("t", 4).log_end_offset == 1
    logs.close()


def test_delete_topic(tmp_path: Path, batch: Batch) -> None:
    logs = LogManager([tmp_path], {})
    logs.create_topic("t", 2, {})
    logs.partition("t", 0).append(batch([(b"k", b"v", 1)]), now_ms=1)
    logs.delete_topic("t")
    assert "t" not in logs.topics()
    assert not list(tmp_path.glob("t-*"))
    with pytest.raises(KafkaError) as e:
        logs.partition("t", 0)
    assert code(e) == ErrorCode.unknown_topic_or_partition
    with pytest.raises(KafkaError) as e:
        logs.delete_topic("t")
    assert code(e) == ErrorCode.unknown_topic_or_partition
    # recreated empty
    logs.create_topic("t", 1, {})
    assert logs.partition("t", 0).log_end_offset == 0
    logs.close()
    logs = LogManager([tmp_path], {"delete.topic.enable": "false"})
    with pytest.raises(KafkaError) as e:
        logs.delete_topic("t")
    assert code(e) == ErrorCode.topic_deletion_disabled
    logs.close()


def test_describe_and_alter_configs(tmp_path: Path) -> None:
    logs = LogManager([tmp_path], {"log.retention.hours": "1", "message.max.bytes": "2000"})
    logs.create_topic("t", 1, {"segment.ms": "5000"})
    entries = {e.name: e for e in logs.describe_configs("t")}
    assert len(entries) >= 30
    assert (entries["segment.ms"].value, entries["segment.ms"].source) == ("5000", 1)
    assert not entries["segment.ms"].is_default
    assert (entries["retention.ms"].value, entries["retention.ms"].source) == ("3600000", 4)
    assert (entries["max.message.bytes"].value, entries["max.message.bytes"].source) == ("2000", 4)
    assert (entries["cleanup.policy"].value, entries["cleanup.policy"].is_default) == (
        "delete",
        True,
    )
    assert entries["flush.messages"].value == str(2**63 - 1)

    # incremental: set one, delete another, keep the rest
    logs.alter_configs("t", {"retention.bytes": "100"}, delete=["segment.ms"])
    assert logs.topics()["t"].configs == {"retention.bytes": "100"}
    assert logs.partition("t", 0).config.retention_bytes == 100
    # replace all: everything not given goes back to its default
    logs.alter_configs("t", {"cleanup.policy": "compact"}, replace_all=True)
    assert logs.topics()["t"].configs == {"cleanup.policy": "compact"}
    assert logs.partition("t", 0).config.compact
    logs.alter_configs("t", {"cleanup.policy": "delete"}, validate_only=True)
    assert logs.partition("t", 0).config.compact
    for set_, delete in (({"bogus": "1"}, []), ({"retention.ms": "-5"}, []), ({}, ["bogus"])):
        with pytest.raises(KafkaError) as e:
            logs.alter_configs("t", set_, delete)
        assert code(e) == ErrorCode.invalid_config
    with pytest.raises(KafkaError) as e:
        logs.describe_configs("nope")
    assert code(e) == ErrorCode.unknown_topic_or_partition
    logs.close()
    logs = LogManager([tmp_path], {})
    assert logs.topics()["t"].configs == {"cleanup.policy": "compact"}
    logs.close()


def test_on_append_and_maintain(tmp_path: Path, batch: Batch) -> None:
    logs = LogManager([tmp_path], {})
    seen: list[tuple[str, int]] = []
    logs.on_append = lambda t, p: seen.append((t, p))
    size = len(batch([(b"k", b"v", 1)]))
    logs.create_topic("t", 2, {"segment.bytes": str(size), "retention.ms": "1000"})
    logs.create_topic("c", 1, {"segment.bytes": str(size), "cleanup.policy": "compact"})
    part = logs.partition("t", 1)
    for ts in (100, 200, 5000):
        part.append(batch([(b"k", b"v", ts)]), now_ms=ts)
    comp = logs.partition("c", 0)
    for ts in (1, 2, 3):
        comp.append(batch([(b"k", b"v%d" % ts, ts)]), now_ms=ts)
    assert seen[:3] == [("t", 1)] * 3 and seen[3:] == [("c", 0)] * 3
    logs.maintain(now_ms=5500)
    assert part.log_start_offset == 2  # retention deleted the two old segments
    assert comp.cleaner_offset == 2  # compaction ran
    logs.flush_all()
    logs.close()


def test_unknown_partition(tmp_path: Path) -> None:
    logs = LogManager([tmp_path], {})
    logs.create_topic("t", 1, {})
    with pytest.raises(KafkaError) as e:
        logs.partition("t", 1)
    assert code(e) == ErrorCode.unknown_topic_or_partition
    logs.close()
