"""The classic group protocol as a state machine, driven with a fake clock."""

from __future__ import annotations

import asyncio

from group_fakes import FakeClock, MemoryLogs, make_config
from kio.schema.errors import ErrorCode

from broker.group import GroupCoordinator, JoinRequest
from broker.group.state import GroupState, JoinResult, SyncResult


def req(member_id: str = "", **kw: object) -> JoinRequest:
    values: dict[str, object] = {
        "group_id": "g",
        "member_id": member_id,
        "group_instance_id": None,
        "client_id": "c",
        "client_host": "/127.0.0.1",
        "session_timeout_ms": 10_000,
        "rebalance_timeout_ms": 20_000,
        "protocol_type": "consumer",
        "protocols": [("range", b"r"), ("roundrobin", b"rr")],
    }
    values.update(kw)
    return JoinRequest(**values)  # type: ignore[arg-type]


async def settle(value: object) -> object:
    await asyncio.sleep(0)
    if isinstance(value, asyncio.Future):
        assert value.done()
        return value.result()
    return value


async def join_new(c: GroupCoordinator, **kw: object) -> asyncio.Future[JoinResult] | JoinResult:
    """First join (gets MEMBER_ID_REQUIRED), then the join with the handed-out id."""
    first = c.membership.join(req(**kw))
    assert isinstance(first, JoinResult)
    assert first.error_code == ErrorCode.member_id_required.value
    return c.membership.join(req(first.member_id, **kw))


def end_initial_delay(c: GroupCoordinator) -> None:
    clock = c.clock
    assert isinstance(clock, FakeClock)
    clock.advance(3_001)
    c.tick()


async def stable_group(c: GroupCoordinator, n: int) -> list[JoinResult]:
    waiters = [await join_new(c) for _ in range(n)]
    end_initial_delay(c)
    results = [await settle(w) for w in waiters]
    assert all(isinstance(r, JoinResult) and r.error_code == 0 for r in results)
    joined = [r for r in results if isinstance(r, JoinResult)]
    leader = next(r for r in joined if r.member_id == r.leader)
    syncs = [
        c.membership.sync("g", r.generation_id, r.member_id, None, {})
        for r in joined
        if r is not leader
    ]
    assignments = {r.member_id: r.member_id.encode() for r in joined}
    c.membership.sync("g", leader.generation_id, leader.member_id, None, assignments)
    for s in syncs:
        result = await settle(s)
        assert isinstance(result, SyncResult) and result.error_code == 0
    assert c.groups["g"].state is GroupState.STABLE
    return joined


async def test_three_members_join_and_sync(coord: GroupCoordinator) -> None:
    joined = await stable_group(coord, 3)
    leader = [r for r in joined if r.member_id == r.leader]
    assert len(leader) == 1 and len(leader[0].members) == 3
    assert all(r.generation_id == 1 and r.protocol_name == "range" for r in joined)
    follower = next(r for r in joined if r.member_id != r.leader)
    assert follower.members == []
    again = coord.membership.sync("g", 1, follower.member_id, None, {})
    assert isinstance(again, SyncResult) and again.assignment == follower.member_id.encode()


async def test_protocol_selection_picks_common_protocol(coord: GroupCoordinator) -> None:
    a = await join_new(coord, protocols=[("range", b""), ("sticky", b"s")])
    b = await join_new(coord, protocols=[("sticky", b"s2"), ("roundrobin", b"")])
    end_initial_delay(coord)
    ra, rb = await settle(a), await settle(b)
    assert isinstance(ra, JoinResult) and isinstance(rb, JoinResult)
    assert ra.protocol_name == rb.protocol_name == "sticky"
    bad = coord.membership.join(req(protocols=[("other", b"")]))
    assert isinstance(bad, JoinResult)
    assert bad.error_code == ErrorCode.inconsistent_group_protocol.value
    wrong_type = coord.membership.join(req(protocol_type="connect"))
    assert isinstance(wrong_type, JoinResult)
    assert wrong_type.error_code == ErrorCode.inconsistent_group_protocol.value


async def test_bad_join_inputs(coord: GroupCoordinator) -> None:
    cases = [
        (req(group_id=""), ErrorCode.invalid_group_id),
        (req(session_timeout_ms=10), ErrorCode.invalid_session_timeout),
        (req(session_timeout_ms=10**8), ErrorCode.invalid_session_timeout),
        (req("nobody"), ErrorCode.unknown_member_id),
        (req(protocol_type="", protocols=[]), ErrorCode.inconsistent_group_protocol),
    ]
    for request, code in cases:
        result = coord.membership.join(request)
        assert isinstance(result, JoinResult) and result.error_code == code.value, request
    assert "g" not in coord.groups


async def test_session_timeout_removes_member_and_rebalances(
    coord: GroupCoordinator, clock: FakeClock
) -> None:
    a, b, _c = await stable_group(coord, 3)
    clock.advance(6_000)
    assert coord.heartbeat("g", 1, a.member_id, None) is ErrorCode.none
    assert coord.heartbeat("g", 1, b.member_id, None) is ErrorCode.none
    clock.advance(6_000)  # the third member has now been silent for 12 s > 10 s
    coord.tick()
    group = coord.groups["g"]
    assert group.state is GroupState.PREPARING_REBALANCE and len(group.members) == 2
    assert coord.heartbeat("g", 1, a.member_id, None) is ErrorCode.rebalance_in_progress
    ja = coord.membership.join(req(a.member_id))
    jb = coord.membership.join(req(b.member_id))
    ra, rb = await settle(ja), await settle(jb)
    assert isinstance(ra, JoinResult) and isinstance(rb, JoinResult)
    assert ra.generation_id == rb.generation_id == 2
    assert coord.heartbeat("g", 1, a.member_id, None) is ErrorCode.illegal_generation
    assert coord.heartbeat("g", 2, _c.member_id, None) is ErrorCode.unknown_member_id


async def test_rebalance_timeout_drops_members_that_do_not_rejoin(
    coord: GroupCoordinator, clock: FakeClock
) -> None:
    a, b = await stable_group(coord, 2)
    ja = coord.membership.join(req(a.member_id, protocols=[("range", b"changed")]))
    assert isinstance(ja, asyncio.Future) and not ja.done()
    clock.advance(9_000)
    assert coord.heartbeat("g", 1, b.member_id, None) is ErrorCode.rebalance_in_progress
    clock.advance(11_001)  # past the 20 s rebalance timeout
    coord.tick()
    result = await settle(ja)
    assert isinstance(result, JoinResult) and result.error_code == 0
    assert result.generation_id == 2 and list(coord.groups["g"].members) == [a.member_id]


async def test_initial_rebalance_delay_gathers_members(
    coord: GroupCoordinator, clock: FakeClock
) -> None:
    a = await join_new(coord)
    clock.advance(2_000)
    b = await join_new(coord)
    assert isinstance(a, asyncio.Future) and isinstance(b, asyncio.Future)
    clock.advance(2_000)
    coord.tick()
    assert not a.done()  # the second join extended the delay
    clock.advance(1_001)
    coord.tick()
    ra, rb = await settle(a), await settle(b)
    assert isinstance(ra, JoinResult) and isinstance(rb, JoinResult)
    assert ra.generation_id == rb.generation_id == 1


async def test_without_initial_delay_a_lone_member_completes_at_once(
    logs: MemoryLogs, clock: FakeClock
) -> None:
    c = GroupCoordinator(logs, make_config(group_initial_rebalance_delay_ms=0), clock=clock)
    await c.start()
    try:
        result = await settle(await join_new(c))
        assert isinstance(result, JoinResult) and result.generation_id == 1
        assert result.leader == result.member_id
    finally:
        await c.stop()


async def test_static_member_rejoin_fences_old_id_without_rebalance(
    coord: GroupCoordinator,
) -> None:
    # Static members skip MEMBER_ID_REQUIRED.
    ja = coord.membership.join(req(group_instance_id="i1"))
    jb = coord.membership.join(req(group_instance_id="i2"))
    end_initial_delay(coord)
    ra, b = await settle(ja), await settle(jb)
    assert isinstance(ra, JoinResult) and isinstance(b, JoinResult)
    assert ra.error_code == 0 and ra.generation_id == b.generation_id == 1
    leader = ra if ra.member_id == ra.leader else b
    other = b if leader is ra else ra
    pending = coord.membership.sync(
        "g", other.generation_id, other.member_id, "i1" if other is ra else "i2", {}
    )
    coord.membership.sync(
        "g",
        leader.generation_id,
        leader.member_id,
        "i1" if leader is ra else "i2",
        {leader.member_id: b"L", other.member_id: b"F"},
    )
    assert isinstance(await settle(pending), SyncResult)
    generation = coord.groups["g"].generation_id
    other_instance = "i1" if other is ra else "i2"
    again = await settle(coord.membership.join(req(group_instance_id=other_instance)))
    assert isinstance(again, JoinResult) and again.error_code == 0
    assert again.member_id != other.member_id and again.generation_id == generation
    assert coord.groups["g"].state is GroupState.STABLE
    assert coord.heartbeat("g", generation, other.member_id, other_instance) is (
        ErrorCode.fenced_instance_id
    )
    fresh = coord.membership.sync("g", generation, again.member_id, other_instance, {})
    assert isinstance(fresh, SyncResult) and fresh.assignment == b"F"


async def test_leave_group_batch(coord: GroupCoordinator) -> None:
    a, b, c = await stable_group(coord, 3)
    codes = coord.leave_group("g", [(a.member_id, None), ("ghost", None), (b.member_id, "nope")])
    assert codes == [ErrorCode.none, ErrorCode.unknown_member_id, ErrorCode.unknown_member_id]
    assert coord.groups["g"].state is GroupState.PREPARING_REBALANCE
    assert coord.leave_group("missing", [("x", None)]) == [ErrorCode.unknown_member_id]
    coord.leave_group("g", [(b.member_id, None), (c.member_id, None)])
    group = coord.groups["g"]
    assert group.state is GroupState.EMPTY and group.generation_id == 2


async def test_sync_errors(coord: GroupCoordinator) -> None:
    a, _b = await stable_group(coord, 2)
    assert coord.membership.sync("nope", 1, a.member_id, None, {}).error_code == (  # type: ignore[union-attr]
        ErrorCode.unknown_member_id.value
    )
    bad_gen = coord.membership.sync("g", 7, a.member_id, None, {})
    assert isinstance(bad_gen, SyncResult)
    assert bad_gen.error_code == ErrorCode.illegal_generation.value
    bad_proto = coord.membership.sync("g", 1, a.member_id, None, {}, "consumer", "other")
    assert isinstance(bad_proto, SyncResult)
    assert bad_proto.error_code == ErrorCode.inconsistent_group_protocol.value


async def test_member_id_required_expires(coord: GroupCoordinator, clock: FakeClock) -> None:
    first = coord.membership.join(req())
    assert isinstance(first, JoinResult)
    clock.advance(10_001)
    coord.tick()
    late = coord.membership.join(req(first.member_id))
    assert isinstance(late, JoinResult) and late.error_code == ErrorCode.unknown_member_id.value


async def test_static_leader_rejoin_keeps_generation_and_skips_assignment(
    coord: GroupCoordinator,
) -> None:
    ja = coord.membership.join(req(group_instance_id="i1"))
    jb = coord.membership.join(req(group_instance_id="i2"))
    end_initial_delay(coord)
    ra, rb = await settle(ja), await settle(jb)
    assert isinstance(ra, JoinResult) and isinstance(rb, JoinResult)
    leader, follower = (ra, rb) if ra.member_id == ra.leader else (rb, ra)
    leader_instance = "i1" if leader is ra else "i2"
    waiting = coord.membership.sync("g", 1, follower.member_id, None, {})
    coord.membership.sync(
        "g", 1, leader.member_id, None, {leader.member_id: b"L", follower.member_id: b"F"}
    )
    assert isinstance(await settle(waiting), SyncResult)
    back = coord.membership.join(req(group_instance_id=leader_instance))
    assert isinstance(back, JoinResult) and back.error_code == 0
    assert back.generation_id == 1 and back.skip_assignment and back.leader == back.member_id
    assert {m for m, _, _ in back.members} == {back.member_id, follower.member_id}
    # Whatever the returning leader sends, the stored assignment stands.
    sync = coord.membership.sync("g", 1, back.member_id, leader_instance, {back.member_id: b"X"})
    assert isinstance(sync, SyncResult) and sync.assignment == b"L"
    assert coord.groups["g"].state is GroupState.STABLE
