"""The compiler: logical plan -> physical sub-topologies -> tasks.

A repartition step becomes a sink in one sub-topology and a source in another; the plan is cut
there, and each connected part (steps sharing a store stay together) is a sub-topology,
numbered in step order as in Kafka Streams. A sub-topology runs as one task per partition of
its source topics, task id ``"<subtopology>_<partition>"``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from core import describe as _describe
from core.errors import TopologyError
from core.plan import STATEFUL, Node, Plan, StoreSpec, TopicSpec
from core.validate import check_copartitioning, check_names, check_serdes

if TYPE_CHECKING:
    from core.collector import RecordCollector
    from core.task import Task
    from state.api import KeyValueStore


@dataclass(frozen=True)
class PhysNode:
    """A node of a sub-topology. ``role`` is the plan kind, or ``repartition_sink`` /
    ``repartition_source`` / ``global_source`` for the halves the compiler creates."""

    name: str
    role: str
    node: Node
    topic: TopicSpec | None
    parents: tuple[str, ...]
    children: tuple[str, ...]
    stores: tuple[str, ...]

    @property
    def kind(self) -> str:
        if self.role in ("source", "repartition_source", "global_source"):
            return "source"
        if self.role in ("sink", "repartition_sink"):
            return "sink"
        return "processor"


@dataclass(frozen=True)
class SubTopology:
    id: int
    nodes: tuple[PhysNode, ...]
    source_topics: tuple[str, ...]
    sink_topics: tuple[str, ...]
    stores: tuple[str, ...]
    partitions: int | None
    is_global: bool

    def node(self, name: str) -> PhysNode:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)


class Topology:
    """A compiled, validated topology: sub-topologies, stores, topics; makes tasks."""

    def __init__(
        self,
        plan: Plan,
        subtopologies: tuple[SubTopology, ...],
        topics: Mapping[str, TopicSpec],
    ) -> None:
        self.plan = plan
        self.app_id = plan.app_id
        self.subtopologies = subtopologies
        self.stores: dict[str, StoreSpec] = {s.name: s for s in plan.stores}
        self.topics = dict(topics)
        self.store_owner: dict[str, int] = {
            store: st.id for st in subtopologies for store in st.stores
        }

    def describe(self) -> str:
        """Text like Kafka Streams' ``Topology.describe()``."""
        return _describe.text(self)

    def to_dot(self) -> str:
        return _describe.dot(self)

    def to_mermaid(self) -> str:
        return _describe.mermaid(self)

    def subtopology(self, id: int) -> SubTopology:
        return self.subtopologies[id]

    def create_task(
        self,
        subtopology: int,
        partition: int,
        *,
        stores: Callable[[StoreSpec, str], KeyValueStore],
        collector: RecordCollector,
        global_stores: Mapping[str, Any] | None = None,
        wall_clock_ms: int = 0,
    ) -> Task:
        """Build the task ``<subtopology>_<partition>`` with its fused batch closures.

        ``stores(spec, task_id)`` opens the store ``spec`` for the task (in-memory, RocksDB...).
        """
        from core.task import Task

        if self.subtopologies[subtopology].is_global:
            raise TopologyError(
                f"sub-topology {subtopology} keeps global stores and has no tasks: "
                f"use core.task.GlobalTask for it"
            )
        task = Task(
            self,
            self.subtopologies[subtopology],
            partition,
            stores=stores,
            collector=collector,
            global_stores=global_stores or {},
            wall_clock_ms=wall_clock_ms,
        )
        if self.plan.crons:
            from core.cron import install

            first = min(s.id for s in self.subtopologies if not s.is_global)
            install(task, self.plan.crons, first)
        return task


def compile_plan(plan: Plan, topics: Mapping[str, TopicSpec]) -> Topology:
    """Validate ``plan`` and cut it into sub-topologies; raise :class:`TopologyError` if bad."""
    if not plan.nodes:
        raise TopologyError(
            f"app {plan.app_id!r} has no steps: read a topic with app.stream(...) and write "
            f"somewhere with .to(...)"
        )
    check_names(plan)
    check_serdes(plan)
    phys = _physical(plan)
    global_stores = {s for n in plan.nodes if n.kind == "global_table" for s in n.stores}
    groups = _components(phys, global_stores)
    subs = _number(groups, phys, global_stores)
    return Topology(plan, _resolve_partitions(subs, phys, topics), topics)


def _physical(plan: Plan) -> dict[str, dict[str, Any]]:
    phys: dict[str, dict[str, Any]] = {}
    attach: dict[str, str] = {}

    def add(name: str, role: str, node: Node, parents: list[str], topic: TopicSpec | None) -> None:
        phys[name] = {
            "role": role,
            "node": node,
            "topic": topic,
            "parents": parents,
            "children": [],
            "stores": node.stores if role not in ("repartition_sink", "repartition_source") else (),
            "order": len(phys),
        }
        for p in parents:
            phys[p]["children"].append(name)

    for n in plan.nodes:
        parents = [attach[p] for p in n.parents]
        if n.kind == "repartition":
            add(f"{n.name}-sink", "repartition_sink", n, parents, n.topic)
            add(f"{n.name}-source", "repartition_source", n, [], n.topic)
            attach[n.name] = f"{n.name}-source"
        elif n.kind == "global_table":
            add(f"{n.name}-source", "global_source", n, [], n.topic)
            add(n.name, "global_table", n, [f"{n.name}-source"], None)
            attach[n.name] = n.name
        else:
            add(n.name, n.kind, n, parents, n.topic)
            attach[n.name] = n.name
    return phys


def _components(phys: dict[str, dict[str, Any]], global_stores: set[str]) -> list[list[str]]:
    parent = {name: name for name in phys}

    def find(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(a: str, b: str) -> None:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[rb] = ra

    by_store: dict[str, str] = {}
    for name, info in phys.items():
        for p in info["parents"]:
            union(p, name)
        for store in info["stores"]:
            if store in global_stores and info["role"] != "global_table":
                continue
            if store in by_store:
                union(by_store[store], name)
            else:
                by_store[store] = name
    groups: dict[str, list[str]] = {}
    for name in phys:
        groups.setdefault(find(name), []).append(name)
    return list(groups.values())


def _number(
    groups: list[list[str]], phys: dict[str, dict[str, Any]], global_stores: set[str]
) -> list[SubTopology]:
    def is_global(g: list[str]) -> bool:
        return any(phys[n]["role"] == "global_table" for n in g)

    ordered = sorted(groups, key=lambda g: (is_global(g), min(phys[n]["order"] for n in g)))
    subs = []
    for i, group in enumerate(ordered):
        names = sorted(group, key=lambda n: phys[n]["order"])
        nodes = tuple(
            PhysNode(
                n,
                phys[n]["role"],
                phys[n]["node"],
                phys[n]["topic"],
                tuple(phys[n]["parents"]),
                tuple(phys[n]["children"]),
                tuple(phys[n]["stores"]),
            )
            for n in names
        )
        sources = tuple(n.topic.name for n in nodes if n.kind == "source" and n.topic)
        sinks = tuple(dict.fromkeys(n.topic.name for n in nodes if n.kind == "sink" and n.topic))
        own_stores = tuple(
            dict.fromkeys(
                s
                for n in nodes
                for s in n.stores
                if s not in global_stores or n.role == "global_table"
            )
        )
        subs.append(SubTopology(i, nodes, sources, sinks, own_stores, None, is_global(group)))
    return subs


def _resolve_partitions(
    subs: list[SubTopology], phys: dict[str, dict[str, Any]], topics: Mapping[str, TopicSpec]
) -> tuple[SubTopology, ...]:
    """Give each sub-topology its task count; check co-partitioning of stateful ones."""
    known: dict[str, int | None] = {}
    for sub in subs:
        for node in sub.nodes:
            if node.kind == "source" and node.topic is not None:
                known[node.topic.name] = node.topic.partitions
    writer = {
        n.topic.name: sub
        for sub in subs
        for n in sub.nodes
        if n.role == "repartition_sink" and n.topic is not None
    }
    result: dict[int, int | None] = {}

    def partitions_of(sub: SubTopology, depth: int = 0) -> int | None:
        if sub.id in result:
            return result[sub.id]
        counts = []
        for topic in sub.source_topics:
            n = known.get(topic)
            if n is None and topic in writer and depth < len(subs):
                n = partitions_of(writer[topic], depth + 1)
                known[topic] = n
            if n is not None:
                counts.append(n)
        result[sub.id] = max(counts) if counts else None
        return result[sub.id]

    out = []
    for sub in subs:
        n = partitions_of(sub)
        # Steps with task-local state need every key of a partition in one task; a processor
        # that only reads global stores does not.
        stateful = [
            node.name
            for node in sub.nodes
            if node.role in STATEFUL and any(s in sub.stores for s in node.stores)
        ]
        if stateful and not sub.is_global:
            declared = {
                node.topic.name: node.topic
                for node in sub.nodes
                if node.kind == "source" and node.topic is not None
            }
            joins = [
                node.name
                for node in sub.nodes
                if "join" in node.role or node.role.startswith("fk_")
            ]
            check_copartitioning(
                joins[0] if joins else stateful[0], declared, known, join=bool(joins)
            )
        out.append(
            SubTopology(
                sub.id, sub.nodes, sub.source_topics, sub.sink_topics, sub.stores, n, sub.is_global
            )
        )
    return tuple(out)


def observation_keys(
    sub: SubTopology,
) -> tuple[dict[str, frozenset[str]], dict[str, frozenset[str]]]:
    """Per step: the places where the order of records can be observed, its own and downstream.

    A place is a sink topic (``topic:<name>``), a task-local store (``store:<name>``) or a step
    fed by several parents (``step:<name>``). Where two paths leaving a fan-out reach the same
    place, the runtime must hand records to them in Kafka Streams' depth-first order; elsewhere
    it may run a whole batch through one step before the next (see :mod:`core.fusion`).
    Returns ``(own, reach)``: ``reach[step]`` is ``own[step]`` plus everything downstream.
    """
    local = set(sub.stores)
    by_name = {n.name: n for n in sub.nodes}
    own: dict[str, frozenset[str]] = {}
    for n in sub.nodes:
        keys = {f"store:{s}" for s in n.stores if s in local}
        if n.kind == "sink" and n.topic is not None:
            keys.add(f"topic:{n.topic.name}")
        if len(n.parents) > 1:
            keys.add(f"step:{n.name}")
        own[n.name] = frozenset(keys)
    reach: dict[str, frozenset[str]] = {}
    for start in by_name:
        stack = [start]
        while stack:  # post-order without recursion: long chains stay within the stack limit
            name = stack[-1]
            if name in reach:
                stack.pop()
                continue
            todo = [c for c in by_name[name].children if c not in reach and c in by_name]
            if todo:
                stack.extend(todo)
                continue
            stack.pop()
            acc = set(own[name])
            for c in by_name[name].children:
                acc |= reach.get(c, frozenset())
            reach[name] = frozenset(acc)
    return own, reach
