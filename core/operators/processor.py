"""The Processor API at run time: ``Record``, the per-task context, and the batch segment."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from core.errors import ProcessingError

if TYPE_CHECKING:
    from core.compiler import PhysNode
    from core.task import Task

Batch = list[tuple[Any, Any, int, Any]]


@dataclass(slots=True)
class Record:
    """One record as a processor sees it; timestamps are ms since the epoch."""

    key: Any
    value: Any
    timestamp: int = 0
    headers: Any = None

    def with_value(self, value: Any) -> Record:
        return replace(self, value=value)

    def with_key(self, key: Any) -> Record:
        return replace(self, key=key)


class Context:
    """What a processor's ``process(record, ctx)`` and ``init(ctx)`` may use."""

    def __init__(self, task: Task, node: PhysNode) -> None:
        self._task = task
        self._node = node
        self._out: Batch = []
        self.emit: Callable[[], None] = lambda: None
        self.task_id = task.id
        self.partition = task.partition

    def forward(self, record: Record) -> None:
        """Send ``record`` to the next steps (after the current batch or punctuation)."""
        self._out.append((record.key, record.value, record.timestamp, record.headers))

    def store(self, name: str) -> Any:
        """A store listed in this step's ``stores=`` (or a global table's store)."""
        if name not in self._node.stores:
            raise ProcessingError(
                f"step {self._node.name!r} uses store {name!r} without declaring it: pass "
                f"stores=[{name!r}] to process()",
                step=self._node.name,
                task=self._task.id,
            )
        return self._task.store_view(name)

    def schedule(
        self, interval: float | timedelta, kind: str, fn: Callable[[int], None]
    ) -> Callable[[], None]:
        """Call ``fn(timestamp_ms)`` every ``interval`` seconds of stream time or wall-clock
        time; returns a function that cancels the schedule."""
        seconds = interval.total_seconds() if isinstance(interval, timedelta) else interval
        if kind not in ("stream_time", "wall_clock"):
            raise ProcessingError(
                f"step {self._node.name!r}: schedule() kind must be 'stream_time' or "
                f"'wall_clock', got {kind!r}",
                step=self._node.name,
            )
        if not seconds or seconds <= 0:
            raise ProcessingError(
                f"step {self._node.name!r}: schedule() interval must be positive, got {interval!r}",
                step=self._node.name,
            )
        return self._task.schedule(int(seconds * 1000), kind, fn, self.emit, self._node.name)

    @property
    def stream_time(self) -> int:
        return self._task.stream_time

    @property
    def wall_clock(self) -> int:
        return self._task.wall_clock


def make_process(
    task: Task, node: PhysNode, children: list[Callable[[Batch], None]]
) -> Callable[[Batch], None]:
    """Instantiate the processor for this task and return its batch function."""
    factory = node.node.fn
    assert factory is not None
    processor = factory()
    ctx = Context(task, node)
    out = ctx._out

    def emit() -> None:
        if out:
            batch = out[:]
            out.clear()
            for child in children:
                child(batch)

    ctx.emit = emit
    init = getattr(processor, "init", None)
    if callable(init):
        init(ctx)
    process = processor.process
    task.on_close(getattr(processor, "close", None))

    def push(batch: Batch) -> None:
        for k, v, ts, h in batch:
            process(Record(k, v, ts, h), ctx)
        emit()

    return push
