"""The logical plan: immutable step nodes built by the DSL, read by the validator and compiler.

A node says *what* a step does (its kind, user functions, topic, stores) and which steps feed
it; it knows nothing about tasks or batches. The DSL handles (``flows.Stream`` ...) append nodes
through a :class:`PlanBuilder`; :meth:`PlanBuilder.freeze` returns a :class:`Plan` that the
compiler turns into sub-topologies.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from core.naming import Namer, changelog_topic, check_name


class Serde(Protocol):
    """Turns Python objects into bytes and back; ``identity`` marks the no-op bytes serde."""

    name: str
    identity: bool

    def encode(self, obj: Any) -> bytes: ...

    def decode(self, data: bytes) -> Any: ...


@dataclass(frozen=True)
class TopicSpec:
    """A topic as declared with ``app.topic``, or an internal (repartition) topic."""

    name: str
    key_serde: Serde | None
    value_serde: Serde | None
    partitions: int | None = None
    internal: bool = False
    timestamp_extractor: Callable[..., Any] | None = None
    """``fn(value)`` or ``fn(key, value, record_timestamp)`` -> event time in ms."""


@dataclass(frozen=True)
class StoreSpec:
    """A key-value store owned by a step; ``changelog`` is its compacted topic."""

    name: str
    key_serde: Serde | None
    value_serde: Serde | None
    changelog: str
    step: str
    hint: str = ""
    """How to give the missing serdes (used in error messages)."""
    kind: str = "kv"
    """``kv``, ``window`` (per key and window start) or ``session`` (per key, start and end)."""
    retention_ms: int = 0
    """For window and session stores: how long (stream time) entries are kept."""


@dataclass(frozen=True)
class Node:
    """One step. ``fn``/``fn2`` are the user functions; ``params`` holds kind-specific extras."""

    name: str
    kind: str
    parents: tuple[str, ...] = ()
    fn: Callable[..., Any] | None = None
    fn2: Callable[..., Any] | None = None
    topic: TopicSpec | None = None
    stores: tuple[str, ...] = ()
    params: tuple[tuple[str, Any], ...] = ()

    def param(self, key: str, default: Any = None) -> Any:
        for k, v in self.params:
            if k == key:
                return v
        return default


STATELESS = frozenset(
    {
        "filter",
        "filter_not",
        "map",
        "map_values",
        "flat_map",
        "flat_map_values",
        "select_key",
        "peek",
        "foreach",
        "branch",
        "merge",
        "table_filter",
        "table_filter_not",
        "table_map_values",
        "to_stream",
    }
)
"""Kinds that hold no state and can be fused into one generated loop."""

STATEFUL = frozenset(
    {
        "aggregate",
        "table_source",
        "table_materialize",
        "process",
        "global_table",
        "window_aggregate",
        "sliding_aggregate",
        "session_aggregate",
        "suppress",
        "stream_table_join",
        "stream_join",
        "table_join",
        "fk_subscribe",
        "fk_right",
        "fk_resolve",
    }
)


@dataclass(frozen=True)
class Plan:
    """A frozen snapshot of an app's steps, in creation order."""

    app_id: str
    nodes: tuple[Node, ...]
    stores: tuple[StoreSpec, ...]
    crons: tuple[Any, ...] = ()
    """Cron jobs (``core.cron.CronJob``), run by tasks on their wall clock."""

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)


class PlanBuilder:
    """Accumulates nodes as DSL calls are made; never mutates a node once added."""

    def __init__(self, app_id: str) -> None:
        check_name(app_id, what="app id")
        self.app_id = app_id
        self.namer = Namer()
        self.nodes: list[Node] = []
        self.stores: list[StoreSpec] = []
        self.crons: list[Any] = []
        self.version = 0

    def add(
        self,
        kind: str,
        parents: tuple[str, ...],
        name: str | None = None,
        **fields: Any,
    ) -> Node:
        node = Node(name=self.namer.name(kind, name), kind=kind, parents=parents, **fields)
        self.nodes.append(node)
        self.version += 1
        return node

    def add_store(
        self,
        name: str,
        key_serde: Serde | None,
        value_serde: Serde | None,
        *,
        step: str,
        hint: str = "",
        kind: str = "kv",
        retention_ms: int = 0,
    ) -> StoreSpec:
        check_name(name, what="store")
        spec = StoreSpec(
            name,
            key_serde,
            value_serde,
            changelog_topic(self.app_id, name),
            step,
            hint,
            kind,
            retention_ms,
        )
        self.stores.append(spec)
        self.version += 1
        return spec

    def freeze(self) -> Plan:
        return Plan(self.app_id, tuple(self.nodes), tuple(self.stores), tuple(self.crons))
