"""The group coordinator: membership, committed offsets and their persistence, one node.

:class:`GroupCoordinator` is what the handlers reach as ``ctx.node.groups``. Membership
transitions live in :mod:`broker.group.membership`; this class adds committed offsets
(OffsetCommit/OffsetFetch), the admin views (DescribeGroups, ListGroups, DeleteGroups),
writing everything to ``__consumer_offsets`` and reading it back at start, offset expiry
(``offsets.retention.minutes``) and the timer task that drives session and rebalance
timeouts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from kio.schema.errors import ErrorCode

from broker.errors import KafkaError
from broker.group.membership import JoinRequest, Membership, MembershipSettings
from broker.group.offsets import OFFSETS_TOPIC, OffsetStore, group_key, group_value, offset_key
from broker.group.offsets import offset_value as encode_offset_value
from broker.group.state import Group, GroupState, JoinResult, OffsetEntry, SyncResult
from broker.log.interface import LogManager

__all__ = ["CommitRequest", "GroupCoordinator", "GroupSummary"]

log = logging.getLogger(__name__)

TICK_INTERVAL_S = 0.1


def _wall_ms() -> int:
    return int(time.time() * 1000)


class _Config(Protocol):
    """The slice of BrokerConfig the coordinator reads (``get_int(name, default)``)."""

    def get_int(self, name: str, default: int | None = None) -> int: ...


@dataclass(frozen=True, slots=True)
class CommitRequest:
    group_id: str
    generation_id: int
    member_id: str
    group_instance_id: str | None
    offsets: Mapping[tuple[str, int], tuple[int, int, str | None]]
    """(topic, partition) -> (offset, leader epoch, metadata)."""


@dataclass(frozen=True, slots=True)
class GroupSummary:
    """What DescribeGroups reports for one group."""

    group_id: str
    state: str
    protocol_type: str
    protocol_name: str
    members: list[tuple[str, str | None, str, str, bytes, bytes]]
    """(member id, instance id, client id, client host, metadata, assignment)."""


class GroupCoordinator:
    """All consumer groups of this node; see the module docstring."""

    def __init__(
        self, logs: LogManager, config: _Config, *, clock: Callable[[], int] | None = None
    ) -> None:
        self.logs = logs
        self.clock = clock or _wall_ms
        self.groups: dict[str, Group] = {}
        settings = MembershipSettings(
            initial_rebalance_delay_ms=config.get_int("group.initial.rebalance.delay.ms", 3000),
            min_session_timeout_ms=config.get_int("group.min.session.timeout.ms", 6000),
            max_session_timeout_ms=config.get_int("group.max.session.timeout.ms", 1800000),
        )
        self.membership = Membership(self.groups, settings, self.clock, self._persist_group)
        self.retention_ms = config.get_int("offsets.retention.minutes", 10080) * 60_000
        self.retention_check_ms = config.get_int("offsets.retention.check.interval.ms", 600000)
        self.metadata_max_bytes = config.get_int("offset.metadata.max.bytes", 4096)
        topic_configs = {
            "cleanup.policy": "compact",
            "segment.bytes": str(config.get_int("offsets.topic.segment.bytes", 104857600)),
            "compression.type": "producer",
        }
        self.store = OffsetStore(
            logs, max(1, config.get_int("offsets.topic.num.partitions", 50)), topic_configs
        )
        self._task: asyncio.Task[None] | None = None
        self._next_expiry_ms = 0
        self.ready = False

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        """Create ``__consumer_offsets`` if missing, load groups and offsets, start timers."""
        self.store.ensure_topic()
        self.groups.update(self.store.load(self.clock()))
        self._next_expiry_ms = self.clock() + self.retention_check_ms
        self.ready = True
        self._task = asyncio.create_task(self._run(), name="group-coordinator-timers")

    async def stop(self) -> None:
        self.ready = False
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self.membership.shutdown()
        with contextlib.suppress(KafkaError):
            self.store.flush()

    async def close(self) -> None:
        """The node's shutdown hook: the same as :meth:`stop`."""
        await self.stop()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(TICK_INTERVAL_S)
            try:
                self.tick()
            except Exception:  # our bug: log it, keep the timers alive
                log.exception("group coordinator timer failed")

    def tick(self) -> None:
        """Timeouts as of ``clock()``; also runs offset expiry when it is due."""
        self.membership.tick()
        now = self.clock()
        if now >= self._next_expiry_ms:
            self._next_expiry_ms = now + self.retention_check_ms
            self.expire_offsets()

    def _check_ready(self) -> None:
        if not self.ready:
            raise KafkaError(ErrorCode.coordinator_load_in_progress, "group coordinator starting")

    # -- membership (thin async wrappers) ----------------------------------------------

    async def join_group(self, req: JoinRequest) -> JoinResult:
        self._check_ready()
        result = self.membership.join(req)
        return await result if isinstance(result, asyncio.Future) else result

    async def sync_group(
        self,
        group_id: str,
        generation_id: int,
        member_id: str,
        instance_id: str | None,
        assignments: dict[str, bytes],
        protocol_type: str | None = None,
        protocol_name: str | None = None,
    ) -> SyncResult:
        self._check_ready()
        result = self.membership.sync(
            group_id,
            generation_id,
            member_id,
            instance_id,
            assignments,
            protocol_type,
            protocol_name,
        )
        return await result if isinstance(result, asyncio.Future) else result

    def heartbeat(
        self, group_id: str, generation_id: int, member_id: str, instance_id: str | None
    ) -> ErrorCode:
        self._check_ready()
        return self.membership.heartbeat(group_id, generation_id, member_id, instance_id)

    def leave_group(
        self, group_id: str, leaving: Sequence[tuple[str, str | None]]
    ) -> list[ErrorCode]:
        self._check_ready()
        return self.membership.leave(group_id, leaving)

    # -- committed offsets -------------------------------------------------------------

    def commit_offsets(self, req: CommitRequest) -> dict[tuple[str, int], ErrorCode]:
        """Store offsets; one error code per partition (all the same for a group error)."""
        self._check_ready()
        code = self._check_commit(req)
        if code is not ErrorCode.none:
            return dict.fromkeys(req.offsets, code)
        now = self.clock()
        topics = self.logs.topics()
        result: dict[tuple[str, int], ErrorCode] = {}
        accepted: dict[tuple[str, int], OffsetEntry] = {}
        for (topic, partition), (offset, epoch, metadata) in req.offsets.items():
            info = topics.get(topic)
            if info is None or not 0 <= partition < info.partitions:
                result[(topic, partition)] = ErrorCode.unknown_topic_or_partition
            elif metadata is not None and len(metadata.encode()) > self.metadata_max_bytes:
                result[(topic, partition)] = ErrorCode.offset_metadata_too_large
            else:
                accepted[(topic, partition)] = OffsetEntry(offset, epoch, metadata or "", now)
                result[(topic, partition)] = ErrorCode.none
        if accepted:
            group = self.groups.get(req.group_id)
            if group is None:
                group = self.groups[req.group_id] = Group(req.group_id, state_timestamp_ms=now)
            records = [
                (offset_key(req.group_id, t, p), encode_offset_value(e))
                for (t, p), e in accepted.items()
            ]
            self.store.append(req.group_id, records, now)
            group.offsets.update(accepted)
        return result

    def check_txn_commit(
        self, group_id: str, generation_id: int, member_id: str, instance_id: str | None
    ) -> ErrorCode:
        """TxnOffsetCommit's member check (v3+ carries generation and member like a commit)."""
        self._check_ready()
        return self._check_commit(
            CommitRequest(group_id, generation_id, member_id, instance_id, {})
        )

    def materialize_txn_offsets(
        self, group_id: str, offsets: Mapping[tuple[str, int], tuple[int, int, str]]
    ) -> None:
        """Store offsets of a committed transaction (checked at TxnOffsetCommit time)."""
        now = self.clock()
        accepted = {tp: OffsetEntry(o, e, m, now) for tp, (o, e, m) in offsets.items()}
        group = self.groups.get(group_id)
        if group is None:
            group = self.groups[group_id] = Group(group_id, state_timestamp_ms=now)
        records = [
            (offset_key(group_id, t, p), encode_offset_value(e)) for (t, p), e in accepted.items()
        ]
        self.store.append(group_id, records, now)
        group.offsets.update(accepted)

    def _check_commit(self, req: CommitRequest) -> ErrorCode:
        if not req.group_id:
            return ErrorCode.invalid_group_id
        group = self.groups.get(req.group_id)
        if req.generation_id < 0 and not req.member_id:
            # A commit from outside the group protocol (admin tool or assign() consumer).
            if group is not None and group.members:
                return ErrorCode.unknown_member_id
            return ErrorCode.none
        if group is None or group.state is GroupState.DEAD:
            return ErrorCode.illegal_generation
        if req.group_instance_id is not None:
            current = group.static_members.get(req.group_instance_id)
            if current is not None and current != req.member_id:
                return ErrorCode.fenced_instance_id
        if group.state is GroupState.COMPLETING_REBALANCE:
            return ErrorCode.rebalance_in_progress
        member = group.members.get(req.member_id)
        if member is None:
            return ErrorCode.unknown_member_id
        if req.generation_id != group.generation_id:
            return ErrorCode.illegal_generation
        member.last_heartbeat_ms = self.clock()
        return ErrorCode.none

    def fetch_offsets(
        self, group_id: str, partitions: Iterable[tuple[str, int]] | None
    ) -> list[tuple[str, int, OffsetEntry | None]]:
        """Committed offsets of ``partitions`` (None: every partition with one)."""
        self._check_ready()
        group = self.groups.get(group_id)
        stored = group.offsets if group is not None else {}
        if partitions is None:
            return [(t, p, e) for (t, p), e in sorted(stored.items())]
        return [(t, p, stored.get((t, p))) for t, p in partitions]

    def expire_offsets(self) -> int:
        """Drop offsets older than ``offsets.retention.minutes`` of groups with no members.

        Like Kafka: the clock of a group that uses the group protocol starts when it became
        Empty; offsets committed from outside any group expire by their commit time. An
        empty group left without offsets is deleted. Returns how many offsets expired.
        """
        now = self.clock()
        expired_total = 0
        for group in list(self.groups.values()):
            if group.members or group.state is not GroupState.EMPTY:
                continue
            if group.protocol_type:
                emptied_long_ago = group.state_timestamp_ms + self.retention_ms <= now
                expired = list(group.offsets) if emptied_long_ago else []
            else:
                expired = [
                    tp
                    for tp, e in group.offsets.items()
                    if e.commit_timestamp_ms + self.retention_ms <= now
                ]
            records: list[tuple[bytes, bytes | None]] = [
                (offset_key(group.group_id, t, p), None) for t, p in expired
            ]
            for tp in expired:
                del group.offsets[tp]
            expired_total += len(expired)
            if not group.offsets and not group.pending_members:
                # Like Kafka: an empty group with no offsets left is forgotten.
                records.append((group_key(group.group_id), None))
                group.transition(GroupState.DEAD, now)
                del self.groups[group.group_id]
            self.store.append(group.group_id, records, now)
        return expired_total

    # -- admin views -------------------------------------------------------------------

    def describe(self, group_id: str) -> GroupSummary:
        self._check_ready()
        group = self.groups.get(group_id)
        if group is None or group.state is GroupState.DEAD:
            return GroupSummary(group_id, GroupState.DEAD.value, "", "", [])
        stable = group.state is GroupState.STABLE
        members = [
            (
                m.member_id,
                m.group_instance_id,
                m.client_id,
                m.client_host,
                m.metadata_for(group.protocol_name or "") if stable else b"",
                m.assignment if stable else b"",
            )
            for m in group.members.values()
        ]
        return GroupSummary(
            group_id,
            group.state.value,
            group.protocol_type or "",
            group.protocol_name or "",
            members,
        )

    def list_groups(self, states: Iterable[str] = ()) -> list[tuple[str, str, str]]:
        """(group id, protocol type, state) of every group, optionally filtered by state."""
        self._check_ready()
        wanted = {s.lower() for s in states}
        return [
            (g.group_id, g.protocol_type or "", g.state.value)
            for g in self.groups.values()
            if g.state is not GroupState.DEAD and (not wanted or g.state.value.lower() in wanted)
        ]

    def delete_group(self, group_id: str) -> ErrorCode:
        """DeleteGroups for one group: only an empty group goes; its offsets go with it."""
        self._check_ready()
        if not group_id:
            return ErrorCode.invalid_group_id
        group = self.groups.get(group_id)
        if group is None or group.state is GroupState.DEAD:
            return ErrorCode.group_id_not_found
        if group.members or group.state is not GroupState.EMPTY:
            return ErrorCode.non_empty_group
        now = self.clock()
        records: list[tuple[bytes, bytes | None]] = [
            (offset_key(group_id, t, p), None) for t, p in group.offsets
        ]
        records.append((group_key(group_id), None))
        self.store.append(group_id, records, now)
        group.transition(GroupState.DEAD, now)
        del self.groups[group_id]
        return ErrorCode.none

    # -- persistence -------------------------------------------------------------------

    def _persist_group(self, group: Group) -> None:
        try:
            self.store.append(
                group.group_id, [(group_key(group.group_id), group_value(group))], self.clock()
            )
        except KafkaError:
            log.exception("cannot persist group %s to %s", group.group_id, OFFSETS_TOPIC)
