"""``suppress(until_window_closes=True)``: one final result per window.

Updates of a windowed table are buffered (latest value per window, in a key-value store that
is changelogged like any other, so a restarted task still emits its pending finals) and a
window's value is forwarded once, when stream time reaches the window's close time (end plus
grace). With ``wall_clock=True`` the wall clock closes windows too, through a wall-clock
punctuation, so an idle input still gets its final results.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from core.windowing import Windowed, WindowSpec

if TYPE_CHECKING:
    from core.compiler import PhysNode
    from core.task import Task

Batch = list[Any]
Push = Callable[[Batch], None]


def make_suppress(task: Task, node: PhysNode, children: list[Push]) -> Push:
    spec: WindowSpec = node.node.param("window")
    buffer = task.caches[node.stores[0]]
    close = spec.close_time
    heap: list[tuple[int, int, Windowed]] = []
    seq = itertools.count()
    last_ts: dict[Windowed, int] = {}
    out: Batch = []
    clock = [-1]
    loaded = [False]

    def load() -> None:
        loaded[0] = True
        for wk, _ in buffer.items():
            heapq.heappush(heap, (close(wk.start, wk.end), next(seq), wk))

    def evict(now: int) -> None:
        while heap and heap[0][0] <= now:
            _, _, wk = heapq.heappop(heap)
            value = buffer.get(wk)
            if value is None:
                continue  # already emitted, or retracted (a merged session)
            buffer.delete(wk)
            out.append((wk, value, last_ts.pop(wk, wk.start), None))

    def emit() -> None:
        if out:
            batch = out[:]
            out.clear()
            for child in children:
                child(batch)

    def push(batch: Batch) -> None:
        if not loaded[0]:
            load()
        st = max(clock[0], task.stream_time)
        for wk, v, ts, _h in batch:
            if ts > st:
                st = ts
            if v is None:
                buffer.delete(wk)
                last_ts.pop(wk, None)
                continue
            if buffer.get(wk) is None:
                heapq.heappush(heap, (close(wk.start, wk.end), next(seq), wk))
            buffer.put(wk, v)
            last_ts[wk] = ts
        clock[0] = st
        evict(st)
        emit()

    if node.node.param("wall_clock"):

        def on_wall_clock(now: int) -> None:
            if not loaded[0]:
                load()
            evict(now)

        task.schedule(
            int(node.node.param("interval_ms") or 1000),
            "wall_clock",
            on_wall_clock,
            emit,
            node.name,
        )
    return push
