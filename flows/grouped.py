"""``GroupedStream``: a stream grouped by key, ready for ``count``/``reduce``/``aggregate``.

Each aggregation is a stateful step with a key-value store named after the step; its result is
a :class:`~flows.table.Table` whose updates are the new aggregate for the record's key. If the
key was changed upstream (``group_by``, ``map``, ``select_key``...), a repartition topic named
``<app-id>-<group step>-repartition`` is inserted first, so that every record of a key reaches the
same task.

>>> import flows
>>> from flows.testing import TopologyTestDriver
>>> app = flows.App("doc-grouped")
>>> words = app.topic("words", value_serde="str")
>>> counts = app.topic("counts", key_serde="str", value_serde="int")
>>> table = app.stream(words).group_by(lambda k, w: w, name="by-word").count(name="n")
>>> table.to_stream().to(counts)
>>> with TopologyTestDriver(app) as driver:
...     for w in ["a", "b", "a"]:
...         driver.input_topic("words").pipe_input(w)
...     driver.output_topic("counts").read_key_values_to_list()
[('a', 1), ('b', 1), ('a', 2)]
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from core.errors import TopologyError
from core.plan import Node, Serde
from core.windowing import WindowSpec
from flows.serdes import INT, optional_serde
from flows.table import Table

if TYPE_CHECKING:
    from flows.stream import Stream
    from flows.windowed import WindowedGroupedStream


def _count_init() -> int:
    return 0


def _count_add(key: Any, value: Any, agg: int) -> int:
    return agg + 1


class GroupedStream:
    """A stream whose records are grouped by key; see the module docstring."""

    def __init__(
        self,
        stream: Stream,
        key_serde: Serde | None,
        value_serde: Serde | None,
        *,
        repartition: bool,
        base: str | None,
    ) -> None:
        self._stream = stream
        self._ks = key_serde
        self._vs = value_serde
        self._repartition = repartition
        self._base = base

    def count(self, *, name: str | None = None, key_serde: Any = None) -> Table:
        """Count records per key; the table's values are ints.

        >>> from flows.testing import try_step
        >>> try_step(lambda s: s.group_by_key().count(), [("a", 0), ("b", 0), ("a", 0)])
        [('a', 1), ('b', 1), ('a', 2)]
        """
        return self._aggregate(
            "count", _count_init, _count_add, name, INT, key_serde, "count(key_serde=...)"
        )

    def reduce(
        self,
        fn: Callable[[Any, Any], Any],
        *,
        name: str | None = None,
        key_serde: Any = None,
        value_serde: Any = None,
    ) -> Table:
        """Combine the values of a key with ``fn(aggregate, value)``; the first value starts it.

        >>> from flows.testing import try_step
        >>> try_step(lambda s: s.group_by_key().reduce(max), [("a", 3), ("a", 1), ("a", 5)])
        [('a', 3), ('a', 3), ('a', 5)]
        """
        if not callable(fn):
            raise TopologyError(f"reduce() needs a function, got {fn!r}", step=name)
        vs = optional_serde(value_serde, where="reduce") or self._vs

        def add(key: Any, value: Any, agg: Any) -> Any:
            return value if agg is None else fn(agg, value)

        return self._aggregate(
            "reduce", None, add, name, vs, key_serde, "reduce(key_serde=..., value_serde=...)"
        )

    def aggregate(
        self,
        initializer: Callable[[], Any],
        aggregator: Callable[[Any, Any, Any], Any],
        *,
        name: str | None = None,
        key_serde: Any = None,
        value_serde: Any = None,
    ) -> Table:
        """Fold a key's values with ``aggregator(key, value, agg)``, from ``initializer()``.

        >>> from flows.testing import try_step
        >>> collect = lambda k, v, agg: [*agg, v]
        >>> try_step(lambda s: s.group_by_key().aggregate(list, collect), [("a", 1), ("a", 2)])
        [('a', [1]), ('a', [1, 2])]
        """
        if not callable(initializer) or not callable(aggregator):
            raise TopologyError(
                "aggregate() needs initializer() and aggregator(key, value, agg) functions",
                step=name,
            )
        vs = optional_serde(value_serde, where="aggregate")
        return self._aggregate(
            "aggregate",
            initializer,
            aggregator,
            name,
            vs,
            key_serde,
            "aggregate(..., key_serde=..., value_serde=...)",
        )

    def window(self, spec: WindowSpec) -> WindowedGroupedStream:
        """Aggregate per key *and* time window (``flows.windows.tumbling(...)`` etc.).

        >>> from flows import windows
        >>> from flows.testing import try_step
        >>> out = try_step(lambda s: s.group_by_key().window(windows.tumbling(10)).count(),
        ...                [("a", 1)])
        >>> out  # the key is a flows.Windowed, shown by try_step as [key, start, end]
        [(['a', 0, 10000], 1)]
        """
        from flows.windowed import WindowedGroupedStream

        if not isinstance(spec, WindowSpec) or spec.kind == "join":
            raise TopologyError(
                f"window() needs windows.tumbling(...), hopping(...), sliding(...) or "
                f"session(...), got {spec!r}"
            )
        return WindowedGroupedStream(self, spec)

    def _input(self, step: str, key_serde: Any) -> tuple[Stream, Serde | None]:
        """The stream to aggregate (repartitioned if its key changed) and the key serde."""
        stream = self._stream
        ks = optional_serde(key_serde, where=step) or self._ks
        if self._repartition:
            base = self._base or step
            stream = stream._through(
                f"{base}-repartition",
                base,
                ks,
                self._vs,
                None,
                hint="group_by(..., key_serde=..., value_serde=...)",
            )
        return stream, ks

    def _aggregate(
        self,
        op: str,
        init: Callable[[], Any] | None,
        add: Callable[[Any, Any, Any], Any],
        name: str | None,
        store_vs: Serde | None,
        key_serde: Any,
        hint: str,
    ) -> Table:
        app = self._stream._app
        step = app._builder.namer.name("aggregate", name)
        stream, ks = self._input(step, key_serde)
        ks = ks if ks is not None else app._default_serde
        vs = store_vs if store_vs is not None else app._default_serde
        app._builder.add_store(step, ks, vs, step=step, hint=hint)
        node = Node(
            step,
            "aggregate",
            (stream.name,),
            fn=init,
            fn2=add,
            stores=(step,),
            params=(("op", op),),
        )
        app._append(node)
        return Table(app, node, ks, vs, store=step)
