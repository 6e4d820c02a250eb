"""Page views counted per page: the flow the README's demo runs.

``page-views`` carries one JSON page view per record, keyed by user. The flow drops bots, keys
each view by its page (through a repartition topic, so every page is counted in one place),
keeps a running count per page in the ``views-per-page`` store (RocksDB, backed by a compacted
changelog topic), and writes every new count to ``page-view-counts``. A record that is not a
valid page view goes to the ``pipeline-dlq`` topic instead of stopping the worker.

Run it (from this directory)::

    flows topics create page-views --partitions 4
    flows worker -A pipeline

and feed it, e.g. ``flows demo`` does all of this with sample data.
"""

from __future__ import annotations

import msgspec

import flows


class PageView(msgspec.Struct):
    user: str
    page: str
    agent: str = "browser"
    duration_ms: int = 0


app = flows.App("pipeline", on_deserialization_error="dead_letter")
views = app.topic("page-views", key_serde="str", value_serde=PageView)
counts = app.topic("page-view-counts", key_serde="str", value_serde="int")

(
    app.stream(views)
    .filter_not(lambda user, view: view.agent == "bot", name="humans-only")
    .group_by(lambda user, view: view.page, name="by-page", key_serde="str", value_serde=PageView)
    .count(name="views-per-page")
    .to_stream(name="count-changes")
    .to(counts, name="write-counts")
)
