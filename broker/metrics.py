"""Broker metrics on a private Prometheus registry.

A private :class:`~prometheus_client.CollectorRegistry` keeps several brokers (or a
broker and a worker) in one process from colliding. Counters are bumped once per request
or per partition per request, never per record. Per-partition log figures are not
tracked on the hot path at all: a collector reads them from the log manager at scrape
time.

>>> m = BrokerMetrics()
>>> m.requests_total.labels("metadata").inc()
>>> m.registry.get_sample_value("flows_broker_requests_total", {"api": "metadata"})
1.0
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

__all__ = ["BrokerMetrics"]

log = logging.getLogger(__name__)

_LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)


class _LogCollector(Collector):
    """Exposes end offset and size of every partition, read when Prometheus scrapes."""

    def __init__(self) -> None:
        self.logs: Any = None

    def collect(self) -> Iterator[GaugeMetricFamily]:
        end = GaugeMetricFamily(
            "flows_broker_log_end_offset",
            "Next offset to be assigned in the partition (the high watermark).",
            labels=["topic", "partition"],
        )
        size = GaugeMetricFamily(
            "flows_broker_log_size_bytes",
            "Bytes on disk of the partition's log segments.",
            labels=["topic", "partition"],
        )
        logs = self.logs
        if logs is not None:
            try:
                for name, info in list(logs.topics().items()):
                    for p in range(info.partitions):
                        part = logs.partition(name, p)
                        labels = [name, str(p)]
                        end.add_metric(labels, part.log_end_offset)
                        size.add_metric(labels, part.size_bytes)
            except Exception:  # a topic deleted mid-scrape must not break /metrics
                log.debug("log metrics scrape skipped a changing topic", exc_info=True)
        yield end
        yield size


class BrokerMetrics:
    """The broker's Prometheus objects; names are prefixed ``flows_broker_``."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests_total = Counter(
            "flows_broker_requests",
            "Requests handled, by API.",
            ["api"],
            registry=self.registry,
        )
        self.request_latency_seconds = Histogram(
            "flows_broker_request_latency_seconds",
            "Time from a request's arrival to its response being queued, by API.",
            ["api"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.bytes_in_total = Counter(
            "flows_broker_bytes_in",
            "Record bytes appended, by topic.",
            ["topic"],
            registry=self.registry,
        )
        self.bytes_out_total = Counter(
            "flows_broker_bytes_out",
            "Record bytes served to fetchers, by topic.",
            ["topic"],
            registry=self.registry,
        )
        self.connections_closed_total = Counter(
            "flows_broker_connections_closed_by_broker",
            "Connections the broker closed because of a protocol fault, by whose fault.",
            ["fault"],
            registry=self.registry,
        )
        self._logs = _LogCollector()
        self.registry.register(self._logs)
        self._http: Any = None

    def attach_logs(self, logs: Any) -> None:
        """Let scrapes read per-partition figures from ``logs`` (a LogManager)."""
        self._logs.logs = logs

    def serve(self, port: int, addr: str = "0.0.0.0") -> int:
        """Serve ``/metrics`` over HTTP on ``port`` (0 = any free port); returns the port."""
        server, thread = start_http_server(port, addr=addr, registry=self.registry)
        self._http = (server, thread)
        return int(server.server_address[1])

    def close(self) -> None:
        if self._http is not None:
            server, _thread = self._http
            server.shutdown()
            server.server_close()
            self._http = None
