"""The data of one consumer group: members, generation, chosen protocol, committed offsets.

Plain dataclasses with no I/O, so the coordinator's transitions are easy to test and the
offsets store can serialise them. Names and states follow Kafka's classic group protocol
(the states are the strings DescribeGroups and ListGroups report).
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Iterable
from dataclasses import dataclass, field

__all__ = ["Group", "GroupState", "JoinResult", "Member", "OffsetEntry", "SyncResult"]


class GroupState(enum.Enum):
    EMPTY = "Empty"
    PREPARING_REBALANCE = "PreparingRebalance"
    COMPLETING_REBALANCE = "CompletingRebalance"
    STABLE = "Stable"
    DEAD = "Dead"


@dataclass(slots=True)
class JoinResult:
    """What a JoinGroup call answers (error code 0 on success)."""

    error_code: int
    generation_id: int = -1
    protocol_type: str | None = None
    protocol_name: str | None = None
    leader: str = ""
    member_id: str = ""
    members: list[tuple[str, str | None, bytes]] = field(default_factory=list)
    """(member id, group instance id, metadata of the chosen protocol); only for the leader."""
    skip_assignment: bool = False
    """A static leader came back to a stable group: it must not compute a new assignment."""


@dataclass(slots=True)
class SyncResult:
    error_code: int
    protocol_type: str | None = None
    protocol_name: str | None = None
    assignment: bytes = b""


@dataclass(slots=True)
class Member:
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    session_timeout_ms: int
    rebalance_timeout_ms: int
    protocol_type: str
    protocols: list[tuple[str, bytes]]
    """(name, metadata) in the member's order of preference; metadata is opaque."""
    assignment: bytes = b""
    last_heartbeat_ms: int = 0
    join_waiter: asyncio.Future[JoinResult] | None = None
    sync_waiter: asyncio.Future[SyncResult] | None = None

    @property
    def awaiting_join(self) -> bool:
        return self.join_waiter is not None and not self.join_waiter.done()

    @property
    def awaiting_sync(self) -> bool:
        return self.sync_waiter is not None and not self.sync_waiter.done()

    def protocol_names(self) -> list[str]:
        return [name for name, _ in self.protocols]

    def metadata_for(self, protocol: str) -> bytes:
        for name, metadata in self.protocols:
            if name == protocol:
                return metadata
        return b""


@dataclass(slots=True)
class OffsetEntry:
    offset: int
    leader_epoch: int
    metadata: str
    commit_timestamp_ms: int


@dataclass(slots=True)
class Group:
    group_id: str
    state: GroupState = GroupState.EMPTY
    generation_id: int = 0
    protocol_type: str | None = None
    protocol_name: str | None = None
    leader_id: str | None = None
    members: dict[str, Member] = field(default_factory=dict)
    static_members: dict[str, str] = field(default_factory=dict)
    """group.instance.id -> member id of its current incarnation."""
    pending_members: dict[str, int] = field(default_factory=dict)
    """Member ids handed out with MEMBER_ID_REQUIRED -> deadline (ms) to rejoin with them."""
    offsets: dict[tuple[str, int], OffsetEntry] = field(default_factory=dict)
    state_timestamp_ms: int = 0
    """When the group last changed state (offset expiry counts from becoming Empty)."""
    rebalance_deadline_ms: int = 0
    initial_delay_until_ms: int = 0
    """While the first rebalance of an empty group is being delayed: when the delay ends."""
    initial_delay_limit_ms: int = 0

    def is_empty(self) -> bool:
        return not self.members

    def transition(self, state: GroupState, now_ms: int) -> None:
        self.state = state
        self.state_timestamp_ms = now_ms

    def all_joined(self) -> bool:
        return not self.pending_members and all(m.awaiting_join for m in self.members.values())

    def supports(self, protocol_type: str, names: Iterable[str]) -> bool:
        """Would a member with this protocol type and these protocols fit the group?"""
        if not self.members:
            return bool(protocol_type) and any(True for _ in names)
        if protocol_type != self.protocol_type:
            return False
        return bool(self.candidate_protocols() & set(names))

    def candidate_protocols(self) -> set[str]:
        sets = [set(m.protocol_names()) for m in self.members.values()]
        return set.intersection(*sets) if sets else set()

    def select_protocol(self) -> str | None:
        """The protocol every member supports that most members prefer (Kafka's vote)."""
        candidates = self.candidate_protocols()
        if not candidates:
            return None
        votes: dict[str, int] = {}
        for member in self.members.values():
            vote = next(n for n in member.protocol_names() if n in candidates)
            votes[vote] = votes.get(vote, 0) + 1
        first = next(iter(self.members.values())).protocol_names()
        # Ties go to the order of preference of the longest-standing member.
        return max(candidates, key=lambda n: (votes.get(n, 0), -_index(first, n)))

    def member_by_instance(self, instance_id: str) -> Member | None:
        member_id = self.static_members.get(instance_id)
        return self.members.get(member_id) if member_id is not None else None


def _index(names: list[str], name: str) -> int:
    try:
        return names.index(name)
    except ValueError:
        return len(names)
