"""Prometheus metrics of a worker, served on ``/metrics`` (``flows worker --metrics-port``).

The names are a contract (dashboards use them). Every value is updated once per batch, per
commit or per restore slice, never per record. Each worker owns its own registry, so several
workers in one process (tests, the demo) do not collide.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)


class WorkerMetrics:
    """The worker's metric families, registered in a private registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.records_in = Counter(
            "flows_worker_records_in_total",
            "Records consumed, per task and source topic.",
            ["task", "topic"],
            registry=r,
        )
        self.records_out = Counter(
            "flows_worker_records_out_total",
            "Records produced (outputs, repartition and changelog records), per task and topic.",
            ["task", "topic"],
            registry=r,
        )
        self.process_latency = Histogram(
            "flows_worker_process_latency_seconds",
            "Time to run one fetched batch through a task.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.commit_latency = Histogram(
            "flows_worker_commit_latency_seconds",
            "Time of one commit (flush caches, produce, commit offsets, persist stores).",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.consumer_lag = Gauge(
            "flows_worker_consumer_lag",
            "Records between the consumed position and the end of a source partition.",
            ["topic", "partition"],
            registry=r,
        )
        self.restore_remaining = Gauge(
            "flows_worker_restore_remaining_records",
            "Changelog records still to restore, per task and store.",
            ["task", "store"],
            registry=r,
        )
        self.restored = Counter(
            "flows_worker_restored_records_total",
            "Changelog records restored into stores, per task and store.",
            ["task", "store"],
            registry=r,
        )
        self.store_size = Gauge(
            "flows_worker_store_size_bytes",
            "Approximate size of a store (estimated from its entry count and record sizes).",
            ["task", "store"],
            registry=r,
        )
        self.dropped_late = Counter(
            "flows_worker_dropped_late_records_total",
            "Records dropped by windowed steps because their window had closed, per task.",
            ["task"],
            registry=r,
        )
        self.rebalances = Counter(
            "flows_worker_rebalances_total",
            "Group rebalances this worker went through.",
            registry=r,
        )
        self.active_tasks = Gauge(
            "flows_worker_active_tasks", "Active tasks run by this worker.", registry=r
        )
        self.standby_tasks = Gauge(
            "flows_worker_standby_tasks", "Standby tasks kept warm by this worker.", registry=r
        )
        self._server: Any = None

    def serve(self, port: int, addr: str = "0.0.0.0") -> int:
        """Serve ``/metrics`` over HTTP on ``port`` (0: a free port); returns the port."""
        server, thread = start_http_server(port, addr=addr, registry=self.registry)
        self._server = (server, thread)
        return int(server.server_address[1])

    def stop(self) -> None:
        if self._server is not None:
            server, thread = self._server
            server.shutdown()
            server.server_close()
            if isinstance(thread, threading.Thread):
                thread.join(timeout=5)
            self._server = None

    def forget_task(self, task: str, stores: list[str]) -> None:
        """Drop per-store gauges of a task this worker no longer runs."""
        for store in stores:
            for gauge in (self.restore_remaining, self.store_size):
                with contextlib.suppress(KeyError):
                    gauge.remove(task, store)
