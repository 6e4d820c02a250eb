"""Committed offsets: checks, storage in __consumer_offsets, reload, expiry, deletion."""

from __future__ import annotations

import asyncio

from group_fakes import FakeClock, MemoryLogs, make_config
from kio.schema.errors import ErrorCode

from broker.group import CommitRequest, GroupCoordinator, JoinRequest
from broker.group.offsets import (
    OFFSETS_TOPIC,
    decode_group_value,
    decode_key,
    group_key,
    group_value,
    java_string_hash,
)
from broker.group.state import Group, GroupState, JoinResult, Member


def commit(group: str = "g", gen: int = -1, member: str = "", **offsets: int) -> CommitRequest:
    return CommitRequest(
        group_id=group,
        generation_id=gen,
        member_id=member,
        group_instance_id=None,
        offsets={("t", int(p[1:])): (o, 5, f"meta-{p}") for p, o in offsets.items()},
    )


async def restarted(logs: MemoryLogs, clock: FakeClock, **config: object) -> GroupCoordinator:
    c = GroupCoordinator(logs, make_config(**config), clock=clock)
    await c.start()
    return c


def test_java_hash_matches_kafka() -> None:
    # Values of Java's "...".hashCode().
    assert java_string_hash("") == 0
    assert java_string_hash("hello") == 99162322
    assert java_string_hash("polygenelubricants") == -(2**31)


async def test_partition_for_uses_kafka_abs(coord: GroupCoordinator) -> None:
    # Kafka's Utils.abs maps Integer.MIN_VALUE to 0.
    assert coord.store.partition_for("polygenelubricants") == 0


def test_group_value_round_trip() -> None:
    group = Group("g", generation_id=4, protocol_type="consumer", protocol_name="range")
    group.leader_id = "m1"
    group.state_timestamp_ms = 77
    group.members["m1"] = Member(
        "m1", "i1", "cid", "/h", 10_000, 30_000, "consumer", [("range", b"sub")], assignment=b"asg"
    )
    back = decode_group_value("g", group_value(group), now_ms=5)
    assert (back.generation_id, back.protocol_type, back.protocol_name, back.leader_id) == (
        4,
        "consumer",
        "range",
        "m1",
    )
    m = back.members["m1"]
    assert (m.group_instance_id, m.client_id, m.metadata_for("range"), m.assignment) == (
        "i1",
        "cid",
        b"sub",
        b"asg",
    )
    assert back.static_members == {"i1": "m1"} and back.state is GroupState.STABLE
    assert decode_key(group_key("g")) == ("group", "g", "", -1)


async def test_commit_fetch_and_reload(logs: MemoryLogs, clock: FakeClock) -> None:
    c = await restarted(logs, clock)
    codes = c.commit_offsets(commit(p0=10, p3=42))
    assert set(codes.values()) == {ErrorCode.none}
    fetched = {(t, p): e for t, p, e in c.fetch_offsets("g", [("t", 0), ("t", 3), ("t", 1)])}
    assert fetched[("t", 1)] is None
    entry = fetched[("t", 3)]
    assert entry is not None and (entry.offset, entry.leader_epoch, entry.metadata) == (
        42,
        5,
        "meta-p3",
    )
    c.commit_offsets(commit(p3=43))
    await c.stop()
    again = await restarted(logs, clock)
    everything = again.fetch_offsets("g", None)
    assert [(t, p, e.offset if e else None) for t, p, e in everything] == [
        ("t", 0, 10),
        ("t", 3, 43),
    ]
    assert everything[1][2] is not None and everything[1][2].metadata == "meta-p3"
    assert again.list_groups() == [("g", "", "Empty")]
    await again.stop()


async def test_commit_errors(coord: GroupCoordinator) -> None:
    assert coord.commit_offsets(commit(group="", p0=1)) == {("t", 0): ErrorCode.invalid_group_id}
    unknown = CommitRequest("g", -1, "", None, {("nope", 0): (1, -1, None), ("t", 9): (1, -1, "")})
    assert set(coord.commit_offsets(unknown).values()) == {ErrorCode.unknown_topic_or_partition}
    big = CommitRequest("g", -1, "", None, {("t", 0): (1, -1, "x" * 5000)})
    assert coord.commit_offsets(big) == {("t", 0): ErrorCode.offset_metadata_too_large}
    assert coord.commit_offsets(commit(gen=3, member="m", p0=1)) == {
        ("t", 0): ErrorCode.illegal_generation
    }


async def test_member_commits_check_generation(coord: GroupCoordinator, clock: FakeClock) -> None:
    first = coord.membership.join(
        JoinRequest("g", "", None, "c", "/h", 10_000, 10_000, "consumer", [("range", b"")])
    )
    assert isinstance(first, JoinResult)
    waiter = coord.membership.join(
        JoinRequest(
            "g", first.member_id, None, "c", "/h", 10_000, 10_000, "consumer", [("range", b"")]
        )
    )
    assert isinstance(waiter, asyncio.Future)
    clock.advance(3_001)
    coord.tick()
    joined = waiter.result()
    mid = joined.member_id
    assert coord.commit_offsets(commit(gen=1, member=mid, p0=5)) == {
        ("t", 0): ErrorCode.rebalance_in_progress  # CompletingRebalance: not yet synced
    }
    coord.membership.sync("g", 1, mid, None, {mid: b"a"})
    assert coord.commit_offsets(commit(gen=1, member=mid, p0=5)) == {("t", 0): ErrorCode.none}
    assert coord.commit_offsets(commit(gen=2, member=mid, p0=5)) == {
        ("t", 0): ErrorCode.illegal_generation
    }
    assert coord.commit_offsets(commit(gen=1, member="other", p0=5)) == {
        ("t", 0): ErrorCode.unknown_member_id
    }
    # An admin commit while the group has members is refused.
    assert coord.commit_offsets(commit(p0=5)) == {("t", 0): ErrorCode.unknown_member_id}
    assert coord.delete_group("g") is ErrorCode.non_empty_group
    summary = coord.describe("g")
    assert summary.state == "Stable" and summary.members[0][0] == mid
    assert summary.members[0][5] == b"a"
    assert coord.list_groups(["stable"]) == [("g", "consumer", "Stable")]
    assert coord.list_groups(["empty"]) == []
    # The group's generation, protocol and members survive a restart.
    await coord.stop()
    again = await restarted(coord.logs, clock)  # type: ignore[arg-type]
    assert again.describe("g").members[0][5] == b"a"
    assert again.heartbeat("g", 1, mid, None) is ErrorCode.none
    await again.stop()


async def test_delete_groups(coord: GroupCoordinator, clock: FakeClock) -> None:
    assert coord.delete_group("nope") is ErrorCode.group_id_not_found
    assert coord.delete_group("") is ErrorCode.invalid_group_id
    coord.commit_offsets(commit(p1=7))
    assert coord.delete_group("g") is ErrorCode.none
    assert coord.fetch_offsets("g", [("t", 1)]) == [("t", 1, None)]
    assert coord.describe("g").state == "Dead"
    await coord.stop()
    again = await restarted(coord.logs, clock)  # type: ignore[arg-type]
    assert again.list_groups() == [] and again.fetch_offsets("g", None) == []
    await again.stop()


async def test_offsets_of_empty_groups_expire(logs: MemoryLogs, clock: FakeClock) -> None:
    c = await restarted(logs, clock, offsets_retention_minutes=1)
    c.commit_offsets(commit(p0=1))
    clock.advance(30_000)
    c.commit_offsets(commit(group="h", p0=2))
    clock.advance(31_000)
    assert c.expire_offsets() == 1
    assert [g for g, _, _ in c.list_groups()] == ["h"]
    await c.stop()
    again = await restarted(logs, clock, offsets_retention_minutes=1)
    assert again.fetch_offsets("g", None) == []
    assert [(t, p) for t, p, _ in again.fetch_offsets("h", None)] == [("t", 0)]
    await again.stop()


async def test_offsets_topic_is_compacted(logs: MemoryLogs, coord: GroupCoordinator) -> None:
    info = logs.topics()[OFFSETS_TOPIC]
    assert info.partitions == 3 and info.configs["cleanup.policy"] == "compact"
    assert coord.store.partition_for("hello") == 99162322 % 3


async def test_not_ready_before_start(logs: MemoryLogs, clock: FakeClock) -> None:
    import pytest

    from broker.errors import KafkaError

    c = GroupCoordinator(logs, make_config(), clock=clock)
    with pytest.raises(KafkaError) as err:
        c.list_groups()
    assert err.value.code is ErrorCode.coordinator_load_in_progress


async def test_empty_group_without_offsets_is_forgotten(
    coord: GroupCoordinator, clock: FakeClock
) -> None:
    first = coord.membership.join(
        JoinRequest("g", "", "i", "c", "/h", 10_000, 10_000, "consumer", [("range", b"")])
    )
    assert isinstance(first, asyncio.Future)
    clock.advance(3_001)
    coord.tick()
    assert coord.leave_group("g", [("", "i")]) == [ErrorCode.none]
    assert coord.list_groups() == [("g", "consumer", "Empty")]
    assert coord.expire_offsets() == 0
    assert coord.list_groups() == []
