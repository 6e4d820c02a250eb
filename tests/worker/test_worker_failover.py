"""Failover and restore: kill -9, restart with local state, standby replicas (real broker)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from conftest import (
    committed_to_end,
    create_topics,
    latest_counts,
    produce,
    read_all,
    restored_counts,
    wait_for,
)
from test_worker_e2e import WORDCOUNT, make_lines, write_app


def _counts_ok(bootstrap: str, expected: dict[str, int], **kw: Any) -> bool:
    return latest_counts(bootstrap, "word-counts", **kw) == expected


def test_kill9_at_least_once_other_worker_takes_over(
    broker: Any, workers: Any, tmp_path: Path
) -> None:
    b = broker.bootstrap
    create_topics(b, {"lines": 4, "word-counts": 4})
    app_file = write_app(tmp_path, WORDCOUNT, app_id="wc-kill")
    records, expected = make_lines(3000, 200)
    w1 = workers(app_file, b, "a", "--commit-interval-ms", "200")
    w2 = workers(app_file, b, "b", "--commit-interval-ms", "200")
    wait_for(
        "both workers to get tasks",
        lambda: "tasks: active ['" in w1.output() and "tasks: active ['" in w2.output(),
    )
    produce(b, "lines", records[:1500])
    # Under at-least-once, work processed but not yet committed when a worker dies is done
    # again (its repartition and changelog records were already written): counts would then
    # legitimately run ahead. Kill w1 once its offsets are committed; the second half arrives
    # while w2 detects the crash and takes over.
    wait_for(
        "first half committed",
        lambda: committed_to_end(b, "wc-kill", ["lines", "wc-kill-by-word-repartition"]),
    )
    mark = len(w2.output())
    w1.kill9()
    produce(b, "lines", records[1500:])
    wait_for("exact latest counts", lambda: _counts_ok(b, expected), timeout=240)
    out = read_all(b, "word-counts")
    # at-least-once: every update is there (maybe twice); the latest value is exact
    assert len(out) >= sum(expected.values())
    assert w2.alive()
    # w2 restored the state of the tasks it took over from their changelogs
    assert sum(restored_counts(w2.output()[mark:])) > 0


def test_restart_restores_only_the_tail(broker: Any, workers: Any, tmp_path: Path) -> None:
    b = broker.bootstrap
    create_topics(b, {"lines": 2, "word-counts": 2})
    app_file = write_app(tmp_path, WORDCOUNT, app_id="wc-restart")
    records, expected = make_lines(2000, 3000)
    produce(b, "lines", records)
    w1 = workers(app_file, b, "a", "--commit-interval-ms", "200")
    wait_for("counts", lambda: _counts_ok(b, expected), timeout=180)
    changelog = "wc-restart-counts-changelog"
    total = wait_for(
        "changelog written",
        lambda: len(read_all(b, changelog)) >= 2000 and len(read_all(b, changelog)),
    )
    w1.kill9()
    more, _ = make_lines(20, 3000, seed=99)
    produce(b, "lines", more)
    w2 = workers(app_file, b, "a", "--commit-interval-ms", "200")  # same state dir
    wait_for("restore finished", lambda: len(restored_counts(w2.output())) >= 2, timeout=180)
    restored = sum(restored_counts(w2.output()))
    assert restored < total // 10, (restored, total)
    w2.terminate()


def test_standby_failover_restores_only_the_tail(broker: Any, workers: Any, tmp_path: Path) -> None:
    b = broker.bootstrap
    create_topics(b, {"lines": 2, "word-counts": 2})
    app_file = write_app(tmp_path, WORDCOUNT, app_id="wc-standby")
    records, expected = make_lines(2000, 3000)
    w1 = workers(app_file, b, "a", "--commit-interval-ms", "200", "--num-standby-replicas", "1")
    w2 = workers(app_file, b, "b", "--commit-interval-ms", "200", "--num-standby-replicas", "1")
    wait_for(
        "standbys placed",
        lambda: (
            "standby ['" in w1.output().split("tasks: active")[-1]
            and "standby ['" in w2.output().split("tasks: active")[-1]
        ),
    )
    produce(b, "lines", records)
    wait_for("counts", lambda: _counts_ok(b, expected), timeout=180)
    changelog = "wc-standby-counts-changelog"
    total = wait_for(
        "changelog written",
        lambda: len(read_all(b, changelog)) >= 2000 and len(read_all(b, changelog)),
    )
    w1.kill9()
    mark = len(w2.output())
    wait_for(
        "w2 runs all tasks",
        lambda: "tasks: active ['0_0', '0_1', '1_0', '1_1']" in w2.output()[mark:],
        timeout=180,
    )
    more, more_expected = make_lines(50, 3000, seed=5)
    produce(b, "lines", more)
    final = dict(expected)
    for k, v in more_expected.items():
        final[k] = final.get(k, 0) + v
    wait_for("counts after failover", lambda: _counts_ok(b, final), timeout=180)
    # the promoted standbys restored only what they had not yet applied
    restored = restored_counts(w2.output()[mark:])
    assert restored, "no restore after failover"
    assert sum(restored) < total // 10, (restored, total)


def test_kill9_exactly_once_no_duplicates_no_loss(
    broker: Any, workers: Any, tmp_path: Path
) -> None:
    b = broker.bootstrap
    create_topics(b, {"lines": 4, "word-counts": 4})
    app_file = write_app(tmp_path, WORDCOUNT, app_id="wc-eos")
    records, expected = make_lines(3000, 200)
    eos = ("--processing-guarantee", "exactly_once")
    w1 = workers(app_file, b, "a", *eos)
    w2 = workers(app_file, b, "b", *eos)
    wait_for(
        "both workers to get tasks",
        lambda: "tasks: active ['" in w1.output() and "tasks: active ['" in w2.output(),
    )
    produce(b, "lines", records[:1500])
    committed = {"isolation_level": "read_committed"}
    wait_for("first half processed", lambda: len(read_all(b, "word-counts", **committed)) > 1000)
    w1.kill9()
    produce(b, "lines", records[1500:])
    wait_for("exact latest counts", lambda: _counts_ok(b, expected, **committed), timeout=240)
    # every count 1..n appears exactly once per word: no duplicate, no gap
    seen: dict[str, list[int]] = {}
    for r in sorted(read_all(b, "word-counts", **committed), key=lambda r: (r.partition, r.offset)):
        seen.setdefault(r.key.decode(), []).append(int.from_bytes(r.value, "big"))
    assert seen == {w: list(range(1, n + 1)) for w, n in expected.items()}
    assert w2.alive()
