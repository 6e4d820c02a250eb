"""Joins: stream-table, stream-global-table, table-table and windowed stream-stream.

Stream-table joins read the table's store (its write-back cache) per stream record; the table's
own updates produce nothing. Table-table joins follow Kafka Streams' KTable-KTable semantics:
an update on one side is joined with the other side's current value, and a delete produces a
tombstone (inner: only if the other side has a value; left: when the left side is deleted;
outer: when both sides are then empty). Stream-stream joins buffer both sides in window stores
and join a record with every record of the other side whose time is within ``max_difference``;
for left/outer joins, a record that found no partner is emitted with ``None`` only once its join
window has closed (stream time past its time + max_difference + grace), never as an early
spurious result (as in Kafka 3.x).
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from core.windowing import WindowSpec

if TYPE_CHECKING:
    from core.compiler import PhysNode
    from core.task import Task

Batch = list[Any]
Push = Callable[[Batch], None]


def _send(children: list[Push], out: Batch) -> None:
    if out:
        for child in children:
            child(out)


def make_stream_table_join(task: Task, node: PhysNode, children: list[Push]) -> Push:
    """``stream.join(table)`` / ``left_join``: look each stream record's key up in the table."""
    get = task.caches[node.stores[0]].get
    joiner: Any = node.node.fn
    inner = node.node.param("how") == "inner"

    def push(batch: Batch) -> None:
        out: Batch = []
        append = out.append
        for k, v, ts, h in batch:
            if k is None or v is None:
                continue
            other = get(k)
            if other is None and inner:
                continue
            append((k, joiner(v, other), ts, h))
        _send(children, out)

    return push


def make_global_join(task: Task, node: PhysNode, children: list[Push]) -> Push:
    """``stream.join(global_table, joiner, key_selector=fn)``: look up ``fn(key, value)``."""
    view = task.store_view(node.stores[0])
    joiner: Any = node.node.fn
    selector: Any = node.node.fn2
    inner = node.node.param("how") == "inner"

    def push(batch: Batch) -> None:
        out: Batch = []
        append = out.append
        get = view.get
        for k, v, ts, h in batch:
            if v is None:
                continue
            gk = selector(k, v)
            other = None if gk is None else get(gk)
            if other is None and inner:
                continue
            append((k, joiner(v, other), ts, h))
        _send(children, out)

    return push


def make_table_join(task: Task, node: PhysNode, children: list[Push]) -> dict[str, Push]:
    """Table-table join; returns one entry point per input (left, right)."""
    left_get = task.caches[node.stores[0]].get
    right_get = task.caches[node.stores[1]].get
    joiner: Any = node.node.fn
    how = node.node.param("how")

    def left(batch: Batch) -> None:
        out: Batch = []
        for k, v, ts, h in batch:
            other = right_get(k)
            if how == "inner":
                if other is None:
                    continue
                out.append((k, None if v is None else joiner(v, other), ts, h))
            elif how == "left":
                out.append((k, None if v is None else joiner(v, other), ts, h))
            else:
                both_gone = v is None and other is None
                out.append((k, None if both_gone else joiner(v, other), ts, h))
        _send(children, out)

    def right(batch: Batch) -> None:
        out: Batch = []
        for k, v, ts, h in batch:
            other = left_get(k)
            if how == "inner":
                if other is None:
                    continue
                out.append((k, None if v is None else joiner(other, v), ts, h))
            elif how == "left":
                if other is None:
                    continue
                out.append((k, joiner(other, v), ts, h))
            else:
                both_gone = v is None and other is None
                out.append((k, None if both_gone else joiner(other, v), ts, h))
        _send(children, out)

    return {node.parents[0]: left, node.parents[1]: right}


def make_stream_join(task: Task, node: PhysNode, children: list[Push]) -> dict[str, Push]:
    """Windowed stream-stream join; returns one entry point per input (left, right)."""
    spec: WindowSpec = node.node.param("window")
    how = node.node.param("how")
    joiner: Any = node.node.fn
    on_late = node.node.param("on_late")
    bufs = (task.caches[node.stores[0]], task.caches[node.stores[1]])
    outer = task.caches[node.stores[2]] if len(node.stores) > 2 else None
    keeps_unmatched = (True, how == "outer")  # which sides wait for a partner (left, right)
    d, grace = spec.size, spec.grace
    clock = [-1]
    pending: list[tuple[int, int, Any]] = []  # (time, seq, key) of unmatched records
    seq = itertools.count()
    loaded = [outer is None]

    def load() -> None:
        loaded[0] = True
        assert outer is not None
        for k, t, _ in outer.items():
            heapq.heappush(pending, (t, next(seq), k))

    def emit_unmatched(st: int, out: Batch) -> None:
        assert outer is not None
        while pending and pending[0][0] + d + grace < st:
            t, _, k = heapq.heappop(pending)
            entries = outer.get(k, t)
            if not entries:
                continue
            outer.put(k, t, None)
            for side, value in entries:
                result = joiner(value, None) if side == 0 else joiner(None, value)
                out.append((k, result, t, None))

    def side(me: int) -> Push:
        mine, theirs = bufs[me], bufs[1 - me]

        def push(batch: Batch) -> None:
            if not loaded[0]:
                load()
            out: Batch = []
            st = clock[0]
            late = 0
            for k, v, ts, h in batch:
                if k is None or v is None:
                    continue
                if ts > st:
                    st = ts
                if ts + d + grace < st:
                    late += 1
                    if on_late is not None:
                        on_late(k, v, ts)
                    continue
                mine.put(k, ts, [*(mine.get(k, ts) or ()), v])
                matched = False
                for t2, values in theirs.fetch(k, ts - d, ts + d):
                    for v2 in values:
                        result = joiner(v, v2) if me == 0 else joiner(v2, v)
                        out.append((k, result, max(ts, t2), h))
                        matched = True
                    if outer is not None:
                        waiting = outer.get(k, t2)
                        if waiting:
                            rest = [e for e in waiting if e[0] == me]
                            outer.put(k, t2, rest or None)
                if not matched and outer is not None and keeps_unmatched[me]:
                    waiting = outer.get(k, ts)
                    if not waiting:
                        heapq.heappush(pending, (ts, next(seq), k))
                    outer.put(k, ts, [*(waiting or ()), (me, v)])
                if outer is not None:
                    emit_unmatched(st, out)
            clock[0] = st
            if late:
                task.dropped_late_records += late
            cutoff = st - 2 * d - grace - 1
            bufs[0].expire(cutoff)
            bufs[1].expire(cutoff)
            _send(children, out)

        return push

    return {node.parents[0]: side(0), node.parents[1]: side(1)}
