"""Plan building for ``Stream.join`` / ``left_join`` / ``outer_join``.

The other side decides the join: another :class:`~flows.stream.Stream` (windowed, needs
``window=windows.join_window(...)``), a :class:`~flows.table.Table` (a lookup per stream
record), or a :class:`~flows.table.GlobalTable` (a lookup of ``key_selector(key, value)``). A
stream whose key was changed upstream is repartitioned first, with the other side's partition
count, so both sides are co-partitioned.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from core.errors import TopologyError
from core.plan import Node
from core.windowing import WindowSpec
from flows.serdes import Serde, optional_serde
from state.windowed import list_codec

if TYPE_CHECKING:
    from flows.stream import Stream


def stream_join(
    left: Stream,
    other: Any,
    joiner: Any,
    how: str,
    *,
    window: Any,
    key_selector: Any,
    name: str | None,
    value_serde: Any,
    on_late: Any,
) -> Stream:
    from flows.stream import Stream
    from flows.table import GlobalTable, Table

    app = left._app
    op = {"inner": "join", "left": "left_join", "outer": "outer_join"}[how]
    if not callable(joiner):
        raise TopologyError(f"{op}() needs joiner(left_value, right_value), got {joiner!r}")
    if on_late is not None and not callable(on_late):
        raise TopologyError(f"on_late must be a function on_late(key, value, ts), got {on_late!r}")
    vs = optional_serde(value_serde, where=op)
    if isinstance(other, GlobalTable) and other._app is app:
        if how == "outer":
            raise TopologyError("outer_join() with a global table is not supported: use left_join")
        if not callable(key_selector):
            raise TopologyError(
                f"{op}() with global table {other.name!r} needs key_selector=fn(key, value) "
                f"giving the table key to look up",
                step=name,
            )
        step = app._builder.namer.name("global_join", name)
        node = Node(
            step,
            "global_join",
            (left.name,),
            fn=joiner,
            fn2=key_selector,
            stores=(other.store_name,),
            params=(("how", how),),
        )
        app._append(node)
        return Stream(app, node, left._ks, vs, left._key_changed)
    if isinstance(other, Table) and other._app is app:
        if how == "outer":
            raise TopologyError(
                "outer_join() of a stream with a table does not exist (as in Kafka Streams): "
                "use join() or left_join()"
            )
        if window is not None:
            raise TopologyError(
                f"{op}() with a table takes no window=: it joins on the table's current value"
            )
        step = app._builder.namer.name("stream_table_join", name)
        _, store = other._materialized()
        src = _copartition(left, step, "left", _table_partitions(other))
        node = Node(
            step,
            "stream_table_join",
            (src.name,),
            fn=joiner,
            stores=(store,),
            params=(("how", how),),
        )
        app._append(node)
        return Stream(app, node, src._ks, vs, False)
    if isinstance(other, Stream) and other._app is app:
        if not isinstance(window, WindowSpec) or window.kind != "join":
            raise TopologyError(
                f"{op}() of two streams needs window=windows.join_window(max_difference, "
                f"grace=...), got {window!r}",
                step=name,
            )
        if other.name == left.name:
            raise TopologyError(
                f"{op}() of stream {left.name!r} with itself: join with a copy, e.g. "
                f"stream.peek(lambda k, v: None)",
                step=name,
            )
        return _windowed_join(left, other, joiner, how, window, name, vs, on_late)
    raise TopologyError(
        f"{op}() needs a Stream, Table or GlobalTable of the same app, got {other!r}", step=name
    )


def _windowed_join(
    left: Stream,
    right: Stream,
    joiner: Any,
    how: str,
    window: WindowSpec,
    name: str | None,
    vs: Any,
    on_late: Any,
) -> Stream:
    from flows.stream import Stream

    app = left._app
    step = app._builder.namer.name("stream_join", name)
    # a side whose key changed is repartitioned like the other side's topic (if declared)
    lsrc = _copartition(left, step, "left", _table_partitions(right))
    rsrc = _copartition(right, step, "right", _table_partitions(left))
    ks = lsrc._ks or rsrc._ks or app._default_serde
    lvs = lsrc._vs if lsrc._vs is not None else app._default_serde
    rvs = rsrc._vs if rsrc._vs is not None else app._default_serde
    stores = [f"{step}-left", f"{step}-right"]
    for store, serde in zip(stores, (lvs, rvs), strict=True):
        app._builder.add_store(
            store,
            ks,
            _list_serde(serde),
            step=step,
            hint="the input topics (key_serde=..., value_serde=...)",
            kind="window",
            retention_ms=window.retention,
        )
    if how != "inner":
        stores.append(f"{step}-outer")
        app._builder.add_store(
            f"{step}-outer",
            ks,
            _tagged_serde(lvs, rvs),
            step=step,
            hint="the input topics (key_serde=..., value_serde=...)",
            kind="window",
            retention_ms=window.retention,
        )
    node = Node(
        step,
        "stream_join",
        (lsrc.name, rsrc.name),
        fn=joiner,
        stores=tuple(stores),
        params=(("how", how), ("window", window), ("on_late", on_late)),
    )
    app._append(node)
    return Stream(app, node, ks, vs, False)


def _copartition(s: Stream, step: str, side: str, partitions: int | None) -> Stream:
    """Repartition ``s`` by its key if an earlier step changed the key."""
    if not s._key_changed:
        return s
    return s._through(
        f"{step}-{side}-repartition",
        f"{step}-{side}",
        s._ks,
        s._vs,
        partitions,
        hint=f"the step before join {step!r} (key_serde=..., value_serde=...)",
    )


def _table_partitions(handle: Any) -> int | None:
    """The declared partition count of the topic a stream or table handle reads, if any."""
    from flows.table_ops import _partitions

    return _partitions(handle._app, handle)


def _list_serde(serde: Any) -> Serde | None:
    if serde is None:
        return None
    enc, dec = list_codec(serde.encode, serde.decode)
    return Serde(f"list[{serde.name}]", enc, dec)


def _tagged_serde(lvs: Any, rvs: Any) -> Serde | None:
    """Unmatched records of both sides: ``[(side, value)]`` with side 0 (left) or 1 (right)."""
    if lvs is None or rvs is None:
        return None
    encoders = (lvs.encode, rvs.encode)
    decoders = (lvs.decode, rvs.decode)

    def enc_item(item: tuple[int, Any]) -> bytes:
        return bytes((item[0],)) + encoders[item[0]](item[1])

    def dec_item(data: bytes) -> tuple[int, Any]:
        return data[0], decoders[data[0]](data[1:])

    enc, dec = list_codec(enc_item, dec_item)
    return Serde(f"unmatched[{lvs.name},{rvs.name}]", enc, dec)
