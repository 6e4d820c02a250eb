"""The Grafana dashboard queries only metrics that a running broker and worker expose.

A dashboard panel over a misspelt name, or one that reads ``_bucket`` of a gauge, shows "No
data" forever and nothing else complains. So this test starts the included broker and a
``flows worker`` with ``--metrics-port``, feeds them records (and restores the worker from its
changelog, so the restore metrics have samples too), scrapes both ``/metrics`` endpoints and
checks every metric name of every dashboard query against what they serve: the exact series
name must have samples, and its family must have the type the suffix implies.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

REPO_ROOT = Path(__file__).resolve().parents[2]
DEPLOY = REPO_ROOT / "deploy"
DASHBOARD = DEPLOY / "grafana/dashboards/flows.json"
METRIC_LIST = DEPLOY / "grafana/dashboard-metrics.txt"

# Names the dashboard may query although neither the broker nor a worker exposes them, each
# with the reason. Only metrics of the 3-node Apache Kafka profile (docker-compose.yml, where
# kafka-exporter serves ``kafka_*``) belong here, and a panel using one must say so in its
# description (it shows "No data" against the included broker). Today there are none: the
# dashboard reads flows metrics only.
ALLOWED_FOREIGN: dict[str, str] = {}
FOREIGN_PROFILE_MARK = "docker-compose.yml"

# PromQL words that look like identifiers but are not metric names.
_PROMQL_WORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "and",
    "or",
    "unless",
    "offset",
    "inf",
    "nan",
}
_IDENT = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
# Series suffixes and the family types that produce them.
_SUFFIX_TYPES = {
    "_bucket": {"histogram"},
    "_sum": {"histogram", "summary"},
    "_count": {"histogram", "summary"},
    "_total": {"counter"},
    "_created": {"counter", "histogram", "summary"},
}
_PLAIN_TYPES = {"gauge", "unknown", "untyped"}


def metric_names(expr: str) -> set[str]:
    """Metric names an expression selects (functions, labels and keywords left out).

    >>> sorted(metric_names('sum by (le, api) (rate(x_bucket{api="a b"}[5m])) / on(api) y'))
    ['x_bucket', 'y']
    """
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # range and subquery selectors
    text = re.sub(
        r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", r"\1 ", text
    )  # label lists of grouping and matching clauses
    names = set()
    for m in _IDENT.finditer(text):
        name = m.group(0)
        if name.lower() in _PROMQL_WORDS or (m.start() > 0 and text[m.start() - 1].isdigit()):
            continue  # a keyword, or the unit of a duration such as "5m" or "1e3"
        if re.match(r"\s*((by|without)\s+)?\(", text[m.end() :]):
            continue  # a function call, or an aggregation with its grouping clause first
        names.add(name)
    return names


def family_of(name: str) -> str:
    """The dashboard list's spelling: histogram series by base name, counters keep _total."""
    return re.sub(r"_(bucket|sum|count|created)$", "", name)


def dashboard_queries() -> Iterator[tuple[dict[str, Any], str]]:
    dashboard = json.loads(DASHBOARD.read_text())
    for panel in dashboard["panels"]:
        for target in panel.get("targets") or []:
            yield panel, target["expr"]


def dashboard_series() -> dict[str, set[str]]:
    """Every metric name queried by the dashboard -> titles of the panels querying it."""
    used: dict[str, set[str]] = {}
    for panel, expr in dashboard_queries():
        for name in metric_names(expr):
            used.setdefault(name, set()).add(panel["title"])
    return used


def listed_metrics() -> set[str]:
    lines = METRIC_LIST.read_text().splitlines()
    return {line.strip() for line in lines if line.strip() and not line.startswith("#")}


def test_metric_name_extraction() -> None:
    assert metric_names("sum(flows_worker_active_tasks)") == {"flows_worker_active_tasks"}
    assert metric_names(
        "histogram_quantile(0.99, sum by (le, api) (rate(flows_broker_x_bucket[5m])))"
    ) == {"flows_broker_x_bucket"}
    assert metric_names('a{job="flows-worker", topic=~"l.*"} offset 1h - ignoring(x) b') == {
        "a",
        "b",
    }
    assert metric_names("rate(c_total[1m:30s]) > bool 1e3") == {"c_total"}
    assert metric_names("-sum without (partition) (d)") == {"d"}
    assert metric_names("vector(1)") == set()


def test_metric_list_matches_dashboard() -> None:
    used = {family_of(n) for n in dashboard_series() if n.startswith("flows_")}
    listed = listed_metrics()
    assert used - listed == set(), "queried by the dashboard but missing from the list"
    assert listed - used == set(), "in the list but queried by no dashboard panel"


def test_foreign_metrics_are_allowed_and_marked() -> None:
    for name, titles in dashboard_series().items():
        if name.startswith("flows_"):
            continue
        assert name in ALLOWED_FOREIGN, f"panel {sorted(titles)} queries unknown metric {name}"
        for panel, expr in dashboard_queries():
            if name in metric_names(expr):
                assert FOREIGN_PROFILE_MARK in (panel.get("description") or ""), (
                    f"panel {panel['title']!r} reads {name}, which only the Apache Kafka "
                    f"profile has; its description must name {FOREIGN_PROFILE_MARK}"
                )


# -- the live check ----------------------------------------------------------------------------


def _load(path: Path, module_name: str) -> Any:
    spec = importlib.util.spec_from_file_location(module_name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


helpers = _load(REPO_ROOT / "tests/worker/conftest.py", "flows_dashboard_test_helpers")

WORDCOUNT = """
import flows
app = flows.App("dashboard-check")
lines = app.topic("lines", value_serde="str")
counts = app.topic("word-counts", key_serde="str", value_serde="int")
(app.stream(lines)
    .flat_map_values(lambda line: line.lower().split(), name="split")
    .group_by(lambda key, word: word, name="by-word", key_serde="str", value_serde="str")
    .count(name="counts")
    .to_stream(name="count-changes")
    .to(counts, name="write-counts"))
"""


class Exposed:
    """Series names with samples, and family types, from several /metrics scrapes."""

    def __init__(self) -> None:
        self.series: set[str] = set()
        self.types: dict[str, str] = {}

    def add(self, text: str) -> None:
        for family in text_string_to_metric_families(text):
            self.types[family.name] = family.type
            self.series.update(sample.name for sample in family.samples)

    def problem(self, name: str) -> str | None:
        """Why ``name`` is not a usable series, or None if it is."""
        for suffix, types in _SUFFIX_TYPES.items():
            base = name[: -len(suffix)]
            if name.endswith(suffix) and base in self.types:
                if self.types[base] not in types:
                    return f"{name}: {base} is a {self.types[base]}, it has no {suffix} series"
                break
        else:
            if name in self.types and self.types[name] not in _PLAIN_TYPES:
                return f"{name} is a {self.types[name]}; query one of its series"
        if name not in self.series:
            return f"{name} is not exposed (or has no samples)"
        return None


def test_wrong_series_are_named() -> None:
    exposed = Exposed()
    exposed.add(
        "# TYPE g gauge\ng 1\n"
        "# TYPE c_total counter\nc_total 2\n"
        "# TYPE h histogram\n"
        'h_bucket{le="1.0"} 1\nh_bucket{le="+Inf"} 1\nh_count 1\nh_sum 0.5\n'
        "# TYPE empty gauge\n"
    )
    for good in ("g", "c_total", "h_bucket", "h_sum", "h_count"):
        assert exposed.problem(good) is None, good
    assert exposed.problem("g_bucket") == "g_bucket: g is a gauge, it has no _bucket series"
    assert exposed.problem("c_bucket") == "c_bucket: c is a counter, it has no _bucket series"
    assert exposed.problem("h") == "h is a histogram; query one of its series"
    assert exposed.problem("c") == "c is a counter; query one of its series"
    assert exposed.problem("gg") == "gg is not exposed (or has no samples)"
    assert exposed.problem("empty") == "empty is not exposed (or has no samples)"


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Any]:
    launcher = helpers._launcher()
    port = helpers.free_port()
    proc = launcher.BrokerProcess(
        tmp_path / "broker-logs",
        tmp_path / "broker-output.txt",
        extra_args=("--metrics-port", str(port)),
    )
    proc.metrics_port = port
    proc.start()
    try:
        yield proc
    finally:
        proc.close()
        print("----- broker output -----")
        print(proc.tail(3000))


def _scrape_when(port: int, ready: Any) -> Any:
    def check() -> str | None:
        try:
            text = helpers.metrics_text(port)
        except OSError:
            return None
        return text if ready(text) else None

    return check


def test_dashboard_queries_only_exposed_metrics(broker: Any, tmp_path: Path) -> None:
    b = broker.bootstrap
    helpers.create_topics(b, {"lines": 1, "word-counts": 1})
    app_file = tmp_path / "dashboard_flow.py"
    app_file.write_text(WORDCOUNT)
    records = [(str(i).encode(), f"a b c w{i % 7}".encode()) for i in range(50)]
    helpers.produce(b, "lines", records)
    expected = {"a": 50, "b": 50, "c": 50} | {f"w{k}": len(range(k, 50, 7)) for k in range(7)}
    exposed = Exposed()
    started: list[Any] = []

    def start(name: str, port: int) -> Any:
        w = helpers.WorkerProcess(
            app_file,
            b,
            tmp_path / "state",
            tmp_path / f"worker-{name}.log",
            "--metrics-port",
            str(port),
            "--commit-interval-ms",
            "200",
        )
        started.append(w)
        return w

    try:
        # a worker processes the records: throughput, latency, lag, store and task metrics
        port = helpers.free_port()
        first = start("first", port)
        helpers.wait_for("counts", lambda: helpers.latest_counts(b, "word-counts") == expected)
        exposed.add(
            helpers.wait_for(
                "worker metrics with store sizes",
                _scrape_when(
                    port, lambda t: helpers.metric_sum(t, "flows_worker_store_size_bytes") > 0
                ),
            )
        )
        assert first.terminate() == 0
        # a worker without local state restores it from the changelog: the restore metrics
        shutil.rmtree(tmp_path / "state")
        port = helpers.free_port()
        start("restored", port)
        exposed.add(
            helpers.wait_for(
                "worker metrics after a restore",
                _scrape_when(
                    port,
                    lambda t: helpers.metric_sum(t, "flows_worker_restored_records_total") > 0,
                ),
            )
        )
        exposed.add(helpers.metrics_text(broker.metrics_port))
    finally:
        for w in started:
            w.terminate(timeout=20)
            print(f"----- worker {w.log_path.name} -----")
            print(w.output()[-3000:])

    used = dashboard_series()
    assert used, "the dashboard has no queries"
    problems = [
        f"panel {sorted(used[name])}: {problem}"
        for name in sorted(used)
        if name not in ALLOWED_FOREIGN and (problem := exposed.problem(name)) is not None
    ]
    assert problems == []
