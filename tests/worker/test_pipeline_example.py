"""examples/pipeline.py (the demo's flow) through ``flows worker`` on the included broker.

Page views with explicit event times are joined to a users table, bots dropped and counted per
page per minute. The input goes in three rounds, each waited for, so that whether a view is late
does not depend on how the worker interleaves partitions: within a round no window can close
(a round spans at most one minute plus the grace), and the late view of the last round is for a
page whose partition has already seen a view after its window closed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from conftest import REPO_ROOT, create_topics, produce, read_all, wait_for

PIPELINE = REPO_ROOT / "examples" / "pipeline.py"
MIN = 60_000

USERS = {
    "ann": {"name": "Ann", "country": "FR", "plan": "pro"},
    "bob": {"name": "Bob", "country": "DE", "plan": "free"},
    "crawler": {"name": "Crawler", "is_bot": True},
    "probe": {"name": "Uptime probe", "plan": "internal", "is_bot": True},
}

# (user, page, ms after the first minute's start); "zoe" has no user record: she counts
ROUND_1 = [
    ("ann", "/docs", 1_000),
    ("crawler", "/docs", 2_000),
    ("bob", "/", 3_000),
    ("zoe", "/docs", 30_000),
    ("probe", "/", 40_000),
    ("ann", "/pricing", 59_999),
    ("bob", "/docs", MIN + 1_000),
    ("ann", "/docs", 50_000),
]
ROUND_2 = [
    ("bob", "/docs", MIN + 6_000),
    ("ann", "/", MIN + 10_000),
    ("crawler", "/", MIN + 20_000),
    ("zoe", "/pricing", MIN + 30_000),
    ("ann", "/docs", 2 * MIN - 1),
]
ROUND_3 = [("bob", "/docs", 10_000)]  # its minute closed at 65 s: counted in the total only

EXPECTED_WINDOWS = {
    ("/docs", 0): 3,
    ("/", 0): 1,
    ("/pricing", 0): 1,
    ("/docs", MIN): 3,
    ("/", MIN): 1,
    ("/pricing", MIN): 1,
}
EXPECTED_TOTALS = {"/docs": 7, "/": 2, "/pricing": 2}


def _views(base: int, views: list[tuple[str, str, int]]) -> list[tuple[bytes | None, bytes | None]]:
    return [
        (user.encode(), json.dumps({"page": page, "timestamp": base + at}).encode())
        for user, page, at in views
    ]


def _windows(bootstrap: str, base: int) -> tuple[int, dict[tuple[str, int], int]]:
    """How many window updates there are, and the latest count per (page, minute offset)."""
    records = sorted(
        read_all(bootstrap, "page-views-per-minute"), key=lambda r: (r.partition, r.offset)
    )
    latest: dict[tuple[str, int], int] = {}
    for r in records:
        row = json.loads(r.value)
        assert r.key.decode() == row["page"]
        assert row["window_end"] - row["window_start"] == MIN
        latest[(row["page"], row["window_start"] - base)] = row["count"]
    return len(records), latest


def _updates_reach(bootstrap: str, base: int, n: int) -> Callable[[], bool]:
    return lambda: _windows(bootstrap, base)[0] >= n


def _totals(bootstrap: str) -> tuple[int, dict[str, int]]:
    records = sorted(read_all(bootstrap, "page-view-counts"), key=lambda r: (r.partition, r.offset))
    return len(records), {
        r.key.decode(): int.from_bytes(r.value, "big", signed=True) for r in records
    }


def test_pipeline_counts_human_views_per_page_and_minute(broker: Any, workers: Any) -> None:
    b = broker.bootstrap
    topics = ["page-views", "users", "page-views-per-minute", "page-view-counts"]
    create_topics(b, dict.fromkeys(topics, 2))
    base = (int(time.time() * 1000) // MIN - 10) * MIN  # recent, so retention keeps it
    worker = workers(PIPELINE, b, "a", "--commit-interval-ms", "300")
    # internal topics exist once the worker has its tasks (reading them earlier would
    # auto-create them with the wrong partition count)
    wait_for("the worker's tasks", lambda: "tasks: active ['" in worker.output())
    users: list[tuple[bytes | None, bytes | None]] = [
        (k.encode(), json.dumps(v).encode()) for k, v in USERS.items()
    ]
    produce(b, "users", users)
    # the table must be complete before views arrive, for a deterministic join
    wait_for(
        "the users table changelog",
        lambda: len(read_all(b, "pipeline-users-changelog")) >= len(USERS),
    )

    humans = 0
    for views in (ROUND_1, ROUND_2):
        produce(b, "page-views", _views(base, views))
        humans += sum(user not in ("crawler", "probe") for user, _, _ in views)
        wait_for(f"{humans} window updates", _updates_reach(b, base, humans))
    produce(b, "page-views", [*_views(base, ROUND_3), (b"ann", b"not a page view")])
    wait_for("the late view's total", lambda: _totals(b)[0] >= humans + len(ROUND_3))
    wait_for("the bad record in pipeline-dlq", lambda: read_all(b, "pipeline-dlq"))

    updates, latest = _windows(b, base)
    assert latest == EXPECTED_WINDOWS
    assert updates == humans  # one update per human view in its window, none for the late one
    assert _totals(b) == (humans + len(ROUND_3), EXPECTED_TOTALS)
    dead = read_all(b, "pipeline-dlq")
    assert [(r.key, r.value) for r in dead] == [(b"ann", b"not a page view")]
    assert worker.alive()
    assert worker.terminate() == 0
