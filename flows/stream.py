"""``Stream``: a record stream handle, and the stateless operators on it.

Every method appends one step to the app's logical plan and returns a new handle; nothing runs
until a task is compiled. Each handle remembers the serdes it knows for its keys and values (an
operator that may change the type forgets them unless you pass ``key_serde=`` / ``value_serde=``)
and whether the key may have changed, so that a later stateful step can insert a repartition
topic automatically.

>>> import flows
>>> from flows.testing import TopologyTestDriver
>>> app = flows.App("doc-stream")
>>> src = app.topic("in", value_serde="str")
>>> out = app.topic("out", value_serde="str")
>>> app.stream(src).filter(lambda k, v: v != "skip").map_values(str.upper).to(out)
>>> with TopologyTestDriver(app) as driver:
...     for value in ["a", "skip", "b"]:
...         driver.input_topic("in").pipe_input(value)
...     driver.output_topic("out").read_values_to_list()
['A', 'B']
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from core.errors import TopologyError
from core.naming import repartition_topic
from core.plan import Node, Serde, TopicSpec
from flows.serdes import optional_serde

if TYPE_CHECKING:
    from flows.app import App
    from flows.grouped import GroupedStream

_KEEP: Any = object()


def _check_fn(fn: object, op: str) -> None:
    if not callable(fn):
        raise TopologyError(f"{op}() needs a function, got {fn!r}")


class Stream:
    """An unbounded stream of ``(key, value)`` records; see the module docstring."""

    __slots__ = ("_app", "_key_changed", "_ks", "_node", "_vs")

    def __init__(
        self,
        app: App,
        node: Node,
        key_serde: Serde | None,
        value_serde: Serde | None,
        key_changed: bool = False,
    ) -> None:
        self._app = app
        self._node = node
        self._ks = key_serde
        self._vs = value_serde
        self._key_changed = key_changed

    @property
    def name(self) -> str:
        """The name of the step that produces this stream."""
        return self._node.name

    def _derive(
        self,
        kind: str,
        name: str | None,
        *,
        key_serde: Any = _KEEP,
        value_serde: Any = _KEEP,
        key_changed: bool | None = None,
        parents: tuple[str, ...] | None = None,
        **fields: Any,
    ) -> Stream:
        node = self._app._add(kind, parents or (self._node.name,), name, **fields)
        ks = self._ks if key_serde is _KEEP else optional_serde(key_serde, where=node.name)
        vs = self._vs if value_serde is _KEEP else optional_serde(value_serde, where=node.name)
        changed = self._key_changed if key_changed is None else key_changed
        return Stream(self._app, node, ks, vs, changed)

    # -- stateless ----------------------------------------------------------------------------

    def filter(self, predicate: Callable[[Any, Any], bool], *, name: str | None = None) -> Stream:
        """Keep records for which ``predicate(key, value)`` is true.

        >>> from flows.testing import try_step
        >>> try_step(lambda s: s.filter(lambda k, v: v > 1), [("a", 1), ("b", 2)])
        [('b', 2)]
        """
        _check_fn(predicate, "filter")
        return self._derive("filter", name, fn=predicate)

    def filter_not(
        self, predicate: Callable[[Any, Any], bool], *, name: str | None = None
    ) -> Stream:
        """Drop records for which ``predicate(key, value)`` is true.

        >>> from flows.testing import try_step
        >>> try_step(lambda s: s.filter_not(lambda k, v: v > 1), [("a", 1), ("b", 2)])
        [('a', 1)]
        """
        _check_fn(predicate, "filter_not")
        return self._derive("filter_not", name, fn=predicate)

    def map(
        self,
        fn: Callable[[Any, Any], tuple[Any, Any]],
        *,
        name: str | None = None,
        key_serde: Any = None,
        value_serde: Any = None,
    ) -> Stream:
        """Replace each record with ``fn(key, value) -> (new_key, new_value)`` (key-changing).

        >>> from flows.testing import try_step
        >>> try_step(lambda s: s.map(lambda k, v: (v, k)), [("a", "b")])
        [('b', 'a')]
        """
        _check_fn(fn, "map")
        return self._derive(
            "map", name, fn=fn, key_serde=key_serde, value_serde=value_serde, key_changed=True
        )

    def map_values(
        self, fn: Callable[[Any], Any], *, name: str | None = None, value_serde: Any = None
    ) -> Stream:
        """Replace each value with ``fn(value)``; the key is kept (no repartition needed).

        >>> from flows.testing import try_step
        >>> try_step(lambda s: s.map_values(str.upper), [("a", "b")])
        [('a', 'B')]
        """
        _check_fn(fn, "map_values")
        return self._derive("map_values", name, fn=fn, value_serde=value_serde)

    def flat_map(
        self,
        fn: Callable[[Any, Any], Iterable[tuple[Any, Any]]],
        *,
        name: str | None = None,
        key_serde: Any = None,
        value_serde: Any = None,
    ) -> Stream:
        """Replace each record with zero or more ``(key, value)`` pairs (key-changing).

        >>> from flows.testing import try_step
        >>> try_step(lambda s: s.flat_map(lambda k, v: [(k, v), (v, k)]), [("a", "b")])
        [('a', 'b'), ('b', 'a')]
        """
        _check_fn(fn, "flat_map")
        return self._derive(
            "flat_map", name, fn=fn, key_serde=key_serde, value_serde=value_serde, key_changed=True
        )

    def flat_map_values(
        self,
        fn: Callable[[Any], Iterable[Any]],
        *,
        name: str | None = None,
        value_serde: Any = None,
    ) -> Stream:
        """Replace each value with zero or more values, each keeping the record's key.

        >>> from flows.testing import try_step
        >>> try_step(lambda s: s.flat_map_values(str.split), [("k", "a b")])
        [('k', 'a'), ('k', 'b')]
        """
        _check_fn(fn, "flat_map_values")
        return self._derive("flat_map_values", name, fn=fn, value_serde=value_serde)

    def select_key(
        self, fn: Callable[[Any, Any], Any], *, name: str | None = None, key_serde: Any = None
    ) -> Stream:
        """Set each record's key to ``fn(key, value)`` (key-changing).

        >>> from flows.testing import try_step
        >>> try_step(lambda s: s.select_key(lambda k, v: v[0]), ["xy"])
        [('x', 'xy')]
        """
        _check_fn(fn, "select_key")
        return self._derive("select_key", name, fn=fn, key_serde=key_serde, key_changed=True)

    def peek(self, fn: Callable[[Any, Any], Any], *, name: str | None = None) -> Stream:
        """Call ``fn(key, value)`` for its side effect and pass the record on unchanged.

        >>> from flows.testing import try_step
        >>> try_step(lambda s: s.peek(print), [("k", 1)])
        k 1
        [('k', 1)]
        """
        _check_fn(fn, "peek")
        return self._derive("peek", name, fn=fn)

    def foreach(self, fn: Callable[[Any, Any], Any], *, name: str | None = None) -> None:
        """Call ``fn(key, value)`` for every record; a terminal step.

        >>> import flows
        >>> app = flows.App("doc-foreach")
        >>> app.stream(app.topic("in", value_serde="str")).foreach(print)
        """
        _check_fn(fn, "foreach")
        self._derive("foreach", name, fn=fn)

    def split(self, *, name: str | None = None) -> Splitter:
        """Route each record to the first branch whose predicate matches.

        >>> import flows
        >>> app = flows.App("doc-split")
        >>> s = app.stream(app.topic("in", value_serde="int"))
        >>> b = s.split(name="sign").branch(lambda k, v: v < 0, name="neg").default_branch()
        >>> sorted(b)
        ['default', 'neg']
        """
        return Splitter(self, name)

    def merge(self, other: Stream, *, name: str | None = None) -> Stream:
        """Interleave this stream with ``other`` (both must come from the same app).

        >>> from flows.testing import try_step
        >>> try_step(lambda s: s.filter(lambda k, v: v).merge(s.map_values(str.upper)), ["a"])
        [(None, 'a'), (None, 'A')]
        """
        if not isinstance(other, Stream) or other._app is not self._app:
            raise TopologyError(f"merge() needs a Stream of the same app, got {other!r}", step=name)
        ks = self._ks if self._ks is other._ks else None
        vs = self._vs if self._vs is other._vs else None
        node = self._app._add("merge", (self._node.name, other._node.name), name)
        return Stream(self._app, node, ks, vs, self._key_changed or other._key_changed)

    def repartition(
        self,
        *,
        name: str | None = None,
        key_serde: Any = None,
        value_serde: Any = None,
        partitions: int | None = None,
    ) -> Stream:
        """Write the stream through an internal topic, partitioned by the current key.

        >>> from flows.testing import try_step
        >>> try_step(lambda s: s.select_key(lambda k, v: v).repartition(name="by-v"), ["x"])
        [('x', 'x')]
        """
        node_name = self._app._builder.namer.name("repartition", name)
        ks = optional_serde(key_serde, where=node_name) or self._ks
        vs = optional_serde(value_serde, where=node_name) or self._vs
        return self._through(node_name, node_name, ks, vs, partitions)

    def _through(
        self,
        node_name: str,
        base: str,
        ks: Serde | None,
        vs: Serde | None,
        partitions: int | None,
        hint: str = "repartition(key_serde=..., value_serde=...)",
    ) -> Stream:
        app = self._app
        ks = ks if ks is not None else app._default_serde
        vs = vs if vs is not None else app._default_serde
        topic = TopicSpec(repartition_topic(app.id, base), ks, vs, partitions, internal=True)
        node = Node(
            node_name, "repartition", (self._node.name,), topic=topic, params=(("hint", hint),)
        )
        app._append(node)
        return Stream(app, node, ks, vs, False)

    def to(self, topic: TopicSpec | str, *, name: str | None = None) -> None:
        """Write every record to ``topic`` with the topic's serdes (a terminal step)."""
        spec = self._app._topic(topic)
        from core.windowing import WindowedSerde

        if isinstance(self._ks, WindowedSerde) and not isinstance(spec.key_serde, WindowedSerde):
            have = spec.key_serde.name if spec.key_serde is not None else "none"
            raise TopologyError(
                f"the keys written to topic {spec.name!r} are flows.Windowed (from a windowed "
                f"aggregation) but the topic's key serde is {have!r}: declare "
                f"it with key_serde=windows.windowed_serde({self._ks.inner.name!r}), or "
                f"unwrap the key first with .map(lambda wk, v: (wk.key, v))",
                step=name,
            )
        self._derive("sink", name, topic=spec)

    def process(
        self,
        processor: Any,
        *,
        stores: Iterable[Any] = (),
        name: str | None = None,
        key_serde: Any = None,
        value_serde: Any = None,
    ) -> Stream:
        """Run a Processor API processor (see :mod:`flows.processor`) on every record."""
        from flows.processor import processor_factory

        factory = processor_factory(processor)
        names = tuple(s if isinstance(s, str) else s.name for s in stores)
        return self._derive(
            "process",
            name,
            fn=factory,
            stores=names,
            key_serde=key_serde,
            value_serde=value_serde,
            key_changed=True,
        )

    # -- joins -------------------------------------------------------------------------------

    def join(
        self,
        other: Any,
        joiner: Callable[[Any, Any], Any],
        *,
        window: Any = None,
        key_selector: Callable[[Any, Any], Any] | None = None,
        name: str | None = None,
        value_serde: Any = None,
        on_late: Callable[[Any, Any, int], Any] | None = None,
    ) -> Stream:
        """Inner join with a Stream (``window=windows.join_window(...)``), a Table, or a
        GlobalTable (``key_selector=fn(key, value)``); emits ``joiner(value, other_value)``.

        >>> import flows
        >>> from flows.testing import TopologyTestDriver
        >>> app = flows.App("doc-stjoin")
        >>> users = app.table(app.topic("users", key_serde="str", value_serde="str"))
        >>> clicks = app.stream(app.topic("clicks", key_serde="str", value_serde="str"))
        >>> out = app.topic("out", key_serde="str", value_serde="str")
        >>> clicks.join(users, lambda c, u: f"{u} clicked {c}").to(out)
        >>> with TopologyTestDriver(app) as driver:
        ...     driver.input_topic("clicks").pipe_input("u1", "home")   # no user yet: dropped
        ...     driver.input_topic("users").pipe_input("u1", "ann")
        ...     driver.input_topic("clicks").pipe_input("u1", "cart")
        ...     driver.output_topic("out").read_values_to_list()
        ['ann clicked cart']
        """
        return self._join(other, joiner, "inner", window, key_selector, name, value_serde, on_late)

    def left_join(
        self,
        other: Any,
        joiner: Callable[[Any, Any], Any],
        *,
        window: Any = None,
        key_selector: Callable[[Any, Any], Any] | None = None,
        name: str | None = None,
        value_serde: Any = None,
        on_late: Callable[[Any, Any, int], Any] | None = None,
    ) -> Stream:
        """Like :meth:`join`, but every record of this stream has a result (other may be None).

        With a stream, an unmatched record is emitted once its join window has closed."""
        return self._join(other, joiner, "left", window, key_selector, name, value_serde, on_late)

    def outer_join(
        self,
        other: Stream,
        joiner: Callable[[Any, Any], Any],
        *,
        window: Any = None,
        name: str | None = None,
        value_serde: Any = None,
        on_late: Callable[[Any, Any, int], Any] | None = None,
    ) -> Stream:
        """Windowed join of two streams where unmatched records of either side are emitted
        (with None for the missing side) once their join window has closed."""
        return self._join(other, joiner, "outer", window, None, name, value_serde, on_late)

    def _join(
        self,
        other: Any,
        joiner: Any,
        how: str,
        window: Any,
        key_selector: Any,
        name: str | None,
        value_serde: Any,
        on_late: Any,
    ) -> Stream:
        from flows.stream_joins import stream_join

        return stream_join(
            self,
            other,
            joiner,
            how,
            window=window,
            key_selector=key_selector,
            name=name,
            value_serde=value_serde,
            on_late=on_late,
        )

    # -- grouping -----------------------------------------------------------------------------

    def group_by_key(
        self, *, name: str | None = None, key_serde: Any = None, value_serde: Any = None
    ) -> GroupedStream:
        """Group by the current key; repartitions first if an earlier step changed the key.

        >>> from flows.testing import try_step
        >>> try_step(lambda s: s.group_by_key().count(), [("a", 1), ("a", 2)])
        [('a', 1), ('a', 2)]
        """
        from flows.grouped import GroupedStream

        ks = optional_serde(key_serde, where="group_by_key") or self._ks
        vs = optional_serde(value_serde, where="group_by_key") or self._vs
        return GroupedStream(self, ks, vs, repartition=self._key_changed, base=name)

    def group_by(
        self,
        fn: Callable[[Any, Any], Any],
        *,
        name: str | None = None,
        key_serde: Any = None,
        value_serde: Any = None,
    ) -> GroupedStream:
        """Group by ``fn(key, value)``: a key change, so the records are repartitioned.

        >>> from flows.testing import try_step
        >>> try_step(lambda s: s.group_by(lambda k, v: v % 2).count(), [1, 2, 3])
        [(1, 1), (0, 1), (1, 2)]
        """
        from flows.grouped import GroupedStream

        _check_fn(fn, "group_by")
        keyed = self._derive("select_key", name, fn=fn, key_serde=key_serde, key_changed=True)
        vs = optional_serde(value_serde, where=keyed.name) or self._vs
        return GroupedStream(keyed, keyed._ks, vs, repartition=True, base=keyed.name)

    def __repr__(self) -> str:
        return f"<Stream {self._node.name}>"


class Splitter:
    """Collects branches of a ``split()``; finish with ``default_branch()`` or ``branches()``."""

    def __init__(self, stream: Stream, name: str | None) -> None:
        self._stream = stream
        self._name = stream._app._builder.namer.name("split", name)
        self._branches: list[tuple[str, Callable[[Any, Any], bool] | None]] = []
        self._done = False

    def branch(self, predicate: Callable[[Any, Any], bool], *, name: str | None = None) -> Splitter:
        """Add a branch taking records for which ``predicate(key, value)`` is true."""
        _check_fn(predicate, "branch")
        self._branches.append((name or str(len(self._branches) + 1), predicate))
        return self

    def default_branch(self, *, name: str = "default") -> dict[str, Stream]:
        """Finish with a branch for records no predicate matched; returns name -> Stream."""
        self._branches.append((name, None))
        return self.branches()

    def branches(self) -> dict[str, Stream]:
        """Finish (records no predicate matched are dropped); returns branch name -> Stream."""
        if self._done:
            raise TopologyError(f"split {self._name!r} was already finished", step=self._name)
        self._done = True
        s = self._stream
        preds = tuple(p for _, p in self._branches)
        split = Node(self._name, "split", (s._node.name,), params=(("predicates", preds),))
        s._app._append(split)
        out: dict[str, Stream] = {}
        for index, (bname, _) in enumerate(self._branches):
            node = s._app._add(
                "branch", (split.name,), f"{self._name}-{bname}", params=(("index", index),)
            )
            out[bname] = Stream(s._app, node, s._ks, s._vs, s._key_changed)
        return out
