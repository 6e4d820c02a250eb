"""The Processor API: custom per-record logic with state and scheduled callbacks.

A processor is an object with ``process(record, ctx)`` (optionally ``init(ctx)`` and
``close()``), a class or zero-argument factory making one (a fresh instance per task), or a
plain function ``fn(record, ctx)``. ``ctx.forward(record)`` sends a record downstream,
``ctx.store(name)`` returns a store declared with ``app.store`` and listed in ``stores=``, and
``ctx.schedule(interval_seconds, "stream_time" | "wall_clock", fn)`` calls ``fn(timestamp_ms)``.

>>> import flows
>>> from flows.testing import TopologyTestDriver
>>> app = flows.App("doc-proc")
>>> seen = app.store("seen", key_serde="str", value_serde="int")
>>> class Dedup:
...     def process(self, record, ctx):
...         store = ctx.store("seen")
...         if store.get(record.value) is None:
...             store.put(record.value, 1)
...             ctx.forward(record)
>>> out = app.topic("out", value_serde="str")
>>> app.stream(app.topic("in", value_serde="str")).process(Dedup, stores=[seen]).to(out)
>>> with TopologyTestDriver(app) as driver:
...     for v in ["x", "y", "x"]:
...         driver.input_topic("in").pipe_input(v)
...     driver.output_topic("out").read_values_to_list()
['x', 'y']
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, Protocol

from core.errors import TopologyError
from core.operators.processor import Record

__all__ = ["Processor", "ProcessorContext", "Record", "processor_factory"]


class ProcessorContext(Protocol):
    task_id: str
    partition: int

    def forward(self, record: Record) -> None: ...

    def store(self, name: str) -> Any: ...

    def schedule(
        self, interval: float, kind: str, fn: Callable[[int], None]
    ) -> Callable[[], None]: ...

    @property
    def stream_time(self) -> int: ...

    @property
    def wall_clock(self) -> int: ...


class Processor(Protocol):
    def process(self, record: Record, ctx: ProcessorContext) -> None: ...


class _FunctionProcessor:
    def __init__(self, fn: Callable[[Record, Any], None]) -> None:
        self.process = fn


def processor_factory(processor: Any) -> Callable[[], Any]:
    """Normalise the accepted processor shapes into a factory called once per task."""
    if isinstance(processor, type):
        if not callable(getattr(processor, "process", None)):
            raise TopologyError(
                f"processor class {processor.__name__} has no process(record, ctx) method"
            )
        return processor
    if callable(getattr(processor, "process", None)):
        return lambda: processor
    if callable(processor):
        try:
            params = [
                p
                for p in inspect.signature(processor).parameters.values()
                if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
            ]
        except (TypeError, ValueError):
            params = []
        if len(params) == 2:
            return lambda: _FunctionProcessor(processor)
        return processor
    raise TopologyError(
        f"process() needs a processor (an object with process(record, ctx), a class or a "
        f"factory of one, or a function fn(record, ctx)), got {processor!r}"
    )
