"""The classic group membership protocol as state transitions (JoinGroup, SyncGroup, ...).

Every operation is a plain method that changes a :class:`Group` and returns either an
answer or an ``asyncio.Future`` the caller awaits (JoinGroup waits until the rebalance
completes, SyncGroup until the leader hands out assignments). Time comes from a clock the
caller passes in, and timeouts are handled by :meth:`Membership.tick`, so the whole state
machine can be driven step by step with a fake clock in tests.

The rules follow Kafka's group coordinator: generations, MEMBER_ID_REQUIRED on a first
join (v4+), static membership with fencing, session and rebalance timeouts, and the
initial rebalance delay that lets a starting group gather its members before the first
assignment.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from kio.schema.errors import ErrorCode

from broker.group.state import Group, GroupState, JoinResult, Member, SyncResult

__all__ = ["JoinRequest", "Membership", "MembershipSettings"]


@dataclass(frozen=True, slots=True)
class MembershipSettings:
    initial_rebalance_delay_ms: int = 3000
    min_session_timeout_ms: int = 6000
    max_session_timeout_ms: int = 1800000


@dataclass(frozen=True, slots=True)
class JoinRequest:
    group_id: str
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    session_timeout_ms: int
    rebalance_timeout_ms: int
    protocol_type: str
    protocols: Sequence[tuple[str, bytes]]
    require_known_member_id: bool = True
    """JoinGroup v4+: a first join without a member id gets MEMBER_ID_REQUIRED."""


def _fail_join(code: ErrorCode, member_id: str = "") -> JoinResult:
    return JoinResult(error_code=code.value, member_id=member_id)


class Membership:
    """Join/sync/heartbeat/leave over a dict of groups.

    ``on_group_changed`` is called with a group whenever what is persisted about it
    (generation, protocol, members and their assignments) changed.
    """

    def __init__(
        self,
        groups: dict[str, Group],
        settings: MembershipSettings,
        clock: Callable[[], int],
        on_group_changed: Callable[[Group], None] = lambda g: None,
    ) -> None:
        self.groups = groups
        self.settings = settings
        self.clock = clock
        self.on_group_changed = on_group_changed

    # -- JoinGroup ---------------------------------------------------------------------

    def join(self, req: JoinRequest) -> JoinResult | asyncio.Future[JoinResult]:
        s = self.settings
        if not req.group_id:
            return _fail_join(ErrorCode.invalid_group_id)
        if not s.min_session_timeout_ms <= req.session_timeout_ms <= s.max_session_timeout_ms:
            return _fail_join(ErrorCode.invalid_session_timeout)
        group = self.groups.get(req.group_id)
        if group is None:
            if req.member_id:
                return _fail_join(ErrorCode.unknown_member_id)
            group = Group(req.group_id, state_timestamp_ms=self.clock())
        if group.state is GroupState.DEAD:
            return _fail_join(ErrorCode.coordinator_not_available)
        names = [name for name, _ in req.protocols]
        if not group.supports(req.protocol_type, names):
            return _fail_join(ErrorCode.inconsistent_group_protocol)
        self.groups.setdefault(req.group_id, group)
        if not req.member_id:
            return self._join_new(group, req)
        return self._join_known(group, req)

    def _join_new(self, group: Group, req: JoinRequest) -> JoinResult | asyncio.Future[JoinResult]:
        prefix = req.group_instance_id or req.client_id or "member"
        new_id = f"{prefix}-{uuid.uuid4()}"
        if req.group_instance_id is not None:
            old = group.member_by_instance(req.group_instance_id)
            if old is not None:
                return self._replace_static(group, old, new_id, req)
            return self._add_member(group, new_id, req)
        if req.require_known_member_id:
            group.pending_members[new_id] = self.clock() + req.session_timeout_ms
            return _fail_join(ErrorCode.member_id_required, new_id)
        return self._add_member(group, new_id, req)

    def _join_known(
        self, group: Group, req: JoinRequest
    ) -> JoinResult | asyncio.Future[JoinResult]:
        if req.group_instance_id is not None:
            current = group.static_members.get(req.group_instance_id)
            if current is not None and current != req.member_id:
                return _fail_join(ErrorCode.fenced_instance_id, req.member_id)
        member = group.members.get(req.member_id)
        if member is None:
            if req.member_id in group.pending_members:
                return self._add_member(group, req.member_id, req)
            return _fail_join(ErrorCode.unknown_member_id, req.member_id)
        changed = member.protocols != list(req.protocols)
        self._update_member(member, req)
        now = self.clock()
        if group.state is GroupState.PREPARING_REBALANCE:
            waiter = self._await_join(member)
            self._maybe_complete_join(group, now)
            return waiter
        if group.state is GroupState.COMPLETING_REBALANCE and not changed:
            return self._join_result(group, member)
        if group.state is GroupState.STABLE and not changed and member.member_id != group.leader_id:
            return self._join_result(group, member)
        # A changed subscription, or the leader asking again (it wants a new assignment).
        waiter = self._await_join(member)
        self._prepare_rebalance(group, now)
        self._maybe_complete_join(group, now)
        return waiter

    def _add_member(
        self, group: Group, member_id: str, req: JoinRequest
    ) -> asyncio.Future[JoinResult]:
        now = self.clock()
        group.pending_members.pop(member_id, None)
        member = Member(
            member_id=member_id,
            group_instance_id=req.group_instance_id,
            client_id=req.client_id,
            client_host=req.client_host,
            session_timeout_ms=req.session_timeout_ms,
            rebalance_timeout_ms=req.rebalance_timeout_ms,
            protocol_type=req.protocol_type,
            protocols=list(req.protocols),
            last_heartbeat_ms=now,
        )
        if not group.members:
            group.protocol_type = req.protocol_type
        group.members[member_id] = member
        if req.group_instance_id is not None:
            group.static_members[req.group_instance_id] = member_id
        waiter = self._await_join(member)
        if group.state is GroupState.PREPARING_REBALANCE:
            if group.initial_delay_until_ms > now:
                # A new member during the initial delay: wait a little longer for others.
                group.initial_delay_until_ms = min(
                    now + self.settings.initial_rebalance_delay_ms, group.initial_delay_limit_ms
                )
        else:
            self._prepare_rebalance(group, now)
        self._maybe_complete_join(group, now)
        return waiter

    def _replace_static(
        self, group: Group, old: Member, new_id: str, req: JoinRequest
    ) -> JoinResult | asyncio.Future[JoinResult]:
        """A static member came back with no member id: it takes over, the old id is fenced."""
        if old.awaiting_join:
            assert old.join_waiter is not None
            old.join_waiter.set_result(_fail_join(ErrorCode.fenced_instance_id, old.member_id))
        if old.awaiting_sync:
            assert old.sync_waiter is not None
            old.sync_waiter.set_result(SyncResult(ErrorCode.fenced_instance_id.value))
        old.join_waiter = old.sync_waiter = None
        del group.members[old.member_id]
        was_leader = group.leader_id == old.member_id
        old.member_id = new_id
        old.last_heartbeat_ms = self.clock()
        self._update_member(old, req)
        group.members[new_id] = old
        group.static_members[req.group_instance_id or ""] = new_id
        if was_leader:
            group.leader_id = new_id
        now = self.clock()
        if group.state is GroupState.STABLE and group.select_protocol() == group.protocol_name:
            # Like Kafka: the new incarnation takes over the old one's assignment without
            # a rebalance; a returning leader gets the members but must not reassign.
            self.on_group_changed(group)
            result = self._join_result(group, old)
            result.skip_assignment = was_leader
            return result
        waiter = self._await_join(old)
        if group.state is not GroupState.PREPARING_REBALANCE:
            self._prepare_rebalance(group, now)
        self._maybe_complete_join(group, now)
        return waiter

    @staticmethod
    def _update_member(member: Member, req: JoinRequest) -> None:
        member.protocols = list(req.protocols)
        member.session_timeout_ms = req.session_timeout_ms
        member.rebalance_timeout_ms = req.rebalance_timeout_ms
        member.client_id = req.client_id
        member.client_host = req.client_host

    @staticmethod
    def _await_join(member: Member) -> asyncio.Future[JoinResult]:
        if member.awaiting_join:
            assert member.join_waiter is not None
            # The client gave up on its earlier JoinGroup and sent a new one.
            member.join_waiter.set_result(_fail_join(ErrorCode.rebalance_in_progress))
        member.join_waiter = asyncio.get_running_loop().create_future()
        return member.join_waiter

    def _join_result(self, group: Group, member: Member) -> JoinResult:
        members = []
        if member.member_id == group.leader_id and group.protocol_name is not None:
            members = [
                (m.member_id, m.group_instance_id, m.metadata_for(group.protocol_name))
                for m in group.members.values()
            ]
        return JoinResult(
            error_code=0,
            generation_id=group.generation_id,
            protocol_type=group.protocol_type,
            protocol_name=group.protocol_name,
            leader=group.leader_id or "",
            member_id=member.member_id,
            members=members,
        )

    def _prepare_rebalance(self, group: Group, now: int) -> None:
        if group.state is GroupState.COMPLETING_REBALANCE:
            for m in group.members.values():
                m.assignment = b""
                if m.awaiting_sync:
                    assert m.sync_waiter is not None
                    m.sync_waiter.set_result(SyncResult(ErrorCode.rebalance_in_progress.value))
                m.sync_waiter = None
        was_empty = group.state is GroupState.EMPTY
        group.transition(GroupState.PREPARING_REBALANCE, now)
        timeout = max((m.rebalance_timeout_ms for m in group.members.values()), default=0)
        group.rebalance_deadline_ms = now + timeout
        delay = self.settings.initial_rebalance_delay_ms
        if was_empty and delay > 0:
            group.initial_delay_limit_ms = now + max(timeout, delay)
            group.initial_delay_until_ms = now + min(delay, max(timeout, delay))
        else:
            group.initial_delay_until_ms = 0

    def _maybe_complete_join(self, group: Group, now: int) -> None:
        if group.state is not GroupState.PREPARING_REBALANCE:
            return
        if group.initial_delay_until_ms > now:
            return
        if group.all_joined() or now >= group.rebalance_deadline_ms:
            self._complete_join(group, now)

    def _complete_join(self, group: Group, now: int) -> None:
        for member in list(group.members.values()):
            if not member.awaiting_join:
                self._remove(group, member)
        group.pending_members.clear()
        group.generation_id += 1
        if not group.members:
            group.protocol_name = None
            group.leader_id = None
            group.transition(GroupState.EMPTY, now)
            self.on_group_changed(group)
            return
        group.protocol_name = group.select_protocol()
        if group.leader_id not in group.members:
            group.leader_id = next(iter(group.members))
        group.transition(GroupState.COMPLETING_REBALANCE, now)
        for member in group.members.values():
            member.last_heartbeat_ms = now
            waiter = member.join_waiter
            member.join_waiter = None
            if waiter is not None and not waiter.done():
                waiter.set_result(self._join_result(group, member))

    # -- SyncGroup / Heartbeat ---------------------------------------------------------

    def _check_member(
        self, group: Group | None, generation_id: int, member_id: str, instance_id: str | None
    ) -> tuple[ErrorCode, Member | None]:
        if group is None or group.state is GroupState.DEAD:
            return ErrorCode.unknown_member_id, None
        if instance_id is not None:
            current = group.static_members.get(instance_id)
            if current is not None and current != member_id:
                return ErrorCode.fenced_instance_id, None
        member = group.members.get(member_id)
        if member is None:
            return ErrorCode.unknown_member_id, None
        if generation_id != group.generation_id:
            return ErrorCode.illegal_generation, member
        return ErrorCode.none, member

    def sync(
        self,
        group_id: str,
        generation_id: int,
        member_id: str,
        instance_id: str | None,
        assignments: dict[str, bytes],
        protocol_type: str | None = None,
        protocol_name: str | None = None,
    ) -> SyncResult | asyncio.Future[SyncResult]:
        group = self.groups.get(group_id)
        code, member = self._check_member(group, generation_id, member_id, instance_id)
        if code is not ErrorCode.none or member is None or group is None:
            return SyncResult(code.value)
        if (protocol_type is not None and protocol_type != group.protocol_type) or (
            protocol_name is not None and protocol_name != group.protocol_name
        ):
            return SyncResult(ErrorCode.inconsistent_group_protocol.value)
        if group.state is GroupState.PREPARING_REBALANCE:
            return SyncResult(ErrorCode.rebalance_in_progress.value)
        now = self.clock()
        member.last_heartbeat_ms = now
        if group.state is GroupState.STABLE:
            return SyncResult(0, group.protocol_type, group.protocol_name, member.assignment)
        waiter: asyncio.Future[SyncResult] = asyncio.get_running_loop().create_future()
        member.sync_waiter = waiter
        if member_id == group.leader_id:
            for m in group.members.values():
                m.assignment = assignments.get(m.member_id, b"")
            group.transition(GroupState.STABLE, now)
            self.on_group_changed(group)
            for m in group.members.values():
                if m.awaiting_sync:
                    assert m.sync_waiter is not None
                    m.sync_waiter.set_result(
                        SyncResult(0, group.protocol_type, group.protocol_name, m.assignment)
                    )
                m.sync_waiter = None
        return waiter

    def heartbeat(
        self, group_id: str, generation_id: int, member_id: str, instance_id: str | None
    ) -> ErrorCode:
        group = self.groups.get(group_id)
        code, member = self._check_member(group, generation_id, member_id, instance_id)
        if code is not ErrorCode.none or member is None or group is None:
            return code
        member.last_heartbeat_ms = self.clock()
        if group.state is GroupState.PREPARING_REBALANCE:
            return ErrorCode.rebalance_in_progress
        return ErrorCode.none

    # -- LeaveGroup and removal --------------------------------------------------------

    def leave(self, group_id: str, leaving: Sequence[tuple[str, str | None]]) -> list[ErrorCode]:
        """Remove members given as (member id, group instance id); one code per member."""
        group = self.groups.get(group_id)
        if group is None or group.state is GroupState.DEAD:
            return [ErrorCode.unknown_member_id for _ in leaving]
        codes = []
        removed = False
        for member_id, instance_id in leaving:
            if instance_id is not None:
                member = group.member_by_instance(instance_id)
                if member is None:
                    codes.append(ErrorCode.unknown_member_id)
                elif member_id and member_id != member.member_id:
                    codes.append(ErrorCode.fenced_instance_id)
                else:
                    self._remove(group, member)
                    removed = True
                    codes.append(ErrorCode.none)
            elif member_id in group.pending_members:
                del group.pending_members[member_id]
                codes.append(ErrorCode.none)
            elif member_id in group.members:
                self._remove(group, group.members[member_id])
                removed = True
                codes.append(ErrorCode.none)
            else:
                codes.append(ErrorCode.unknown_member_id)
        if removed:
            self._after_removal(group, self.clock())
        return codes

    def _remove(self, group: Group, member: Member) -> None:
        group.members.pop(member.member_id, None)
        instance_id = member.group_instance_id
        if instance_id is not None and group.static_members.get(instance_id) == member.member_id:
            del group.static_members[instance_id]
        if member.awaiting_join:
            assert member.join_waiter is not None
            member.join_waiter.set_result(_fail_join(ErrorCode.unknown_member_id))
        if member.awaiting_sync:
            assert member.sync_waiter is not None
            member.sync_waiter.set_result(SyncResult(ErrorCode.unknown_member_id.value))
        member.join_waiter = member.sync_waiter = None

    def _after_removal(self, group: Group, now: int) -> None:
        if group.state in (GroupState.STABLE, GroupState.COMPLETING_REBALANCE):
            self._prepare_rebalance(group, now)
        self._maybe_complete_join(group, now)

    # -- timers ------------------------------------------------------------------------

    def tick(self) -> None:
        """Expire sessions, pending member ids and rebalance deadlines as of ``clock()``."""
        now = self.clock()
        for group in list(self.groups.values()):
            expired_pending = [m for m, t in group.pending_members.items() if t <= now]
            for member_id in expired_pending:
                del group.pending_members[member_id]
            removed = bool(expired_pending)
            for member in list(group.members.values()):
                if member.awaiting_join or member.awaiting_sync:
                    continue
                if member.last_heartbeat_ms + member.session_timeout_ms <= now:
                    self._remove(group, member)
                    removed = True
            if removed:
                self._after_removal(group, now)
            else:
                self._maybe_complete_join(group, now)

    def shutdown(self) -> None:
        """Answer every waiting JoinGroup/SyncGroup with NOT_COORDINATOR (broker stopping)."""
        for group in self.groups.values():
            for m in group.members.values():
                if m.awaiting_join:
                    assert m.join_waiter is not None
                    m.join_waiter.set_result(_fail_join(ErrorCode.not_coordinator))
                if m.awaiting_sync:
                    assert m.sync_waiter is not None
                    m.sync_waiter.set_result(SyncResult(ErrorCode.not_coordinator.value))
