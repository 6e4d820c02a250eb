"""flows: stream processing for Python in the spirit of Kafka Streams.

Build a topology with :class:`App` and the :class:`Stream` / :class:`Table` handles, test it with
:class:`flows.testing.TopologyTestDriver`, run it with ``flows worker -A module``.
"""

from __future__ import annotations

from core.errors import FlowsError, ProcessingError, TopologyError
from core.windowing import Windowed
from flows.app import App
from flows.grouped import GroupedStream
from flows.processor import Processor, ProcessorContext, Record
from flows.serdes import Serde
from flows.stream import Splitter, Stream
from flows.table import GlobalTable, Table
from flows.windowed import WindowedGroupedStream

__all__ = [
    "App",
    "FlowsError",
    "GlobalTable",
    "GroupedStream",
    "ProcessingError",
    "Processor",
    "ProcessorContext",
    "Record",
    "Serde",
    "Splitter",
    "Stream",
    "Table",
    "TopologyError",
    "Windowed",
    "WindowedGroupedStream",
]
