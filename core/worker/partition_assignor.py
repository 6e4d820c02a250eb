"""Plugs :func:`core.assignor.assign` into the Kafka consumer group protocol (aiokafka).

aiokafka's assignors are classes with class methods, so each worker makes its own subclass
(:func:`make_assignor`) bound to its topology and its :class:`AssignorState`. Every member
sends its previous tasks and local state offsets in the subscription ``user_data``; the group
leader turns cluster metadata into the task list (task ``s_p`` owns partition ``p`` of every
source topic of sub-topology ``s``), runs the pure assignment, and gives each member the topic
partitions of its active tasks plus, in the assignment ``user_data``, its active and standby
task ids.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiokafka.coordinator.assignors.abstract import AbstractPartitionAssignor
from aiokafka.coordinator.protocol import (
    ConsumerProtocolMemberAssignment,
    ConsumerProtocolMemberMetadata,
)

from core.assignor import MemberState, TaskAssignment, assign

log = logging.getLogger("flows.worker")

ASSIGNOR_NAME = "flows"


@dataclass
class AssignorState:
    """Shared between a worker and its assignor class."""

    sources: Mapping[int, tuple[str, ...]]
    """Sub-topology id -> its source topics (global sub-topologies left out)."""
    num_standby: int
    member_state: Callable[[], MemberState]
    """What this member reports when it (re)joins: current tasks and local state offsets."""
    assignment: TaskAssignment = field(default_factory=TaskAssignment)
    generation: int = 0


def tasks_for(
    sources: Mapping[int, tuple[str, ...]], partitions: Callable[[str], Iterable[int] | None]
) -> dict[str, list[tuple[str, int]]]:
    """Task id -> the topic partitions it owns, from the partition counts in ``partitions``.

    >>> tasks_for({0: ("a", "b")}, {"a": {0, 1}, "b": {0}}.get)
    {'0_0': [('a', 0), ('b', 0)], '0_1': [('a', 1)]}
    """
    out: dict[str, list[tuple[str, int]]] = {}
    for sub, topics in sorted(sources.items()):
        counts = {t: sorted(partitions(t) or ()) for t in topics}
        n = max((len(c) for c in counts.values()), default=0)
        for p in range(n):
            tps = [(t, p) for t in topics if p in counts[t]]
            if tps:
                out[f"{sub}_{p}"] = tps
    return out


def make_assignor(state: AssignorState) -> type[AbstractPartitionAssignor]:
    """A fresh assignor class bound to ``state`` (see the module docstring)."""

    class FlowsAssignor(AbstractPartitionAssignor):
        name = ASSIGNOR_NAME
        version = 0

        @classmethod
        def metadata(cls, topics: Iterable[str]) -> ConsumerProtocolMemberMetadata:
            return ConsumerProtocolMemberMetadata(
                cls.version, sorted(topics), state.member_state().encode()
            )

        @classmethod
        def assign(
            cls, cluster: Any, members: Mapping[str, ConsumerProtocolMemberMetadata]
        ) -> dict[str, ConsumerProtocolMemberAssignment]:
            tasks = tasks_for(state.sources, cluster.partitions_for_topic)
            decoded = {m: MemberState.decode(meta.user_data) for m, meta in members.items()}
            plan = assign(tasks, decoded, num_standby=state.num_standby)
            out = {}
            for member, ta in plan.items():
                by_topic: dict[str, list[int]] = {}
                for task in ta.active:
                    for topic, p in tasks[task]:
                        by_topic.setdefault(topic, []).append(p)
                out[member] = ConsumerProtocolMemberAssignment(
                    cls.version, sorted(by_topic.items()), ta.encode()
                )
            log.info(
                "assigned %d tasks to %d members: %s",
                len(tasks),
                len(plan),
                "; ".join(f"{m}: {a.active} standby {a.standby}" for m, a in sorted(plan.items())),
            )
            return out

        @classmethod
        def on_assignment(cls, assignment: ConsumerProtocolMemberAssignment) -> None:
            state.assignment = TaskAssignment.decode(assignment.user_data)

        @classmethod
        def on_generation_assignment(cls, generation: int) -> None:
            state.generation = generation

    return FlowsAssignor
