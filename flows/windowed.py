"""``WindowedGroupedStream``: aggregations per key and time window.

The result is a windowed :class:`~flows.table.Table` keyed by :class:`flows.Windowed`; every
update of a window is forwarded, or only the final one per window after
``.suppress(until_window_closes=True)``. Late records (their window closed, grace included) are
dropped and counted in the task's ``dropped_late_records``, or handed to ``on_late(key, value,
timestamp)``.

>>> import flows
>>> from flows import windows
>>> from flows.testing import TopologyTestDriver
>>> app = flows.App("doc-windowed")
>>> src = app.topic("in", key_serde="str", value_serde="int")
>>> out = app.topic("out", key_serde=windows.windowed_serde("str"), value_serde="int")
>>> (app.stream(src).group_by_key().window(windows.tumbling(10)).reduce(max, name="top")
...     .suppress(until_window_closes=True).to_stream().to(out))
>>> with TopologyTestDriver(app) as driver:
...     for v, ts in [(3, 1_000), (7, 2_000), (1, 12_000)]:
...         driver.input_topic("in").pipe_input("a", v, timestamp=ts)
...     driver.output_topic("out").read_key_values_to_list()
[(Windowed(key='a', start=0, end=10000), 7)]
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from core.errors import TopologyError
from core.plan import Node, Serde
from core.windowing import WindowedSerde, WindowSpec
from flows.serdes import INT, optional_serde
from flows.serdes import Serde as NamedSerde
from flows.table import Table
from state.windowed import list_codec

if TYPE_CHECKING:
    from flows.grouped import GroupedStream

_KINDS = {
    "tumbling": "window_aggregate",
    "hopping": "window_aggregate",
    "sliding": "sliding_aggregate",
    "session": "session_aggregate",
}


def _count_init() -> int:
    return 0


def _count_add(key: Any, value: Any, agg: int) -> int:
    return agg + 1


def _count_merge(key: Any, a: int, b: int) -> int:
    return a + b


def _check_on_late(on_late: Any, step: str | None) -> None:
    if on_late is not None and not callable(on_late):
        raise TopologyError(
            f"on_late must be a function on_late(key, value, timestamp_ms), got {on_late!r}",
            step=step,
        )


class WindowedGroupedStream:
    """A grouped stream with a window definition; see the module docstring."""

    def __init__(self, grouped: GroupedStream, spec: WindowSpec) -> None:
        self._grouped = grouped
        self._spec = spec

    def count(
        self, *, name: str | None = None, key_serde: Any = None, on_late: Any = None
    ) -> Table:
        """Records per key and window.

        >>> from flows import windows
        >>> from flows.testing import try_step
        >>> w = lambda s: s.group_by_key().window(windows.hopping(10, 5)).count()
        >>> try_step(w, [("a", 1)])  # windows start at 0: only [0, 10 s) holds time 0
        [(['a', 0, 10000], 1)]
        """
        return self._build(
            "count", _count_init, _count_add, _count_merge, name, INT, key_serde, on_late
        )

    def reduce(
        self,
        fn: Callable[[Any, Any], Any],
        *,
        name: str | None = None,
        key_serde: Any = None,
        value_serde: Any = None,
        on_late: Any = None,
    ) -> Table:
        """Combine a window's values with ``fn(aggregate, value)`` (sessions merge with it too)."""
        if not callable(fn):
            raise TopologyError(f"reduce() needs a function, got {fn!r}", step=name)

        def add(key: Any, value: Any, agg: Any) -> Any:
            return value if agg is None else fn(agg, value)

        def merge(key: Any, a: Any, b: Any) -> Any:
            return fn(a, b)

        vs = optional_serde(value_serde, where="reduce") or self._grouped._vs
        return self._build("reduce", None, add, merge, name, vs, key_serde, on_late)

    def aggregate(
        self,
        initializer: Callable[[], Any],
        aggregator: Callable[[Any, Any, Any], Any],
        merger: Callable[[Any, Any, Any], Any] | None = None,
        *,
        name: str | None = None,
        key_serde: Any = None,
        value_serde: Any = None,
        on_late: Any = None,
    ) -> Table:
        """Fold a window's values with ``aggregator(key, value, agg)`` from ``initializer()``.

        Session windows also need ``merger(key, agg1, agg2)``, used when a record joins two
        sessions into one (as in Kafka Streams).
        """
        if not callable(initializer) or not callable(aggregator):
            raise TopologyError(
                "aggregate() needs initializer() and aggregator(key, value, agg) functions",
                step=name,
            )
        if self._spec.kind == "session" and not callable(merger):
            raise TopologyError(
                "aggregate() over session windows needs merger(key, agg1, agg2), called when a "
                "record bridges two sessions: pass it as the third argument",
                step=name,
            )
        vs = optional_serde(value_serde, where="aggregate")
        return self._build(
            "aggregate", initializer, aggregator, merger, name, vs, key_serde, on_late
        )

    def _build(
        self,
        op: str,
        init: Callable[[], Any] | None,
        add: Callable[[Any, Any, Any], Any],
        merger: Callable[[Any, Any, Any], Any] | None,
        name: str | None,
        store_vs: Serde | None,
        key_serde: Any,
        on_late: Any,
    ) -> Table:
        _check_on_late(on_late, name)
        g = self._grouped
        app = g._stream._app
        spec = self._spec
        kind = _KINDS[spec.kind]
        step = app._builder.namer.name(kind, name)
        stream, ks = g._input(step, key_serde)
        ks = ks if ks is not None else app._default_serde
        vs = store_vs if store_vs is not None else app._default_serde
        hint = f"{op}(key_serde=..., value_serde=...)"
        store_kind = "session" if spec.kind == "session" else "window"
        app._builder.add_store(
            step, ks, vs, step=step, hint=hint, kind=store_kind, retention_ms=spec.retention
        )
        stores: tuple[str, ...] = (step,)
        if spec.kind == "sliding":
            in_vs = g._vs if g._vs is not None else app._default_serde
            rec_vs = None
            if in_vs is not None:
                enc, dec = list_codec(in_vs.encode, in_vs.decode)
                rec_vs = NamedSerde(f"list[{in_vs.name}]", enc, dec)
            app._builder.add_store(
                f"{step}-records",
                ks,
                rec_vs,
                step=step,
                hint="group_by_key(value_serde=...)",
                kind="window",
                retention_ms=spec.retention,
            )
            stores = (step, f"{step}-records")
        node = Node(
            step,
            kind,
            (stream.name,),
            fn=init,
            fn2=add,
            stores=stores,
            params=(("op", op), ("window", spec), ("merger", merger), ("on_late", on_late)),
        )
        app._append(node)
        wks = WindowedSerde(ks) if ks is not None else None
        return Table(app, node, wks, vs, store=step, window=spec)
