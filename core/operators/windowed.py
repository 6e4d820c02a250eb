"""Windowed aggregations over time windows: tumbling / hopping, and sliding windows.

Each is one batch function per task: per record it advances the step's observed stream time,
drops the record if every window it belongs to has closed (beyond grace; counted in the task's
``dropped_late_records`` or handed to ``on_late(key, value, timestamp)``), and otherwise
updates each open window in the window store (a per-key dict in memory; no encoding per
record) and forwards ``(Windowed(key, start, end), aggregate)``. Windows older than the store's
retention are expired once per batch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from core.windowing import Windowed, WindowSpec

if TYPE_CHECKING:
    from core.compiler import PhysNode
    from core.task import Task

Batch = list[Any]
Push = Callable[[Batch], None]
_MISS: Any = object()


def _late(task: Task, node: PhysNode) -> Callable[[Any, Any, int], None] | None:
    return node.node.param("on_late")


def make_window_aggregate(task: Task, node: PhysNode, children: list[Push]) -> Push:
    """Tumbling and hopping windows ``[start, start + size)``."""
    spec: WindowSpec = node.node.param("window")
    store = task.caches[node.stores[0]]
    init: Any = node.node.fn
    add: Any = node.node.fn2
    is_count = node.node.param("op") == "count"
    on_late = _late(task, node)
    grace, retention = spec.grace, spec.retention
    windows_for = spec.windows_for
    size = spec.size
    single = spec.size == spec.advance
    store.point_only()
    get, load, put, expire = store.get, store.load, store.put, store.expire
    clock = [-1]

    def push(batch: Batch) -> None:
        out: Batch = []
        append = out.append
        st = clock[0]
        late = 0
        values, dirty = store.hot()
        lookup = values.get
        for k, v, ts, h in batch:
            if k is None or v is None:
                continue
            if ts > st:
                st = ts
            if single:
                start = ts - ts % size
                end = start + size
                if end + grace > st and is_count:  # the common case, inlined
                    ks = (k, start)
                    agg = lookup(ks, _MISS)
                    if agg is _MISS:  # not cached: read the store (or know it is a new window)
                        agg = load(k, start)
                        agg = 1 if agg is None else agg + 1
                        put(k, start, agg)
                    elif agg is None:  # cached as absent (or deleted)
                        agg = 1
                        put(k, start, agg)
                    else:
                        agg += 1
                        values[ks] = agg
                        dirty[ks] = None
                    append((Windowed(k, start, end), agg, ts, h))
                    continue
                wins = [(start, end)] if end + grace > st else []
            else:
                wins = [w for w in windows_for(ts) if w[1] + grace > st]
            if not wins:
                late += 1
                if on_late is not None:
                    on_late(k, v, ts)
                continue
            for start, end in wins:
                ks = (k, start)
                agg = lookup(ks, _MISS)
                hit = agg is not _MISS and agg is not None
                if agg is _MISS:
                    agg = get(k, start)
                if is_count:
                    agg = 1 if agg is None else agg + 1
                else:
                    if agg is None and init is not None:
                        agg = init()
                    agg = add(k, v, agg)
                if hit:
                    values[ks] = agg
                    dirty[ks] = None
                else:
                    put(k, start, agg)
                append((Windowed(k, start, end), agg, ts, h))
        clock[0] = st
        if late:
            task.dropped_late_records += late
        expire(st - retention)
        if out:
            for child in children:
                child(out)

    return push


def make_sliding_aggregate(task: Task, node: PhysNode, children: list[Push]) -> Push:
    """Sliding windows ``[end - max_difference, end]``, one per distinct set of records.

    As in Kafka Streams, each record at ``t`` has a left window ``[t - d, t]`` and, if later
    records fall in it, a right window ``[t + 1, t + 1 + d]``. The step keeps the records of the
    open windows (a second window store, keyed by record time) and recomputes the aggregate of
    every window the new record falls in, so any aggregator works without a subtractor.
    Windows are stored by their end (their start may be before 0 for early records).
    """
    spec: WindowSpec = node.node.param("window")
    aggs = task.caches[node.stores[0]]
    records = task.caches[node.stores[1]]
    init: Any = node.node.fn
    add: Any = node.node.fn2
    on_late = _late(task, node)
    d, grace = spec.size, spec.grace
    clock = [-1]

    def fold(key: Any, recs: dict[int, list[Any]], lo: int, hi: int) -> tuple[bool, Any]:
        agg = init() if init is not None else None
        found = False
        for t in sorted(t for t in recs if lo <= t <= hi):
            for value in recs[t]:
                agg = add(key, value, agg)
                found = True
        return found, agg

    def push(batch: Batch) -> None:
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
            recs = records.entries(k)
            records.put(k, ts, [*recs.get(ts, ()), v])
            recs = records.entries(k)
            ends: set[int] = set()
            for t in recs:
                if ts <= t <= ts + d:
                    ends.add(t)  # left window of t contains ts
                if t + 1 <= ts <= t + 1 + d:
                    ends.add(t + 1 + d)  # right window of t contains ts
            if any(ts < t <= ts + 1 + d for t in recs):
                ends.add(ts + 1 + d)  # the new record's own right window
            for end in sorted(ends):
                if end + grace < st:
                    continue
                found, agg = fold(k, recs, end - d, end)
                if not found:
                    continue
                aggs.put(k, end, agg)
                out.append((Windowed(k, max(0, end - d), end), agg, ts, h))
        clock[0] = st
        if late:
            task.dropped_late_records += late
        aggs.expire(st - d - grace - 1)
        records.expire(st - 2 * d - grace - 2)
        if out:
            for child in children:
                child(out)

    return push
