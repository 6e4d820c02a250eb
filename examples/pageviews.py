"""Page views per page, ignoring admin pages.

``pageviews`` carries one JSON ``PageView`` per view, keyed by user; the flow regroups by page
and keeps a running count per page in the ``views-per-page`` store, writing every new count to
``pageview-counts``. Run it with ``flows worker -A examples.pageviews``.
"""

from __future__ import annotations

import msgspec

import flows


class PageView(msgspec.Struct):
    user: str
    page: str
    duration_ms: int = 0


app = flows.App("pageviews")
views = app.topic("pageviews", key_serde="str", value_serde=PageView)
page_counts = app.topic("pageview-counts", key_serde="str", value_serde="int")

(
    app.stream(views)
    .filter_not(lambda user, view: view.page.startswith("/admin"), name="public-only")
    .group_by(lambda user, view: view.page, name="by-page", key_serde="str", value_serde=PageView)
    .count(name="views-per-page")
    .to_stream(name="count-changes")
    .to(page_counts, name="write-counts")
)
