"""``TopologyTestDriver``: run an app's compiled tasks synchronously, without a broker.

The driver builds the very same tasks (fused closures, write-back caches, commit protocol) a
worker runs; it feeds them records through the topics' real serdes, routes records written to
topics the app reads (repartition topics) back in, and commits after every input, so every
update is visible downstream. It keeps everything produced, changelogs included.

>>> import flows
>>> app = flows.App("doc-driver")
>>> app.stream(app.topic("in", value_serde="int")).map_values(lambda v: v * 2).to(
...     app.topic("out", value_serde="int"))
>>> with TopologyTestDriver(app) as driver:
...     driver.input_topic("in").pipe_input(21)
...     driver.output_topic("out").read_value()
42
"""

from __future__ import annotations

from collections import deque
from pathlib import Path
from typing import Any

from core.collector import InMemoryCollector, ProducedRecord
from core.errors import FlowsError
from core.plan import Serde, StoreSpec, TopicSpec
from core.task import GlobalTask, Task, commit
from flows.app import App
from flows.processor import Record
from flows.serdes import BYTES, resolve_serde
from state.api import KeyValueStore
from state.memory import InMemoryStore

_MISSING: Any = object()


class DriverError(FlowsError, LookupError):
    """A test asked the driver for something that does not exist (topic, store, record)."""


class TopologyTestDriver:
    """Runs ``app`` synchronously; ``store="rocksdb"`` (with ``state_dir``) uses RocksDB stores."""

    def __init__(
        self,
        app: App,
        *,
        store: str = "memory",
        state_dir: str | Path | None = None,
        initial_wall_clock_ms: int = 0,
    ) -> None:
        if store not in ("memory", "rocksdb"):
            raise DriverError(f"store must be 'memory' or 'rocksdb', got {store!r}")
        if store == "rocksdb" and state_dir is None:
            raise DriverError("store='rocksdb' needs state_dir= (e.g. pytest's tmp_path)")
        self.app = app
        self.topology = app.topology
        self._kind = store
        self._state_dir = Path(state_dir) if state_dir is not None else None
        self.wall_clock = initial_wall_clock_ms
        self.collector = InMemoryCollector()
        self._queue: deque[tuple[str, list[ProducedRecord]]] = deque()
        self._input_offsets: dict[str, int] = {}
        self.global_tasks = [
            GlobalTask(self.topology, sub, self._open)
            for sub in self.topology.subtopologies
            if sub.is_global
        ]
        views: dict[str, Any] = {}
        for g in self.global_tasks:
            views.update(g.views)
        self.tasks = [
            self.topology.create_task(
                sub.id,
                0,
                stores=self._open,
                collector=self.collector,
                global_stores=views,
                wall_clock_ms=self.wall_clock,
            )
            for sub in self.topology.subtopologies
            if not sub.is_global
        ]
        self._readers: dict[str, list[Task | GlobalTask]] = {}
        for task in self.tasks:
            for topic in task.sub.source_topics:
                self._readers.setdefault(topic, []).append(task)
        for g in self.global_tasks:
            for topic in g.topics:
                self._readers.setdefault(topic, []).append(g)
        self.collector.subscribe(self._route)
        self._closed = False

    def _open(self, spec: StoreSpec, task_id: str) -> KeyValueStore:
        if self._kind == "rocksdb":
            from state.rocksdb import RocksDBStore

            assert self._state_dir is not None
            path = self._state_dir / self.app.id / task_id / spec.name
            store: KeyValueStore = RocksDBStore(spec.name, path)
        else:
            store = InMemoryStore(spec.name)
        return store

    # -- feeding -------------------------------------------------------------------------------

    def _route(self, topic: str, records: list[ProducedRecord]) -> None:
        if topic in self._readers:
            self._queue.append((topic, records))

    def _feed(self, topic: str, batch: list[tuple[Any, ...]]) -> None:
        self._feed_many([(topic, batch)] if batch else [])

    def _feed_many(self, batches: list[tuple[str, list[tuple[Any, ...]]]]) -> None:
        try:
            per_reader: dict[int, tuple[Task | GlobalTask, list[tuple[str, list[Any]]]]] = {}
            for topic, batch in batches:
                for reader in self._readers.get(topic, ()):
                    per_reader.setdefault(id(reader), (reader, []))[1].append((topic, batch))
            for reader, items in per_reader.values():
                if isinstance(reader, Task):
                    reader.process_many(items)
                else:
                    for topic, batch in items:
                        reader.process(topic, batch)
            while self._queue:
                t, recs = self._queue.popleft()
                internal = [
                    (r.key, r.value, r.timestamp, r.headers, r.partition, r.offset) for r in recs
                ]
                for reader in self._readers.get(t, ()):
                    reader.process(t, internal)
        finally:
            self._queue.clear()
        commit(self.tasks, self.collector)

    def _spec(self, name: str) -> TopicSpec:
        spec = self.topology.topics.get(name)
        if spec is None:
            for sub in self.topology.subtopologies:
                for node in sub.nodes:
                    if node.topic is not None and node.topic.name == name:
                        return node.topic
            return TopicSpec(name, BYTES, BYTES)
        return spec

    def input_topic(
        self, name: str, *, key_serde: Any = None, value_serde: Any = None
    ) -> TestInputTopic:
        """A handle to pipe records into topic ``name`` (one the app reads)."""
        if name not in self._readers:
            raise DriverError(
                f"topic {name!r} is not read by app {self.app.id!r}; it reads "
                f"{sorted(self._readers)}"
            )
        spec = self._spec(name)
        ks = resolve_serde(key_serde) if key_serde is not None else spec.key_serde
        vs = resolve_serde(value_serde) if value_serde is not None else spec.value_serde
        return TestInputTopic(self, name, ks or BYTES, vs or BYTES)

    def output_topic(
        self, name: str, *, key_serde: Any = None, value_serde: Any = None
    ) -> TestOutputTopic:
        """A handle to read what the app wrote to topic ``name``."""
        spec = self._spec(name)
        ks = resolve_serde(key_serde) if key_serde is not None else spec.key_serde
        vs = resolve_serde(value_serde) if value_serde is not None else spec.value_serde
        return TestOutputTopic(self, name, ks or BYTES, vs or BYTES)

    def pipe_batches(self, batches: dict[str, list[tuple[Any, Any, int]]]) -> None:
        """Feed one batch per topic at once, as a worker's fetch would: a task reading several
        of these topics processes their records lowest timestamp first.

        Each record is ``(key, value, timestamp_ms)``, encoded with the topic's serdes.
        """
        encoded = []
        for topic, records in batches.items():
            handle = self.input_topic(topic)
            batch = []
            for key, value, ts in records:
                kb = None if key is None else handle._encode(handle._ks, key, "key")
                vb = None if value is None else handle._encode(handle._vs, value, "value")
                offset = self._input_offsets.get(topic, 0)
                self._input_offsets[topic] = offset + 1
                batch.append((kb, vb, ts, None, 0, offset))
            if batch:
                encoded.append((topic, batch))
        self._feed_many(encoded)

    @property
    def dropped_late_records(self) -> int:
        """Records dropped by windowed steps because their window had closed, all tasks."""
        return sum(t.dropped_late_records for t in self.tasks)

    def advance_wall_clock(self, seconds: float = 0, *, ms: int = 0) -> None:
        """Move the wall clock forward and run due wall-clock punctuators (then commit)."""
        self.wall_clock += int(seconds * 1000) + ms
        for task in self.tasks:
            task.punctuate_wall_clock(self.wall_clock)
        self._feed("", [])

    # -- inspecting ----------------------------------------------------------------------------

    def store(self, name: str) -> Any:
        """A decoded view of store ``name`` (``get``, ``items``, ``all``)."""
        owner = self.topology.store_owner.get(name)
        for task in self.tasks:
            if task.sub.id == owner:
                return task.store_view(name)
        for g in self.global_tasks:
            if name in g.views:
                return g.views[name]
        raise DriverError(
            f"app {self.app.id!r} has no store {name!r}; stores: {sorted(self.topology.stores)}"
        )

    def changelog(self, store: str) -> list[tuple[int, bytes | None, bytes | None]]:
        """The changelog records of ``store`` so far, as ``(offset, key, value|None)``."""
        spec = self.topology.stores.get(store)
        if spec is None:
            raise DriverError(f"app {self.app.id!r} has no store {store!r}")
        return [(r.offset, r.key, r.value) for r in self.collector.records.get(spec.changelog, [])]

    def produced(self, topic: str) -> list[ProducedRecord]:
        """Every raw record written to ``topic`` (bytes, partition, offset)."""
        return list(self.collector.records.get(topic, []))

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for task in self.tasks:
            task.close()
        for g in self.global_tasks:
            g.close()

    def __enter__(self) -> TopologyTestDriver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class TestInputTopic:
    """Pipes records into one topic through its real serdes."""

    __test__ = False

    def __init__(self, driver: TopologyTestDriver, name: str, ks: Serde, vs: Serde) -> None:
        self._driver = driver
        self.name = name
        self._ks = ks
        self._vs = vs

    def pipe_input(
        self,
        key_or_value: Any,
        value: Any = _MISSING,
        *,
        timestamp: int | None = None,
        headers: Any = None,
    ) -> None:
        """``pipe_input(value)`` (null key) or ``pipe_input(key, value, timestamp=ms)``."""
        key = None if value is _MISSING else key_or_value
        value = key_or_value if value is _MISSING else value
        d = self._driver
        kb = None if key is None else self._encode(self._ks, key, "key")
        vb = None if value is None else self._encode(self._vs, value, "value")
        ts = d.wall_clock if timestamp is None else timestamp
        offset = d._input_offsets.get(self.name, 0)
        d._input_offsets[self.name] = offset + 1
        d._feed(self.name, [(kb, vb, ts, headers, 0, offset)])

    def _encode(self, serde: Serde, obj: Any, which: str) -> bytes:
        try:
            return serde.encode(obj)
        except Exception as exc:
            raise DriverError(
                f"cannot encode {which} {obj!r} for topic {self.name!r} with serde "
                f"{serde.name!r} ({exc}): pass a matching {which}, or {which}_serde= to "
                f"input_topic(), or declare the topic's {which}_serde"
            ) from exc

    def pipe_values(self, values: list[Any]) -> None:
        for v in values:
            self.pipe_input(v)

    def pipe_key_values(self, pairs: list[tuple[Any, Any]]) -> None:
        for k, v in pairs:
            self.pipe_input(k, v)


class TestOutputTopic:
    """Reads records written to one topic, decoded with its real serdes, oldest first."""

    __test__ = False

    def __init__(self, driver: TopologyTestDriver, name: str, ks: Serde, vs: Serde) -> None:
        self._driver = driver
        self.name = name
        self._ks = ks
        self._vs = vs
        self._pos = 0

    def _records(self) -> list[ProducedRecord]:
        return self._driver.collector.records.get(self.name, [])

    @property
    def queue_size(self) -> int:
        return len(self._records()) - self._pos

    def is_empty(self) -> bool:
        return self.queue_size == 0

    def read_record(self) -> Record:
        records = self._records()
        if self._pos >= len(records):
            raise DriverError(f"no more records in output topic {self.name!r}")
        r = records[self._pos]
        self._pos += 1
        key = None if r.key is None else self._ks.decode(r.key)
        value = None if r.value is None else self._vs.decode(r.value)
        return Record(key, value, r.timestamp, r.headers)

    def read_value(self) -> Any:
        return self.read_record().value

    def read_key_value(self) -> tuple[Any, Any]:
        r = self.read_record()
        return r.key, r.value

    def read_values_to_list(self) -> list[Any]:
        return [self.read_record().value for _ in range(self.queue_size)]

    def read_key_values_to_list(self) -> list[tuple[Any, Any]]:
        return [self.read_key_value() for _ in range(self.queue_size)]

    def read_records_to_list(self) -> list[Record]:
        return [self.read_record() for _ in range(self.queue_size)]

    def read_key_values_to_map(self) -> dict[Any, Any]:
        """Latest value per key (a tombstone leaves ``None``), like Kafka's readKeyValuesToMap."""
        out: dict[Any, Any] = {}
        for k, v in self.read_key_values_to_list():
            if k is None:
                raise DriverError(
                    f"output topic {self.name!r} has a record with a null key: use "
                    f"read_key_values_to_list() instead of read_key_values_to_map()"
                )
            out[k] = v
        return out


def try_step(build: Any, inputs: list[Any], *, app_id: str = "try") -> list[tuple[Any, Any]]:
    """Run ``build(stream)`` on ``inputs`` and return the ``(key, value)`` pairs it outputs.

    A one-line way to see what an operator does (used by the operators' doc examples). Keys and
    values are JSON on the wire; an input is a ``(key, value)`` pair, or a bare value (null key).
    ``build`` returns the stream (or table) whose records are read back; a windowed key is
    shown as ``[key, start, end]``.

    >>> try_step(lambda s: s.map_values(len), [("a", "xyz")])
    [('a', 3)]
    """
    from flows.table import Table

    app = App(app_id)
    src = app.topic("input", key_serde="json", value_serde="json")
    out = app.topic("output", key_serde="json", value_serde="json")
    result = build(app.stream(src))
    if isinstance(result, Table):
        result = result.to_stream()
    from core.windowing import WindowedSerde

    if isinstance(result._ks, WindowedSerde):  # Windowed keys: shown as [key, start, end]
        result = result.map(lambda wk, v: ([wk.key, wk.start, wk.end], v))
    result.to(out)
    with TopologyTestDriver(app) as driver:
        topic = driver.input_topic("input")
        for item in inputs:
            if isinstance(item, tuple):
                topic.pipe_input(*item)
            else:
                topic.pipe_input(item)
        return driver.output_topic("output").read_key_values_to_list()
