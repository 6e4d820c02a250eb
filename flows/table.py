"""``Table`` (a changelog stream: the latest value per key) and ``GlobalTable``.

A table update is forwarded downstream as ``(key, new_value)``; a tombstone (``None``) deletes
the key and is forwarded too. ``filter`` forwards a tombstone for a key whose new value does not
match, so a downstream copy of the table drops it, as in Kafka Streams.

>>> import flows
>>> from flows.testing import TopologyTestDriver
>>> app = flows.App("doc-table")
>>> users = app.table(app.topic("users", key_serde="str", value_serde="json"), name="users")
>>> adults = app.topic("adults", key_serde="str", value_serde="json")
>>> users.filter(lambda k, u: u["age"] >= 18).to_stream().to(adults)
>>> with TopologyTestDriver(app) as driver:
...     driver.input_topic("users").pipe_input("ann", {"age": 30})
...     driver.input_topic("users").pipe_input("ann", {"age": 12})
...     driver.output_topic("adults").read_key_values_to_list()
[('ann', {'age': 30}), ('ann', None)]
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from core.errors import TopologyError
from core.plan import Node, Serde
from core.windowing import WindowSpec
from flows.serdes import optional_serde

if TYPE_CHECKING:
    from flows.app import App
    from flows.stream import Stream


class Table:
    """The latest value per key, updated by a changelog stream."""

    def __init__(
        self,
        app: App,
        node: Node,
        key_serde: Serde | None,
        value_serde: Serde | None,
        *,
        store: str | None = None,
        window: WindowSpec | None = None,
    ) -> None:
        self._app = app
        self._node = node
        self._ks = key_serde
        self._vs = value_serde
        self.store_name = store
        """The queryable store holding this table, if it is materialized."""
        self.window = window
        """The window definition of a windowed table (keys are ``flows.Windowed``), else None."""

    @property
    def name(self) -> str:
        return self._node.name

    def _derive(self, kind: str, name: str | None, fn: Any, vs: Serde | None) -> Table:
        if not callable(fn):
            raise TopologyError(f"{kind}() needs a function, got {fn!r}", step=name)
        node = self._app._add(kind, (self._node.name,), name, fn=fn)
        return Table(self._app, node, self._ks, vs, window=self.window)

    def filter(self, predicate: Callable[[Any, Any], bool], *, name: str | None = None) -> Table:
        """Keep keys whose value matches; a key that stops matching gets a tombstone.

        >>> from flows.testing import try_step
        >>> odd = lambda s: s.group_by_key().count().filter(lambda k, n: n % 2)
        >>> try_step(odd, [("a", 0), ("a", 0)])
        [('a', 1), ('a', None)]
        """
        return self._derive("table_filter", name, predicate, self._vs)

    def filter_not(
        self, predicate: Callable[[Any, Any], bool], *, name: str | None = None
    ) -> Table:
        """Drop keys whose value matches (forwarding a tombstone for them).

        >>> from flows.testing import try_step
        >>> even = lambda s: s.group_by_key().count().filter_not(lambda k, n: n % 2)
        >>> try_step(even, [("a", 0), ("a", 0)])
        [('a', None), ('a', 2)]
        """
        return self._derive("table_filter_not", name, predicate, self._vs)

    def map_values(
        self, fn: Callable[[Any], Any], *, name: str | None = None, value_serde: Any = None
    ) -> Table:
        """Replace each value with ``fn(value)``; tombstones stay tombstones.

        >>> from flows.testing import try_step
        >>> try_step(lambda s: s.group_by_key().count().map_values(str), [("a", 0)])
        [('a', '1')]
        """
        return self._derive(
            "table_map_values", name, fn, optional_serde(value_serde, where="map_values")
        )

    def to_stream(self, *, name: str | None = None) -> Stream:
        """The table's updates as a stream of ``(key, new_value)`` (tombstones included).

        >>> from flows.testing import try_step
        >>> try_step(lambda s: s.group_by_key().count().to_stream(), [("a", 0)])
        [('a', 1)]
        """
        from flows.stream import Stream

        node = self._app._add("to_stream", (self._node.name,), name)
        return Stream(self._app, node, self._ks, self._vs, False)

    # -- windowed tables ---------------------------------------------------------------------

    def suppress(
        self,
        until_window_closes: bool = True,
        *,
        wall_clock: bool = False,
        name: str | None = None,
        interval: float = 1.0,
    ) -> Table:
        """Forward only each window's final result, once the window has closed.

        A window closes when stream time passes its end plus grace; with ``wall_clock=True`` the
        wall clock (checked every ``interval`` seconds) closes it too, so the last windows of an
        idle input are still emitted. See :mod:`flows.windowed` for an example.
        """
        return _suppress(self, until_window_closes, wall_clock, name, interval)

    # -- joins ---------------------------------------------------------------------------------

    def join(
        self,
        other: Table,
        joiner: Callable[[Any, Any], Any],
        *,
        foreign_key: Callable[[Any], Any] | None = None,
        name: str | None = None,
        value_serde: Any = None,
    ) -> Table:
        """Inner join with ``other`` on the key (or on ``foreign_key(value)`` = other's key).

        >>> import flows
        >>> from flows.testing import TopologyTestDriver
        >>> app = flows.App("doc-ttjoin")
        >>> a = app.table(app.topic("a", key_serde="str", value_serde="str"))
        >>> b = app.table(app.topic("b", key_serde="str", value_serde="str"))
        >>> out = app.topic("out", key_serde="str", value_serde="str")
        >>> a.join(b, lambda x, y: x + y).to_stream().to(out)
        >>> with TopologyTestDriver(app) as driver:
        ...     driver.input_topic("a").pipe_input("k", "x")
        ...     driver.input_topic("b").pipe_input("k", "y")
        ...     driver.input_topic("b").pipe_input("k", None)
        ...     driver.output_topic("out").read_key_values_to_list()
        [('k', 'xy'), ('k', None)]
        """
        return _table_join(self, other, joiner, "inner", foreign_key, name, value_serde)

    def left_join(
        self,
        other: Table,
        joiner: Callable[[Any, Any], Any],
        *,
        foreign_key: Callable[[Any], Any] | None = None,
        name: str | None = None,
        value_serde: Any = None,
    ) -> Table:
        """Like :meth:`join`, but every row of this table has a result (``other`` may be None)."""
        return _table_join(self, other, joiner, "left", foreign_key, name, value_serde)

    def outer_join(
        self,
        other: Table,
        joiner: Callable[[Any, Any], Any],
        *,
        name: str | None = None,
        value_serde: Any = None,
    ) -> Table:
        """A result for every key of either table (the missing side is None)."""
        return _table_join(self, other, joiner, "outer", None, name, value_serde)

    def _materialized(self) -> tuple[str, str]:
        """``(step, store)`` holding this table's current values; adds a store if needed."""
        if self.store_name is not None:
            return self._node.name, self.store_name
        app = self._app
        step = f"{self._node.name}-materialized"
        ks = self._ks if self._ks is not None else app._default_serde
        vs = self._vs if self._vs is not None else app._default_serde
        app._builder.add_store(step, ks, vs, step=step, hint="map_values(..., value_serde=...)")
        node = Node(step, "table_materialize", (self._node.name,), stores=(step,))
        app._append(node)
        self._node = node
        self.store_name = step
        return step, step

    def __repr__(self) -> str:
        return f"<Table {self._node.name}>"


class GlobalTable:
    """A table replicated in full to every task (all partitions of its topic)."""

    def __init__(self, app: App, node: Node, store: str) -> None:
        self._app = app
        self._node = node
        self.store_name = store

    @property
    def name(self) -> str:
        return self._node.name

    def __repr__(self) -> str:
        return f"<GlobalTable {self._node.name}>"


def _suppress(
    table: Table, until_window_closes: bool, wall_clock: bool, name: str | None, interval: float
) -> Table:
    from flows.table_ops import suppress

    return suppress(table, until_window_closes, wall_clock, name, interval)


def _table_join(
    left: Table,
    right: Any,
    joiner: Any,
    how: str,
    foreign_key: Any,
    name: str | None,
    value_serde: Any,
) -> Table:
    from flows.table_ops import table_join

    return table_join(left, right, joiner, how, foreign_key, name, value_serde)
