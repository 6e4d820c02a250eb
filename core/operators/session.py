"""Session-windowed aggregation: per key, records closer than the inactivity gap share a session.

A record at ``t`` merges every session of its key that ends at or after ``t - gap`` and starts
at or before ``t + gap`` into one: their aggregates are combined with the ``merger`` (after the
``initializer``), the record is added, the merged-away sessions are retracted downstream with
tombstones and the new session is forwarded, as in Kafka Streams. A record whose merged session
would end before stream time minus grace is late.
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


def make_session_aggregate(task: Task, node: PhysNode, children: list[Push]) -> Push:
    spec: WindowSpec = node.node.param("window")
    sessions = task.caches[node.stores[0]]
    init: Any = node.node.fn
    add: Any = node.node.fn2
    merger: Callable[[Any, Any, Any], Any] = node.node.param("merger")
    on_late = node.node.param("on_late")
    gap, grace, retention = spec.size, spec.grace, spec.retention
    find, put = sessions.find, sessions.put
    clock = [-1]

    def push(batch: Batch) -> None:
        out: Batch = []
        append = out.append
        st = clock[0]
        late = 0
        for k, v, ts, h in batch:
            if k is None or v is None:
                continue
            if ts > st:
                st = ts
            found = find(k, ts - gap, ts + gap)
            start = min([ts, *(s for (s, _), _ in found)])
            end = max([ts, *(e for (_, e), _ in found)])
            if end + grace < st:
                late += 1
                if on_late is not None:
                    on_late(k, v, ts)
                continue
            agg = init() if init is not None else None
            for (s, e), value in found:
                agg = value if agg is None else merger(k, agg, value)
                put(k, (s, e), None)
                if (s, e) != (start, end):
                    append((Windowed(k, s, e), None, ts, h))
            agg = add(k, v, agg)
            put(k, (start, end), agg)
            append((Windowed(k, start, end), agg, ts, h))
        clock[0] = st
        if late:
            task.dropped_late_records += late
        sessions.expire(st - retention)
        if out:
            for child in children:
                child(out)

    return push
