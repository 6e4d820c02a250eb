"""End-to-end: word count over two workers, /metrics, dead-letter handling (real broker)."""

from __future__ import annotations

import collections
import json
import random
import shutil
from pathlib import Path
from typing import Any

from conftest import (
    create_topics,
    free_port,
    latest_counts,
    metric_sum,
    metrics_text,
    produce,
    read_all,
    wait_for,
)

WORDCOUNT = """
import flows
app = flows.App("{app_id}")
lines = app.topic("lines", value_serde="str")
counts = app.topic("word-counts", key_serde="str", value_serde="int")
(app.stream(lines)
    .flat_map_values(lambda line: line.lower().split(), name="split")
    .group_by(lambda key, word: word, name="by-word", key_serde="str", value_serde="str")
    .count(name="counts")
    .to_stream(name="count-changes")
    .to(counts, name="write-counts"))
"""


def write_app(tmp_path: Path, source: str, name: str = "flow_app.py", **fmt: Any) -> Path:
    path = tmp_path / name
    path.write_text(source.format(**fmt))
    return path


def make_lines(n: int, vocabulary: int, seed: int = 7) -> tuple[list[tuple[bytes, bytes]], dict]:
    rng = random.Random(seed)
    expected: collections.Counter[str] = collections.Counter()
    records = []
    for i in range(n):
        words = [f"w{rng.randrange(vocabulary)}" for _ in range(5)]
        expected.update(words)
        records.append((str(i).encode(), " ".join(words).encode()))
    return records, dict(expected)


def test_wordcount_two_workers_exact_output(broker: Any, workers: Any, tmp_path: Path) -> None:
    b = broker.bootstrap
    create_topics(b, {"lines": 4, "word-counts": 4})
    app_file = write_app(tmp_path, WORDCOUNT, app_id="wc-two")
    records, expected = make_lines(2000, 150)
    produce(b, "lines", records[:1000])
    w1 = workers(app_file, b, "a", "--commit-interval-ms", "500")
    w2 = workers(app_file, b, "b", "--commit-interval-ms", "500")
    # both joined and share the 8 tasks
    wait_for(
        "both workers to get tasks",
        lambda: "tasks: active ['" in w1.output() and "tasks: active ['" in w2.output(),
    )
    produce(b, "lines", records[1000:])
    wait_for("exact counts", lambda: latest_counts(b, "word-counts") == expected, timeout=180)
    assert w1.alive() and w2.alive()
    assert w1.terminate() == 0
    assert w2.terminate() == 0
    assert "stopped" in w1.output() and "stopped" in w2.output()


def test_metrics_endpoint(broker: Any, workers: Any, tmp_path: Path) -> None:
    b = broker.bootstrap
    create_topics(b, {"lines": 2, "word-counts": 2})
    app_file = write_app(tmp_path, WORDCOUNT, app_id="wc-metrics")
    records, expected = make_lines(300, 40)
    produce(b, "lines", records)
    port = free_port()
    w = workers(app_file, b, "m", "--metrics-port", str(port), "--commit-interval-ms", "300")
    wait_for("counts", lambda: latest_counts(b, "word-counts") == expected)

    def ready() -> str | None:
        try:
            text = metrics_text(port)
        except OSError:
            return None
        return text if metric_sum(text, "flows_worker_store_size_bytes") > 0 else None

    text = wait_for("metrics with store sizes", ready)
    nonzero = [
        "flows_worker_records_in_total",
        "flows_worker_records_out_total",
        "flows_worker_process_latency_seconds_count",
        "flows_worker_commit_latency_seconds_count",
        "flows_worker_store_size_bytes",
        "flows_worker_rebalances_total",
        "flows_worker_active_tasks",
    ]
    for name in nonzero:
        assert metric_sum(text, name) > 0, name
    for family in [
        "flows_worker_consumer_lag",
        "flows_worker_restore_remaining_records",
        "flows_worker_restored_records_total",
        "flows_worker_standby_tasks",
    ]:
        assert f"# TYPE {family} " in text, family
    assert 'flows_worker_records_in_total{task="0_0",topic="lines"}' in text
    assert 'topic="word-counts"' in text
    assert 'flows_worker_consumer_lag{partition="0",topic="lines"}' in text
    assert w.terminate() == 0

    # a worker without local state restores from the changelogs; with a second worker and
    # one standby replica, it also keeps standby tasks
    shutil.rmtree(tmp_path / "state-m")
    port2 = free_port()
    w2 = workers(
        app_file,
        b,
        "m",
        "--metrics-port",
        str(port2),
        "--num-standby-replicas",
        "1",
        "--commit-interval-ms",
        "300",
    )
    workers(app_file, b, "n", "--num-standby-replicas", "1", "--commit-interval-ms", "300")

    def restored_with_standby() -> str | None:
        try:
            text = metrics_text(port2)
        except OSError:
            return None
        ok = (
            metric_sum(text, "flows_worker_restored_records_total") > 0
            and metric_sum(text, "flows_worker_standby_tasks") > 0
        )
        return text if ok else None

    text = wait_for("restore and standby metrics", restored_with_standby, timeout=180)
    assert 'flows_worker_restored_records_total{store="counts",task="1_' in text
    assert metric_sum(text, "flows_worker_rebalances_total") >= 1
    w2.terminate()


DLQ_APP = """
import flows
app = flows.App("{app_id}", on_deserialization_error="dead_letter")
src = app.topic("events", key_serde="str", value_serde="json")
out = app.topic("doubled", key_serde="str", value_serde="json")
app.stream(src).map_values(lambda v: {{"n": v["n"] * 2}}, name="double").to(out)
"""


def test_dead_letter_on_bad_record(broker: Any, workers: Any, tmp_path: Path) -> None:
    b = broker.bootstrap
    create_topics(b, {"events": 1, "doubled": 1})
    app_file = write_app(tmp_path, DLQ_APP, app_id="dlq-app")
    good = [(f"k{i}".encode(), json.dumps({"n": i}).encode()) for i in range(10)]
    produce(b, "events", [*good[:5], (b"bad", b"{not json"), *good[5:]])
    w = workers(app_file, b, "d", "--commit-interval-ms", "300")
    wait_for("all good records", lambda: len(read_all(b, "doubled")) == 10)
    values = [json.loads(r.value) for r in read_all(b, "doubled")]
    assert values == [{"n": i * 2} for i in range(10)]
    dlq = wait_for("dead-letter record", lambda: read_all(b, "dlq-app-dlq"))
    assert len(dlq) == 1
    rec = dlq[0]
    assert rec.key == b"bad" and rec.value == b"{not json"
    headers = {k: v.decode() for k, v in rec.headers}
    assert headers["flows.error.topic"] == "events"
    assert headers["flows.error.partition"] == "0"
    assert headers["flows.error.offset"] == "5"
    assert headers["flows.error.step"]
    assert headers["flows.error.exception"]
    assert headers["flows.error.message"]
    assert w.alive()
    w.terminate()


FAIL_APP = """
import flows
app = flows.App("{app_id}")
src = app.topic("events", key_serde="str", value_serde="json")
out = app.topic("doubled", key_serde="str", value_serde="json")
app.stream(src).map_values(lambda v: {{"n": v["n"] * 2}}, name="double").to(out)
"""


def test_default_handler_fails_naming_the_record(broker: Any, workers: Any, tmp_path: Path) -> None:
    b = broker.bootstrap
    create_topics(b, {"events": 1, "doubled": 1})
    app_file = write_app(tmp_path, FAIL_APP, app_id="fail-app")
    produce(b, "events", [(b"a", b'{"n": 1}'), (b"bad", b"{oops")])
    w = workers(app_file, b, "f")
    wait_for("worker exits", lambda: not w.alive(), timeout=120)
    out = w.output()
    assert w.proc.returncode != 0
    assert "deserialization error" in out
    assert "topic 'events'" in out and "partition 0, offset 1" in out
    assert "Traceback" not in out


def _cli(*args: str, cwd: Path, timeout: float = 120) -> Any:
    import os
    import subprocess
    import sys

    from conftest import REPO_ROOT

    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("FLOWS_BROKER", None)
    return subprocess.run(
        [sys.executable, "-c", "from flows.cli import main; main()", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_worker_bad_input_is_one_line(broker: Any, tmp_path: Path) -> None:
    b = f"kafka://{broker.bootstrap}"
    app_file = write_app(tmp_path, WORDCOUNT, app_id="wc-bad")
    cases = [
        (("worker", "-A", "no_such_module", "--broker", b), "cannot import flow module"),
        (("worker", "-A", "missing.py", "--broker", b), "does not exist"),
        (("worker", "-A", f"{app_file}:nope", "--broker", b), "no flows.App named 'nope'"),
        (
            ("worker", "-A", str(app_file), "--broker", b, "--processing-guarantee", "twice"),
            "processing guarantee 'twice' is unknown",
        ),
        (("worker", "-A", str(app_file), "--broker", "http://x:1"), "invalid broker address"),
        (("worker", "-A", str(app_file), "--broker", b), "source topic 'lines'"),
        (("demo", "--broker", b, "--duration", "0"), "--duration must be positive"),
    ]
    for args, expected in cases:
        result = _cli(*args, cwd=tmp_path)
        assert result.returncode != 0, args
        assert expected in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr, args
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_demo_runs_pipeline_and_shows_counts(broker: Any, tmp_path: Path) -> None:
    result = _cli(
        "demo",
        "--broker",
        f"kafka://{broker.bootstrap}",
        "--duration",
        "15",
        "--state-dir",
        str(tmp_path / "state"),
        cwd=tmp_path,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr
    assert "/metrics" in result.stdout
    assert "page views per page" in result.stdout
    assert "stopped after" in result.stdout
    counts = latest_counts(broker.bootstrap, "page-view-counts")
    assert counts and all(page.startswith("/") for page in counts)


GLOBAL_APP = """
import flows
app = flows.App("{app_id}")
products = app.global_table(app.topic("products", key_serde="str", value_serde="str"))
orders = app.stream(app.topic("orders", key_serde="str", value_serde="json"))
out = app.topic("enriched", key_serde="str", value_serde="str")
orders.join(
    products, lambda o, p: f"{{o['qty']}}x{{p}}", key_selector=lambda k, o: o["sku"]
).to(out)
"""


def test_global_table_join(broker: Any, workers: Any, tmp_path: Path) -> None:
    b = broker.bootstrap
    create_topics(b, {"products": 2, "orders": 2, "enriched": 1})
    produce(b, "products", [(b"p1", b"pen"), (b"p2", b"ink")])
    app_file = write_app(tmp_path, GLOBAL_APP, app_id="global-app")
    w = workers(app_file, b, "g", "--commit-interval-ms", "300")
    orders = [
        (f"o{i}".encode(), json.dumps({"sku": f"p{1 + i % 2}", "qty": i}).encode())
        for i in range(6)
    ]
    produce(b, "orders", orders)
    got = wait_for(
        "enriched orders", lambda: len(read_all(b, "enriched")) == 6 and read_all(b, "enriched")
    )
    assert sorted((r.key.decode(), r.value.decode()) for r in got) == sorted(
        (f"o{i}", f"{i}x{'pen' if i % 2 == 0 else 'ink'}") for i in range(6)
    )
    # a product added later reaches the running worker's global store (the global store and
    # the stream are not ordered with each other, so keep ordering until one joins)
    produce(b, "products", [(b"p3", b"pad")])

    def late_join() -> bool:
        produce(b, "orders", [(b"o9", json.dumps({"sku": "p3", "qty": 1}).encode())])
        return any(r.value == b"1xpad" for r in read_all(b, "enriched"))

    wait_for("late product joined", late_join, interval=1.0)
    w.terminate()


BIG_APP = """
import flows
app = flows.App("{app_id}", on_production_error="{handler}")
src = app.topic("events", key_serde="str", value_serde="str")
out = app.topic("out", key_serde="str", value_serde="str")
app.stream(src).map_values(lambda v: v * 2_000_000 if v == "big" else v, name="grow").to(out)
"""


def test_production_error_fail_names_topic(broker: Any, workers: Any, tmp_path: Path) -> None:
    b = broker.bootstrap
    create_topics(b, {"events": 1, "out": 1})
    app_file = write_app(tmp_path, BIG_APP, app_id="big-fail", handler="fail")
    produce(b, "events", [(b"k", b"big")])
    w = workers(app_file, b, "p")
    wait_for("worker exits", lambda: not w.alive(), timeout=120)
    out = w.output()
    assert w.proc.returncode != 0
    assert "topic 'out' partition 0 failed" in out, out[-2000:]
    assert "Traceback" not in out


def test_production_error_log_and_skip_goes_on(broker: Any, workers: Any, tmp_path: Path) -> None:
    b = broker.bootstrap
    create_topics(b, {"events": 1, "out": 1})
    app_file = write_app(tmp_path, BIG_APP, app_id="big-skip", handler="log_and_skip")
    w = workers(app_file, b, "p", "--commit-interval-ms", "200")
    wait_for("worker joined", lambda: "tasks: active ['" in w.output())
    produce(b, "events", [(b"k", b"big")])
    wait_for("skip logged", lambda: "skipping failed production" in w.output())
    produce(b, "events", [(b"k", b"small")])
    wait_for("later record written", lambda: [r.value for r in read_all(b, "out")] == [b"small"])
    assert w.alive()
    w.terminate()
