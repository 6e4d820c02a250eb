"""Page views joined to users, bots dropped, counted per page per minute: the README's demo flow.

Topics (all keyed by user id, except the outputs, keyed by page):

- ``page-views``: one JSON :class:`PageView` per view (``page``, ``timestamp`` in ms...). Its
  ``timestamp`` is the view's event time; without one, the record's own timestamp is used.
- ``users``: one JSON :class:`User` per user (``name``, ``country``, ``plan``, ``is_bot``), read
  as a table: the latest value per user, kept in the ``users`` store.
- ``page-views-per-minute`` (output): JSON ``{"page", "window_start", "window_end", "count"}``,
  the human views of a page in one tumbling minute ``[window_start, window_end)`` (ms), updated
  with every new view.
- ``page-view-counts`` (output): the running total of human views per page (an 8-byte int).

The flow left-joins every view with its user (a view of an unknown user is kept, as a human),
drops the views of users marked ``is_bot``, keys what is left by page (through a repartition
topic, so every page is counted in one place), and counts per page twice: in tumbling 1-minute
windows that accept views up to 5 seconds late (a later one is dropped from the windows and
counted in its task's ``dropped_late_records``), and in total. Both counts live in RocksDB
stores backed by compacted changelog topics. A record that is not valid JSON of the right shape
goes to the ``pipeline-dlq`` topic instead of stopping the worker.

The flow, on the broker-free test driver:

>>> from flows.testing import TopologyTestDriver
>>> with TopologyTestDriver(app) as driver:
...     users = driver.input_topic("users")
...     users.pipe_input("ann", User(name="Ann", country="FR"))
...     users.pipe_input("crawler", User(name="Crawler", is_bot=True))
...     views = driver.input_topic("page-views")
...     views.pipe_input("ann", PageView(page="/docs", timestamp=1_000))
...     views.pipe_input("crawler", PageView(page="/docs", timestamp=2_000))  # a bot: dropped
...     views.pipe_input("bob", PageView(page="/docs", timestamp=30_000))  # unknown: a human
...     views.pipe_input("ann", PageView(page="/", timestamp=62_000))  # the next minute
...     views.pipe_input("bob", PageView(page="/docs", timestamp=58_000))  # late, within grace
...     views.pipe_input("ann", PageView(page="/docs", timestamp=70_000))
...     views.pipe_input("bob", PageView(page="/", timestamp=40_000))  # minute 0 has closed
...     per_minute = driver.output_topic("page-views-per-minute").read_values_to_list()
...     totals = driver.output_topic("page-view-counts").read_key_values_to_map()
>>> for w in per_minute:
...     print(w["page"], w["window_start"], w["window_end"], w["count"])
/docs 0 60000 1
/docs 0 60000 2
/ 60000 120000 1
/docs 0 60000 3
/docs 60000 120000 1
>>> totals  # the running totals have no windows: the late view of / counts there
{'/docs': 4, '/': 2}

Run it (from this directory)::

    flows topics create page-views --partitions 4
    flows topics create users --partitions 4
    flows worker -A pipeline

and feed it, e.g. ``flows demo`` does all of this with sample data. ``page-views`` and ``users``
need the same number of partitions, so that a user's views and the user meet in one task.
"""

from __future__ import annotations

from typing import Any

import msgspec

import flows
from flows import windows


class PageView(msgspec.Struct):
    """One view of ``page``, keyed by the viewing user's id; ``timestamp`` is ms since the epoch."""

    page: str
    timestamp: int | None = None
    referrer: str | None = None
    duration_ms: int = 0


class User(msgspec.Struct):
    """A user, keyed by user id; ``is_bot`` marks crawlers and monitoring probes."""

    name: str
    country: str = ""
    plan: str = "free"
    is_bot: bool = False


class UserView(msgspec.Struct):
    """A page view with what the flow needs of its user (``None`` fields: unknown user)."""

    page: str
    timestamp: int | None = None
    country: str | None = None
    plan: str | None = None
    is_bot: bool = False


def view_time(key: Any, view: PageView | None, record_timestamp: int) -> int:
    """The view's own ``timestamp`` when it has one, else the record's timestamp."""
    if view is not None and view.timestamp is not None:
        return view.timestamp
    return record_timestamp


def with_user(view: PageView, user: User | None) -> UserView:
    if user is None:
        return UserView(view.page, view.timestamp)
    return UserView(view.page, view.timestamp, user.country, user.plan, user.is_bot)


def window_row(window: flows.Windowed, count: int) -> tuple[str, dict[str, Any]]:
    """A windowed count as ``(page, {"page", "window_start", "window_end", "count"})``."""
    row = {"page": window.key, "window_start": window.start, "window_end": window.end}
    return window.key, {**row, "count": count}


PER_MINUTE = windows.tumbling(60, grace=5)

app = flows.App("pipeline", on_deserialization_error="dead_letter")
page_views = app.topic(
    "page-views", key_serde="str", value_serde=PageView, timestamp_extractor=view_time
)
users_topic = app.topic("users", key_serde="str", value_serde=User)
per_minute = app.topic("page-views-per-minute", key_serde="str", value_serde="json")
totals = app.topic("page-view-counts", key_serde="str", value_serde="int")

users = app.table(users_topic, name="users")
human_views_by_page = (
    app.stream(page_views, name="page-views")
    .left_join(users, with_user, name="with-user", value_serde=UserView)
    .filter_not(lambda user_id, view: view.is_bot, name="humans-only")
    .select_key(lambda user_id, view: view.page, name="page-key", key_serde="str")
    .repartition(name="by-page", value_serde=UserView)
)
(
    human_views_by_page.group_by_key(name="per-page")
    .window(PER_MINUTE)
    .count(name="views-per-page-per-minute")
    .to_stream(name="window-changes")
    .map(window_row, name="window-rows")
    .to(per_minute, name="write-windows")
)
(
    human_views_by_page.group_by_key(name="per-page-total")
    .count(name="views-per-page")
    .to_stream(name="count-changes")
    .to(totals, name="write-counts")
)
