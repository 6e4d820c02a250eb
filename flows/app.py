"""``App``: the entry point of a flow module, owning its topics, steps and compiled topology.

>>> import flows
>>> app = flows.App("wordcount")
>>> lines = app.topic("lines", value_serde="str")
>>> app.stream(lines).to(app.topic("copy", value_serde="str"))
>>> print(app.topology.describe())  # doctest: +NORMALIZE_WHITESPACE
Topologies:
   Sub-topology: 0
    Source: KSTREAM-SOURCE-0000000000 (topics: [lines])
      --> KSTREAM-SINK-0000000001
    Sink: KSTREAM-SINK-0000000001 (topic: copy)
      <-- KSTREAM-SOURCE-0000000000
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable
from typing import Any

from core.compiler import Topology, compile_plan
from core.errors import TopologyError
from core.naming import check_name
from core.plan import Node, PlanBuilder, Serde, StoreSpec, TopicSpec
from flows.serdes import BYTES, optional_serde, resolve_serde
from flows.stream import Stream
from flows.table import GlobalTable, Table
from flows.time import cron_decorator, extractor


class App:
    """A stream-processing application: its id is the consumer group and the topic prefix.

    ``default_serde`` is used for internal topics and stores whose types the DSL cannot know
    (after ``map``, ``group_by``...), like Kafka's ``default.key.serde``; ``None`` makes a missing
    serde a build error instead.

    ``on_deserialization_error`` / ``on_processing_error`` / ``on_production_error`` choose what
    a worker does with a record that fails: ``"fail"`` (default), ``"log_and_skip"`` or
    ``"dead_letter"`` (to ``dead_letter_topic``, default ``<id>-dlq``); see
    :mod:`core.worker.config`.
    """

    def __init__(
        self,
        id: str,
        *,
        default_serde: Any = "json",
        broker: str | None = None,
        on_deserialization_error: str = "fail",
        on_processing_error: str = "fail",
        on_production_error: str = "fail",
        dead_letter_topic: str | None = None,
    ) -> None:
        from core.worker.config import ErrorHandling

        self._builder = PlanBuilder(id)
        self.id = id
        self.broker = broker or os.environ.get("FLOWS_BROKER")
        self.errors = ErrorHandling(
            on_deserialization_error, on_processing_error, on_production_error, dead_letter_topic
        )
        self._default_serde: Serde | None = optional_serde(default_serde, where="default_serde")
        self._topics: dict[str, TopicSpec] = {}
        self._sources: dict[str, str] = {}
        self._topology: Topology | None = None
        self._topology_version = -1

    # -- topics and stores ---------------------------------------------------------------------

    def topic(
        self,
        name: str,
        *,
        key_serde: Any = None,
        value_serde: Any = None,
        partitions: int | None = None,
        timestamp_extractor: Callable[..., Any] | None = None,
    ) -> TopicSpec:
        """Declare a topic; keys default to raw bytes, values need a serde to be read or written.

        ``timestamp_extractor`` gives a record's event time (ms): ``fn(value)`` or
        ``fn(key, value, record_timestamp)``; by default the record's own timestamp is used.
        """
        check_name(name, what="topic")
        if partitions is not None and (not isinstance(partitions, int) or partitions < 1):
            raise TopologyError(
                f"topic {name!r}: partitions must be a positive int, got {partitions!r}"
            )
        spec = TopicSpec(
            name,
            resolve_serde(key_serde, where=f"topic {name!r} key_serde") if key_serde else BYTES,
            optional_serde(value_serde, where=f"topic {name!r} value_serde"),
            partitions,
            timestamp_extractor=extractor(timestamp_extractor, where=f"topic {name!r}"),
        )
        old = self._topics.get(name)
        if old is not None and old != spec:
            raise TopologyError(
                f"topic {name!r} is declared twice with different settings: declare it once "
                f"and reuse the returned object"
            )
        self._topics[name] = spec
        return spec

    def _topic(self, topic: TopicSpec | str) -> TopicSpec:
        if isinstance(topic, TopicSpec):
            return topic
        if isinstance(topic, str) and topic in self._topics:
            return self._topics[topic]
        raise TopologyError(
            f"unknown topic {topic!r}: declare it first with app.topic({topic!r}, value_serde=...)"
        )

    def store(self, name: str, *, key_serde: Any = None, value_serde: Any = None) -> StoreSpec:
        """Declare a key-value store for ``Stream.process(..., stores=[...])``."""
        ks = optional_serde(key_serde, where=f"store {name!r} key_serde") or self._default_serde
        vs = optional_serde(value_serde, where=f"store {name!r} value_serde") or self._default_serde
        return self._builder.add_store(
            name, ks, vs, step=name, hint=f"app.store({name!r}, key_serde=..., value_serde=...)"
        )

    # -- sources -------------------------------------------------------------------------------

    def _source(self, topic: TopicSpec | str) -> tuple[TopicSpec, Node]:
        spec = self._topic(topic)
        if spec.name in self._sources:
            raise TopologyError(
                f"topic {spec.name!r} is already read by step {self._sources[spec.name]!r}: "
                f"reuse that Stream/Table instead of reading the topic twice",
                step=self._sources[spec.name],
            )
        node = self._add("source", (), None, topic=spec)
        self._sources[spec.name] = node.name
        return spec, node

    def stream(
        self,
        topic: TopicSpec | str,
        *,
        name: str | None = None,
        timestamp_extractor: Callable[..., Any] | None = None,
    ) -> Stream:
        """The records of ``topic`` as a :class:`Stream` (event time: see :meth:`topic`)."""
        spec = self._topic(topic)
        if spec.name in self._sources:
            self._source(spec)  # raises
        tx = extractor(timestamp_extractor, where=f"stream({spec.name!r})")
        params = (("timestamp_extractor", tx),) if tx is not None else ()
        node = self._add("source", (), name, topic=spec, params=params)
        self._sources[spec.name] = node.name
        return Stream(self, node, spec.key_serde, spec.value_serde)

    def table(self, topic: TopicSpec | str, *, name: str | None = None) -> Table:
        """``topic`` read as a table (latest value per key), materialized in a store."""
        spec, source = self._source(topic)
        step = self._builder.namer.name("table_source", name)
        self._builder.add_store(
            step,
            spec.key_serde,
            spec.value_serde,
            step=step,
            hint=f"app.topic({spec.name!r}, key_serde=..., value_serde=...)",
        )
        node = Node(step, "table_source", (source.name,), stores=(step,))
        self._append(node)
        return Table(self, node, spec.key_serde, spec.value_serde, store=step)

    def global_table(self, topic: TopicSpec | str, *, name: str | None = None) -> GlobalTable:
        """``topic`` read in full by every task, queryable with ``ctx.store(name)``."""
        spec = self._topic(topic)
        if spec.name in self._sources:
            self._source(spec)  # raises
        step = self._builder.namer.name("global_table", name)
        self._builder.add_store(
            step,
            spec.key_serde,
            spec.value_serde,
            step=step,
            hint=f"app.topic({spec.name!r}, key_serde=..., value_serde=...)",
        )
        node = Node(step, "global_table", (), topic=spec, stores=(step,))
        self._append(node)
        self._sources[spec.name] = step
        return GlobalTable(self, node, step)

    # -- time ----------------------------------------------------------------------------------

    def cron(
        self, expr: str, *, tz: str | None = None, per: str = "application", name: str | None = None
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Run the decorated function on a cron schedule (``"*/5 * * * *"``), in time zone ``tz``.

        ``per="application"`` runs it once per application (in task ``0_0``), ``per="task"`` in
        every task. The function takes no argument, or a context with ``timestamp`` (the due
        time, ms), ``task_id`` and ``send(topic, key, value)``.

        >>> import flows
        >>> app = flows.App("doc-cron")
        >>> @app.cron("0 * * * *", tz="Europe/Paris")
        ... def hourly(ctx):
        ...     print("due at", ctx.timestamp)
        """
        return cron_decorator(self, expr, tz, per, name)

    # -- plan ----------------------------------------------------------------------------------

    def _add(self, kind: str, parents: tuple[str, ...], name: str | None, **fields: Any) -> Node:
        return self._builder.add(kind, parents, name, **fields)

    def _append(self, node: Node) -> None:
        self._builder.nodes.append(node)
        self._builder.version += 1

    @property
    def topology(self) -> Topology:
        """The validated, compiled topology (recompiled after the app changes)."""
        if self._topology is None or self._topology_version != self._builder.version:
            self._topology = compile_plan(self._builder.freeze(), self._topics)
            self._topology_version = self._builder.version
        return self._topology

    def __repr__(self) -> str:
        return f"<App {self.id}>"


def load_app(spec: str) -> App:
    """Import ``module[:attr]`` (attr defaults to ``app``) from the current directory."""
    module_name, _, attr = spec.partition(":")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise TopologyError(
            f"cannot import flow module {module_name!r} ({exc}): run from the directory that "
            f"holds it, or pass -A package.module[:attr]"
        ) from exc
    obj = getattr(module, attr or "app", None)
    if not isinstance(obj, App):
        raise TopologyError(
            f"{module_name!r} has no flows.App named {attr or 'app'!r}: define "
            f"app = flows.App(...) at module level or pass -A {module_name}:<attr>"
        )
    return obj
