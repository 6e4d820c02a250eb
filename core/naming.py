"""Deterministic step names, and the store and internal topic names derived from them.

A generated name depends only on the order in which steps are added to the app, like Kafka
Streams' ``KSTREAM-FILTER-0000000003``; naming a step (``name=``) makes it independent of that
order. Store and internal topic names derive from step names, so renaming a step is visibly a
state-breaking change.
"""

from __future__ import annotations

import re

from core.errors import TopologyError

_LABELS = {
    "source": "KSTREAM-SOURCE",
    "filter": "KSTREAM-FILTER",
    "filter_not": "KSTREAM-FILTER",
    "map": "KSTREAM-MAP",
    "map_values": "KSTREAM-MAPVALUES",
    "flat_map": "KSTREAM-FLATMAP",
    "flat_map_values": "KSTREAM-FLATMAPVALUES",
    "select_key": "KSTREAM-KEY-SELECT",
    "peek": "KSTREAM-PEEK",
    "foreach": "KSTREAM-FOREACH",
    "split": "KSTREAM-BRANCH",
    "branch": "KSTREAM-BRANCHCHILD",
    "merge": "KSTREAM-MERGE",
    "sink": "KSTREAM-SINK",
    "repartition": "KSTREAM-REPARTITION",
    "process": "KSTREAM-PROCESSOR",
    "aggregate": "KSTREAM-AGGREGATE",
    "table_source": "KTABLE-SOURCE",
    "table_filter": "KTABLE-FILTER",
    "table_filter_not": "KTABLE-FILTER",
    "table_map_values": "KTABLE-MAPVALUES",
    "to_stream": "KTABLE-TOSTREAM",
    "global_table": "KTABLE-GLOBAL",
    "window_aggregate": "KSTREAM-AGGREGATE",
    "sliding_aggregate": "KSTREAM-AGGREGATE",
    "session_aggregate": "KSTREAM-AGGREGATE",
    "suppress": "KTABLE-SUPPRESS",
    "stream_table_join": "KSTREAM-JOIN",
    "global_join": "KSTREAM-JOIN",
    "stream_join": "KSTREAM-JOIN",
    "table_join": "KTABLE-JOIN",
    "fk_join": "KTABLE-FK-JOIN",
}

_LEGAL = re.compile(r"^[A-Za-z0-9._-]{1,200}$")


class Namer:
    """Hands out ``<LABEL>-<10-digit counter>`` names in step-creation order."""

    def __init__(self) -> None:
        self._counter = 0

    def next(self, kind: str) -> str:
        label = _LABELS.get(kind, "KSTREAM-" + kind.upper().replace("_", ""))
        name = f"{label}-{self._counter:010d}"
        self._counter += 1
        return name

    def name(self, kind: str, given: str | None) -> str:
        """``given`` if the user named the step (checked), else a generated name."""
        if given is None:
            return self.next(kind)
        check_name(given, what="step")
        self._counter += 1
        return given


def check_name(name: object, *, what: str) -> None:
    """Step, store and app names end up in topic names, so they must be legal topic chars."""
    if not isinstance(name, str) or not _LEGAL.match(name):
        raise TopologyError(
            f"{what} name {name!r} is not valid: use 1-200 characters from "
            f"letters, digits, '.', '_' and '-' (it becomes part of topic names)",
            step=name if isinstance(name, str) else None,
        )


def changelog_topic(app_id: str, store: str) -> str:
    """``<app-id>-<store>-changelog``: the compacted topic a store's changes go to."""
    return f"{app_id}-{store}-changelog"


def repartition_topic(app_id: str, step: str) -> str:
    """``<app-id>-<step>-repartition``: the internal topic a repartition step writes."""
    return f"{app_id}-{step}-repartition"
