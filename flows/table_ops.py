"""Plan building for table operations with more moving parts: suppression and table joins.

Kept apart from :mod:`flows.table` so the handle stays small; see the docstrings of
``Table.suppress``, ``Table.join`` and :mod:`core.operators.fk_join` for the semantics.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from core.errors import TopologyError
from core.naming import repartition_topic
from core.plan import Node, TopicSpec
from flows.serdes import BYTES, optional_serde

if TYPE_CHECKING:
    from flows.table import Table


def suppress(
    table: Table, until_window_closes: bool, wall_clock: bool, name: str | None, interval: float
) -> Table:
    from flows.table import Table

    app = table._app
    if table.window is None:
        raise TopologyError(
            f"suppress() is for windowed tables, but {table.name!r} is not windowed: use it "
            f"after group_by_key().window(...).count()/reduce()/aggregate()",
            step=name,
        )
    if until_window_closes is not True:
        raise TopologyError(
            "suppress() supports until_window_closes=True (one final result per window); "
            "without suppress() every update is forwarded",
            step=name,
        )
    if not isinstance(interval, (int, float)) or interval <= 0:
        raise TopologyError(f"suppress(interval=...) must be positive seconds, got {interval!r}")
    step = app._builder.namer.name("suppress", name)
    ks = table._ks if table._ks is not None else app._default_serde
    vs = table._vs if table._vs is not None else app._default_serde
    app._builder.add_store(
        step, ks, vs, step=step, hint=f"the aggregation before {step!r} (value_serde=...)"
    )
    node = Node(
        step,
        "suppress",
        (table.name,),
        stores=(step,),
        params=(
            ("window", table.window),
            ("wall_clock", bool(wall_clock)),
            ("interval_ms", int(interval * 1000)),
        ),
    )
    app._append(node)
    return Table(app, node, table._ks, table._vs, window=table.window)


def table_join(
    left: Table,
    right: Any,
    joiner: Any,
    how: str,
    foreign_key: Any,
    name: str | None,
    value_serde: Any,
) -> Table:
    from flows.table import Table

    app = left._app
    if not isinstance(right, Table) or right._app is not app:
        raise TopologyError(
            f"table {how} join needs a Table of the same app, got {right!r} (to join a "
            f"global table, join a stream with key_selector=...)",
            step=name,
        )
    if not callable(joiner):
        raise TopologyError(f"join() needs joiner(left_value, right_value), got {joiner!r}")
    if left.window is not None or right.window is not None:
        raise TopologyError("joining windowed tables is not supported; join before windowing")
    vs = optional_serde(value_serde, where="join")
    if foreign_key is not None:
        return _fk_join(left, right, joiner, how, foreign_key, name, vs)
    step = app._builder.namer.name("table_join", name)
    lnode, lstore = left._materialized()
    rnode, rstore = right._materialized()
    if lnode == rnode:
        raise TopologyError(
            f"join step {step!r} joins table {lnode!r} with itself: use map_values() instead",
            step=step,
        )
    node = Node(
        step,
        "table_join",
        (lnode, rnode),
        fn=joiner,
        stores=(lstore, rstore),
        params=(("how", how),),
    )
    app._append(node)
    return Table(app, node, left._ks, vs)


def _fk_join(
    left: Table, right: Table, joiner: Any, how: str, fk: Any, name: str | None, vs: Any
) -> Table:
    """Plan a foreign-key join: subscribe -> (topic) -> right side -> (topic) -> resolve."""
    from flows.table import Table

    app = left._app
    if not callable(fk):
        raise TopologyError(f"foreign_key must be a function of the left value, got {fk!r}")
    step = app._builder.namer.name("fk_join", name)
    lnode, lstore = left._materialized()
    rnode, rstore = right._materialized()
    specs = {s.name: s for s in app._builder.stores}
    lspec, rspec = specs[lstore], specs[rstore]
    if rspec.key_serde is None or lspec.key_serde is None or rspec.value_serde is None:
        raise TopologyError(
            f"foreign-key join {step!r} needs the key serdes of both tables and the right "
            f"table's value serde: declare them on the topics",
            step=step,
        )
    lparts = _partitions(app, left)
    rparts = _partitions(app, right)
    app._builder.add_store(
        f"{step}-fk", lspec.key_serde, rspec.key_serde, step=step, hint="the tables' topics"
    )
    app._builder.add_store(
        f"{step}-subscriptions", rspec.key_serde, BYTES, step=step, kind="prefix"
    )
    subscribe = Node(
        f"{step}-subscribe",
        "fk_subscribe",
        (lnode,),
        fn=fk,
        stores=(lstore, f"{step}-fk"),
        params=(("joiner", joiner), ("how", how)),
    )
    app._append(subscribe)
    sub_topic = TopicSpec(
        repartition_topic(app.id, f"{step}-subscription"),
        rspec.key_serde,
        BYTES,
        rparts,
        internal=True,
    )
    app._append(Node(f"{step}-subscription", "repartition", (subscribe.name,), topic=sub_topic))
    right_node = Node(
        f"{step}-right",
        "fk_right",
        (f"{step}-subscription", rnode),
        stores=(f"{step}-subscriptions", rstore),
    )
    app._append(right_node)
    resp_topic = TopicSpec(
        repartition_topic(app.id, f"{step}-response"), BYTES, BYTES, lparts, internal=True
    )
    app._append(Node(f"{step}-response", "repartition", (right_node.name,), topic=resp_topic))
    resolve = Node(
        step,
        "fk_resolve",
        (subscribe.name, f"{step}-response"),
        fn=joiner,
        stores=(lstore,),
        params=(("how", how), ("right_value_decode", rspec.value_serde.decode)),
    )
    app._append(resolve)
    return Table(app, resolve, left._ks, vs)


def _partitions(app: Any, table: Table) -> int | None:
    """The partition count of the topic a table is read from, if declared."""
    nodes = {n.name: n for n in app._builder.nodes}
    todo = [table._node.name]
    while todo:
        node = nodes.get(todo.pop())
        if node is None:
            continue
        if node.topic is not None:
            return node.topic.partitions
        todo.extend(node.parents)
    return None
