"""Task assignment for a group of workers: pure functions, no Kafka client in sight.

A *task* is ``"<subtopology>_<partition>"``; it owns partition ``p`` of every source topic of
its sub-topology (co-partitioning), so the assignor places tasks, and topic partitions follow.
The rules, in the spirit of Kafka Streams' sticky task assignor:

1. balance: no member gets more than ``ceil(tasks / members)`` active tasks;
2. stickiness: a task stays with the member that ran it before, if that member is still here;
3. local state: otherwise it goes to the member whose local state for the task is freshest
   (highest changelog offset sum, from its checkpoints), so only a tail must be restored;
4. otherwise to the least loaded member (ties broken by member id, so the result is stable).

Standby replicas (``num_standby``) go to *other* members, again preferring those that already
hold state for the task, then the least loaded.

>>> members = {"a": MemberState(active=("0_0", "0_1")), "b": MemberState()}
>>> result = assign(["0_0", "0_1", "0_2", "0_3"], members, num_standby=1)
>>> result["a"].active, result["b"].active
(['0_0', '0_1'], ['0_2', '0_3'])
>>> result["a"].standby, result["b"].standby
(['0_2', '0_3'], ['0_0', '0_1'])
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

_VERSION = 1


@dataclass(frozen=True)
class MemberState:
    """What a member reports when it joins: its previous tasks and its local state."""

    active: tuple[str, ...] = ()
    standby: tuple[str, ...] = ()
    local: Mapping[str, int] = field(default_factory=dict)
    """Task id -> sum of the changelog offsets its local stores reflect."""

    def encode(self) -> bytes:
        """The subscription ``user_data`` bytes.

        >>> MemberState.decode(MemberState(("0_1",), (), {"0_1": 7}).encode()).local
        {'0_1': 7}
        """
        doc = {
            "v": _VERSION,
            "active": list(self.active),
            "standby": list(self.standby),
            "local": dict(self.local),
        }
        return json.dumps(doc, sort_keys=True).encode()

    @classmethod
    def decode(cls, data: bytes | None) -> MemberState:
        """Parse ``user_data``; anything unreadable (another client, an old version) is empty."""
        if not data:
            return cls()
        try:
            doc = json.loads(data)
            if not isinstance(doc, dict) or doc.get("v") != _VERSION:
                return cls()
            local = {str(k): int(v) for k, v in dict(doc.get("local") or {}).items()}
            return cls(
                tuple(str(t) for t in doc.get("active") or ()),
                tuple(str(t) for t in doc.get("standby") or ()),
                local,
            )
        except (ValueError, TypeError, AttributeError):
            return cls()


@dataclass
class TaskAssignment:
    """The tasks one member runs (``active``) and keeps warm (``standby``)."""

    active: list[str] = field(default_factory=list)
    standby: list[str] = field(default_factory=list)

    def encode(self) -> bytes:
        """The assignment ``user_data`` bytes.

        >>> TaskAssignment.decode(TaskAssignment(["0_0"], ["0_1"]).encode())
        TaskAssignment(active=['0_0'], standby=['0_1'])
        """
        return json.dumps({"v": _VERSION, "active": self.active, "standby": self.standby}).encode()

    @classmethod
    def decode(cls, data: bytes | None) -> TaskAssignment:
        if not data:
            return cls()
        try:
            doc = json.loads(data)
            return cls(
                [str(t) for t in doc.get("active") or ()],
                [str(t) for t in doc.get("standby") or ()],
            )
        except (ValueError, TypeError, AttributeError):
            return cls()


def task_sort_key(task: str) -> tuple[int, int]:
    """Order ``"<sub>_<partition>"`` ids numerically (``"0_10"`` after ``"0_9"``).

    >>> sorted(["0_10", "1_0", "0_9"], key=task_sort_key)
    ['0_9', '0_10', '1_0']
    """
    sub, _, part = task.partition("_")
    try:
        return int(sub), int(part)
    except ValueError:
        return (1 << 30, 0)


def assign(
    tasks: Iterable[str], members: Mapping[str, MemberState], *, num_standby: int = 0
) -> dict[str, TaskAssignment]:
    """Place every task on exactly one member, plus up to ``num_standby`` standbys each.

    See the module docstring for the rules. With no members the result is empty.
    """
    if num_standby < 0:
        raise ValueError(f"num_standby must be >= 0, got {num_standby}")
    ids = sorted(members)
    result = {m: TaskAssignment() for m in ids}
    if not ids:
        return result
    ordered = sorted(set(tasks), key=task_sort_key)
    capacity = math.ceil(len(ordered) / len(ids)) if ordered else 0
    owner: dict[str, str] = {}

    def load(m: str) -> int:
        return len(result[m].active)

    def give(task: str, m: str) -> None:
        owner[task] = m
        result[m].active.append(task)

    # 1. sticky: previous owner keeps the task while under capacity
    previous = {t: m for m in ids for t in members[m].active}
    for task in ordered:
        m = previous.get(task)
        if m is not None and load(m) < capacity:
            give(task, m)
    # 2. freshest local state (a previous standby, or a member that ran it long ago)
    for task in ordered:
        if task in owner:
            continue
        holders = [m for m in ids if task in members[m].local and load(m) < capacity]
        if holders:
            best = max(holders, key=lambda m: (members[m].local[task], -load(m), _neg(m)))
            give(task, best)
    # 3. least loaded
    for task in ordered:
        if task not in owner:
            give(task, min(ids, key=lambda m: (load(m), m)))
    # standbys on other members: local state first, then the least loaded
    if num_standby:
        for task in ordered:
            for _ in range(num_standby):
                candidates = [m for m in ids if m != owner[task] and task not in result[m].standby]
                if not candidates:
                    break
                best = min(
                    candidates,
                    key=lambda m: (
                        task not in members[m].local and task not in members[m].standby,
                        len(result[m].active) + len(result[m].standby),
                        m,
                    ),
                )
                result[best].standby.append(task)
    for m in ids:
        result[m].active.sort(key=task_sort_key)
        result[m].standby.sort(key=task_sort_key)
    return result


def _neg(member: str) -> tuple[int, ...]:
    """Reverse order of a member id, so ``max`` breaks ties toward the smallest id."""
    return tuple(-ord(c) for c in member)
