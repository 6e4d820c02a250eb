"""Stream processors side by side on the included broker: flows, faust-streaming, quixstreams.

Four workloads, the same input for every processor, in one run on one broker:

* ``stateless``: JSON decode, filter (``amount >= 10``, keeps 90 %), map (add ``cents``), JSON
  encode to an output topic -- ``--records`` records (default 1,000,000);
* ``stateful``: count per key over ``--keys`` keys (default 100,000) with a changelog, one output
  record per input record -- ``--stateful-records`` records (default 1,000,000);
* ``window``: count per key and 1-minute tumbling window (grace 5 s) over ``--keys`` keys, one
  output record per update (no suppression: quixstreams' ``.current()``, faust's
  ``.current()``) -- ``--window-records`` records (default 1,000,000) whose event times advance
  evenly through ``--window-minutes`` minutes (default 3), so every key gets several records
  in each window and windows roll over and expire during the run;
* ``join`` (flows only): a ``users`` table topic of ``--keys`` rows is written, the processor
  is started and, once it has committed the whole table topic, ``--join-records`` stream
  records (default 1,000,000, encoded beforehand) are produced as fast as the producer goes
  and joined to it (inner join, every key present). Its e2e time runs from the first stream
  record produced to the last output; "1st out" still counts from process start (it includes
  loading the table). The stream is only written once the table is in: the worker does not
  yet hold back a stream partition until the table partition it joins has caught up (Kafka's
  ``max.task.idle.ms``), so records read before the table would find no match.

A raw aiokafka consume-and-produce passthrough (no decoding) gives the ceiling. Each processor
runs as its own process, started once its input is fully written; the harness polls the
output topic's end offsets and reports:

* end-to-end records/s: input records / (time from process start to the last output record);
* steady-state records/s: output rate between 20 % and 80 % of the expected output;
* time to first output (process start to the first output record: startup + group join);
* CPU seconds of the processor process (children included) and of the broker over the run.

Peers are not installed with flows: ``bash bench/setup_peers.sh`` creates ``bench/.venv`` with
faust-streaming and quixstreams (they pin other versions of shared dependencies), and this
script runs them with that interpreter when it exists; otherwise they are reported as skipped.

    python bench/streams_vs_peers.py                 # full run
    python bench/streams_vs_peers.py --quick         # CI smoke test (small inputs)
    python bench/streams_vs_peers.py --only flows,raw
    python bench/streams_vs_peers.py --workloads window,join

A run that hits ``--timeout`` (faust-streaming on 1,000,000 records takes many minutes) is
reported from the outputs it produced by then: its e2e and steady rates are outputs per second
over the time it ran, and its note says so.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

REPO_ROOT = Path(__file__).resolve().parents[1]
PEER_PYTHON = REPO_ROOT / "bench" / ".venv" / "bin" / "python"
PARTITIONS = 4
PROCESSORS = ("raw", "flows", "faust", "quix")
WORKLOADS = ("stateless", "stateful", "window", "join")
#: The processors each workload is run with (the stream-table join is flows' own).
RUNS_ON = {"join": ("flows",)}
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Result:
    processor: str
    workload: str
    records: int
    outputs: int
    total_s: float
    first_output_s: float
    steady_rps: float
    processor_cpu_s: float
    broker_cpu_s: float
    note: str = ""
    partial: bool = False

    @property
    def e2e_rps(self) -> float:
        done = self.outputs if self.partial else self.records
        return done / self.total_s if self.total_s > 0 else float("nan")


def _load_launcher() -> Any:
    path = REPO_ROOT / "tests" / "integration" / "conftest.py"
    spec = importlib.util.spec_from_file_location("flows_bench_launcher", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def cpu_seconds(pid: int, *, children: bool = False) -> float:
    """User + system CPU of ``pid`` (plus its reaped children) from ``/proc``."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return float("nan")
    fields = stat[stat.rindex(b")") + 2 :].split()
    ticks = int(fields[11]) + int(fields[12])
    if children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / _CLOCK_TICKS


# --------------------------------------------------------------------------- input


def create_topics(bootstrap: str, topics: list[str]) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics(
        [NewTopic(t, num_partitions=PARTITIONS, replication_factor=1) for t in topics]
    )
    for f in futures.values():
        f.result(30)


def _produce(producer: Producer, topic: str, value: bytes, key: bytes, ts: int | None) -> None:
    while True:
        try:
            if ts is None:
                producer.produce(topic, value, key)
            else:
                producer.produce(topic, value, key, timestamp=ts)
            return
        except BufferError:
            producer.poll(0.05)


def write_input(
    bootstrap: str,
    topic: str,
    records: int,
    keys: int | None,
    *,
    start_ms: int | None = None,
    span_ms: int = 0,
) -> int:
    """Write the workload's input; returns how many records pass the stateless filter.

    With ``start_ms`` the record times advance evenly from ``start_ms`` over ``span_ms``
    (non-decreasing within every partition, so nothing is late); otherwise they are the
    producer's clock.
    """
    rng = random.Random(42)
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "batch.size": 1_000_000})
    passing = 0
    for i in range(records):
        amount = rng.randrange(100)
        passing += amount >= 10
        key = f"k{rng.randrange(keys)}" if keys else f"u{i % 1000}"
        value = json.dumps({"id": i, "user": key, "amount": amount, "kind": "view"})
        ts = None if start_ms is None else start_ms + i * span_ms // records
        _produce(producer, topic, value.encode(), key.encode(), ts)
        if i % 10_000 == 0:
            producer.poll(0)
    producer.flush(120)
    return passing


def encode_input(records: int, keys: int) -> list[tuple[bytes, bytes]]:
    """The join's stream records as (key, value) bytes, so producing them costs little."""
    rng = random.Random(7)
    out = []
    for i in range(records):
        key = f"k{rng.randrange(keys)}"
        value = json.dumps({"id": i, "user": key, "amount": rng.randrange(100), "kind": "view"})
        out.append((key.encode(), value.encode()))
    return out


def produce_all(bootstrap: str, topic: str, pairs: list[tuple[bytes, bytes]]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "batch.size": 1_000_000})
    for i, (key, value) in enumerate(pairs):
        _produce(producer, topic, value, key, None)
        if i % 10_000 == 0:
            producer.poll(0)
    producer.flush(120)


def committed_all(bootstrap: str, group: str, topic: str) -> bool:
    """Whether ``group`` has committed the end of every partition of ``topic``."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        parts = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        done = consumer.committed(parts, timeout=10)
        for tp in done:
            _low, high = consumer.get_watermark_offsets(tp, timeout=10)
            if tp.offset < high:
                return False
        return True
    finally:
        consumer.close()


def write_table(bootstrap: str, topic: str, keys: int, ts: int) -> None:
    """One row per key (``k0`` .. ``k<keys-1>``), all at time ``ts``: the join's table."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "batch.size": 1_000_000})
    for i in range(keys):
        value = json.dumps({"name": f"user {i}", "tier": i % 3})
        _produce(producer, topic, value.encode(), f"k{i}".encode(), ts)
        if i % 10_000 == 0:
            producer.poll(0)
    producer.flush(120)


def end_offsets(consumer: Consumer, topic: str) -> int:
    total = 0
    for p in range(PARTITIONS):
        _low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
        total += max(high, 0)
    return total


# --------------------------------------------------------------------------- processors

FLOWS_APP = {
    "stateless": """
import flows
app = flows.App("bench-flows-stateless", default_serde="json")
src = app.topic("{source}", value_serde="json")
out = app.topic("{sink}", value_serde="json")
(app.stream(src)
    .filter(lambda k, v: v["amount"] >= 10, name="big")
    .map_values(lambda v: {{**v, "cents": v["amount"] * 100}}, name="cents")
    .to(out))
""",
    "stateful": """
import flows
app = flows.App("bench-flows-stateful")
src = app.topic("{source}", key_serde="str", value_serde="json")
out = app.topic("{sink}", key_serde="str", value_serde="int")
(app.stream(src)
    .group_by_key(name="by-key", key_serde="str", value_serde="json")
    .count(name="counts")
    .to_stream()
    .to(out))
""",
    "window": """
import flows
from flows import windows
app = flows.App("bench-flows-window")
src = app.topic("{source}", key_serde="str", value_serde="json")
out = app.topic("{sink}", key_serde=windows.windowed_serde("str"), value_serde="int")
(app.stream(src)
    .group_by_key(name="by-key", key_serde="str", value_serde="json")
    .window(windows.tumbling(60, grace=5))
    .count(name="counts")
    .to_stream()
    .to(out))
""",
    "join": """
import flows
app = flows.App("bench-flows-join")
users = app.table(app.topic("{table}", key_serde="str", value_serde="json"), name="users")
src = app.topic("{source}", key_serde="str", value_serde="json")
out = app.topic("{sink}", key_serde="str", value_serde="json")
(app.stream(src)
    .join(users, lambda c, u: {{**c, "name": u["name"], "tier": u["tier"]}}, name="enrich")
    .to(out))
""",
}

RAW_SCRIPT = """
import asyncio, signal
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
async def main():
    c = AIOKafkaConsumer("{source}", bootstrap_servers="{bootstrap}",
                         group_id="bench-raw-{workload}", auto_offset_reset="earliest",
                         enable_auto_commit=True, max_poll_records=5000)
    p = AIOKafkaProducer(bootstrap_servers="{bootstrap}", linger_ms=5, max_batch_size=512*1024)
    await c.start(); await p.start()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    while not stop.is_set():
        data = await c.getmany(timeout_ms=200)
        futs = []
        for tp, msgs in data.items():
            batch = p.create_batch()
            for m in msgs:
                if batch.append(key=m.key, value=m.value, timestamp=None) is None:
                    futs.append(await p.send_batch(batch, "{sink}", partition=tp.partition))
                    batch = p.create_batch()
                    batch.append(key=m.key, value=m.value, timestamp=None)
            futs.append(await p.send_batch(batch, "{sink}", partition=tp.partition))
        if futs:
            await asyncio.gather(*futs)
    await c.stop(); await p.stop()
asyncio.run(main())
"""

FAUST_SCRIPT = {
    "stateless": """
import faust, json
app = faust.App("bench-faust-stateless", broker="kafka://{bootstrap}", web_enabled=False,
                topic_partitions={partitions}, producer_linger_ms=5)
src = app.topic("{source}", value_serializer="raw")
out = app.topic("{sink}", value_serializer="raw")
@app.agent(src)
async def process(stream):
    async for value in stream:
        v = json.loads(value)
        if v["amount"] >= 10:
            v["cents"] = v["amount"] * 100
            await out.send(value=json.dumps(v).encode())
if __name__ == "__main__":
    app.main()
""",
    "stateful": """
import faust
app = faust.App("bench-faust-stateful", broker="kafka://{bootstrap}", web_enabled=False,
                topic_partitions={partitions}, store="memory://", producer_linger_ms=5)
src = app.topic("{source}", key_serializer="raw", value_serializer="raw")
out = app.topic("{sink}", key_serializer="raw", value_serializer="raw")
counts = app.Table("counts", default=int, partitions={partitions})
@app.agent(src)
async def process(stream):
    async for event in stream.events():
        counts[event.key] += 1
        await out.send(key=event.key, value=counts[event.key].to_bytes(8, "big"))
if __name__ == "__main__":
    app.main()
""",
    "window": """
import faust
from datetime import timedelta
app = faust.App("bench-faust-window", broker="kafka://{bootstrap}", web_enabled=False,
                topic_partitions={partitions}, store="memory://", producer_linger_ms=5)
src = app.topic("{source}", key_serializer="raw", value_serializer="raw")
out = app.topic("{sink}", key_serializer="raw", value_serializer="raw")
counts = (app.Table("wcounts", default=int, partitions={partitions})
          .tumbling(60, expires=timedelta(minutes=5)).relative_to_stream())
@app.agent(src)
async def process(stream):
    async for event in stream.events():
        counts[event.key] += 1
        await out.send(key=event.key, value=counts[event.key].current().to_bytes(8, "big"))
if __name__ == "__main__":
    app.main()
""",
}

QUIX_SCRIPT = {
    "stateless": """
from quixstreams import Application
app = Application(broker_address="{bootstrap}", consumer_group="bench-quix-stateless",
                  auto_offset_reset="earliest", state_dir="{state}")
src = app.topic("{source}", value_deserializer="json")
out = app.topic("{sink}", value_serializer="json")
sdf = app.dataframe(src)
sdf = sdf[sdf["amount"] >= 10]
sdf = sdf.apply(lambda v: {{**v, "cents": v["amount"] * 100}})
sdf.to_topic(out)
app.run()
""",
    "stateful": """
from quixstreams import Application
app = Application(broker_address="{bootstrap}", consumer_group="bench-quix-stateful",
                  auto_offset_reset="earliest", state_dir="{state}")
src = app.topic("{source}", key_deserializer="str", value_deserializer="json")
out = app.topic("{sink}", key_serializer="str", value_serializer="int")
def count(value, key, timestamp, headers, state):
    n = (state.get("n") or 0) + 1
    state.set("n", n)
    return n
sdf = app.dataframe(src).apply(count, stateful=True, metadata=True)
sdf.to_topic(out)
app.run()
""",
    "window": """
from quixstreams import Application
app = Application(broker_address="{bootstrap}", consumer_group="bench-quix-window",
                  auto_offset_reset="earliest", state_dir="{state}")
src = app.topic("{source}", key_deserializer="str", value_deserializer="json")
out = app.topic("{sink}", key_serializer="str", value_serializer="json")
sdf = app.dataframe(src).tumbling_window(duration_ms=60_000, grace_ms=5_000).count().current()
sdf.to_topic(out)
app.run()
""",
}


def processor_command(
    name: str,
    workload: str,
    bootstrap: str,
    source: str,
    sink: str,
    work: Path,
    flows_args: tuple[str, ...] = (),
) -> list[str] | None:
    """The command that runs ``name`` on ``workload``; None when it is not installed."""
    fmt = {
        "bootstrap": bootstrap,
        "source": source,
        "table": table_topic(workload),
        "sink": sink,
        "workload": workload,
        "partitions": PARTITIONS,
        "state": str(work / f"{name}-{workload}-state"),
    }
    if name == "flows":
        app_file = work / f"bench_flows_{workload}.py"
        app_file.write_text(textwrap.dedent(FLOWS_APP[workload]).format(**fmt))
        return [
            sys.executable,
            "-c",
            "from flows.cli import main; main()",
            "worker",
            "-A",
            str(app_file),
            "--broker",
            f"kafka://{bootstrap}",
            "--state-dir",
            str(work / f"flows-{workload}-state"),
            "--log-level",
            "WARNING",
            *flows_args,
        ]
    if name == "raw":
        return [sys.executable, "-c", RAW_SCRIPT.format(**fmt)]
    if not PEER_PYTHON.exists():
        return None
    if name == "faust":
        script = work / f"bench_faust_{workload}.py"
        script.write_text(FAUST_SCRIPT[workload].format(**fmt))
        return [str(PEER_PYTHON), str(script), "worker", "-l", "warn", "--without-web"]
    if name == "quix":
        return [str(PEER_PYTHON), "-c", QUIX_SCRIPT[workload].format(**fmt)]
    raise ValueError(name)


def table_topic(workload: str) -> str:
    return f"bench-table-{workload}"


def run_processor(
    name: str,
    workload: str,
    broker_pid: int,
    bootstrap: str,
    source: str,
    records: int,
    expected: int,
    work: Path,
    timeout_s: float,
    feed: tuple[Callable[[], bool], Callable[[], None]] | None = None,
    flows_args: tuple[str, ...] = (),
) -> Result:
    """Run one processor until its output is complete; ``feed`` is (ready, write): once the
    processor is ``ready()``, ``write()`` produces its input in a thread and the e2e time
    counts from then."""
    sink = f"bench-out-{name}-{workload}"
    create_topics(bootstrap, [sink])
    cmd = processor_command(name, workload, bootstrap, source, sink, work, flows_args)
    if cmd is None:
        return Result(name, workload, records, 0, 0, 0, 0, 0, 0, "skipped: bench/setup_peers.sh")
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO_ROOT)
    watcher = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-watch"})
    log_path = work / f"{name}-{workload}.log"
    broker0 = cpu_seconds(broker_pid)
    started = time.perf_counter()
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=work, start_new_session=True
        )
    samples: list[tuple[float, int]] = []
    first = float("nan")
    note = ""
    deadline = started + timeout_s
    cpu = float("nan")
    fed_at = 0.0
    feeder: threading.Thread | None = None
    try:
        while True:
            if feed is not None and feeder is None and feed[0]():
                feeder = threading.Thread(target=feed[1], daemon=True)
                fed_at = time.perf_counter() - started
                feeder.start()
            now = time.perf_counter()
            n = end_offsets(watcher, sink)
            samples.append((now - started, n))
            if n and first != first:
                first = now - started
            if n >= expected:
                break
            if proc.poll() is not None:
                note = f"exited with {proc.returncode} (see {log_path.name})"
                break
            if now > deadline:
                note = f"timed out at {n}/{expected} outputs; rates from these"
                break
            time.sleep(0.1)
        cpu = cpu_seconds(proc.pid, children=True)
    finally:
        total = samples[-1][0] - fed_at if samples else float("nan")
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        watcher.close()
    broker_cpu = cpu_seconds(broker_pid) - broker0
    outputs = samples[-1][1] if samples else 0
    partial = outputs < expected
    return Result(
        name,
        workload,
        records,
        outputs,
        total,
        first,
        steady_rate(samples, outputs if partial else expected),
        cpu,
        broker_cpu,
        note,
        partial,
    )


def steady_rate(samples: list[tuple[float, int]], expected: int) -> float:
    """Output records/s between 20 % and 80 % of the expected output."""
    lo = next((s for s in samples if s[1] >= expected * 0.2), None)
    hi = next((s for s in samples if s[1] >= expected * 0.8), None)
    if lo is None or hi is None or hi[0] <= lo[0]:
        return float("nan")
    return (hi[1] - lo[1]) / (hi[0] - lo[0])


# --------------------------------------------------------------------------- report


def print_table(results: list[Result]) -> None:
    head = (
        f"{'workload':10} {'processor':9} {'records':>9} {'outputs':>9} {'e2e rec/s':>10} "
        f"{'steady/s':>10} {'1st out s':>9} {'proc cpu':>9} {'brk cpu':>8}  note"
    )
    print(head)
    print("-" * len(head))
    for r in results:
        print(
            f"{r.workload:10} {r.processor:9} {r.records:>9} {r.outputs:>9} "
            f"{r.e2e_rps:>10,.0f} {r.steady_rps:>10,.0f} {r.first_output_s:>9.2f} "
            f"{r.processor_cpu_s:>9.1f} {r.broker_cpu_s:>8.1f}  {r.note}"
        )


@contextlib.contextmanager
def broker(work: Path) -> Iterator[tuple[str, int]]:
    launcher = _load_launcher()
    with launcher.running_broker(work) as b:
        yield b.bootstrap, b.proc.pid


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--stateful-records", type=int, default=1_000_000)
    parser.add_argument("--window-records", type=int, default=1_000_000)
    parser.add_argument("--window-minutes", type=int, default=3)
    parser.add_argument("--join-records", type=int, default=1_000_000)
    parser.add_argument("--keys", type=int, default=100_000)
    parser.add_argument("--quick", action="store_true", help="small inputs (CI smoke test)")
    parser.add_argument(
        "--only", default=",".join(PROCESSORS), help=f"comma list of {', '.join(PROCESSORS)}"
    )
    parser.add_argument(
        "--workloads", default=",".join(WORKLOADS), help=f"comma list of {', '.join(WORKLOADS)}"
    )
    parser.add_argument("--timeout", type=float, default=900.0, help="per processor run (s)")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    parser.add_argument(
        "--keep", type=Path, help="work in this directory and keep it (processor logs, scripts)"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.records, args.stateful_records, args.keys = 20_000, 20_000, 2_000
        args.window_records, args.join_records = 20_000, 20_000
        args.timeout = min(args.timeout, 300.0)
    chosen = [p.strip() for p in args.only.split(",") if p.strip()]
    unknown = sorted(set(chosen) - set(PROCESSORS))
    if unknown:
        parser.error(f"unknown processor(s) {unknown}: choose from {', '.join(PROCESSORS)}")
    workloads = [w.strip() for w in args.workloads.split(",") if w.strip()]
    unknown = sorted(set(workloads) - set(WORKLOADS))
    if unknown:
        parser.error(f"unknown workload(s) {unknown}: choose from {', '.join(WORKLOADS)}")
    results: list[Result] = []
    with contextlib.ExitStack() as stack:
        if args.keep:
            args.keep.mkdir(parents=True, exist_ok=True)
            work = args.keep.resolve()
        else:
            work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="flows-bench-")))
        with broker(work) as (bootstrap, pid):
            for workload in workloads:
                source = f"bench-in-{workload}"
                create_topics(bootstrap, [source])
                if workload == "stateless":
                    records = args.records
                    passing = write_input(bootstrap, source, records, None)
                elif workload == "stateful":
                    records = passing = args.stateful_records
                    write_input(bootstrap, source, records, args.keys)
                elif workload == "window":
                    records = passing = args.window_records
                    # Event times start on a whole minute in the recent past (well inside the
                    # topics' retention) and advance evenly through --window-minutes.
                    span_ms = args.window_minutes * 60_000
                    start_ms = (int(time.time() * 1000) - span_ms) // 60_000 * 60_000 - 60_000
                    write_input(
                        bootstrap,
                        source,
                        records,
                        args.keys,
                        start_ms=start_ms,
                        span_ms=span_ms,
                    )
                else:
                    records = passing = args.join_records
                    table = table_topic(workload)
                    create_topics(bootstrap, [table])
                    write_table(bootstrap, table, args.keys, int(time.time() * 1000) - 60_000)
                    pairs = encode_input(records, args.keys)
                for name in chosen:
                    if name not in RUNS_ON.get(workload, PROCESSORS):
                        continue
                    expected = records if name == "raw" else passing
                    result = run_processor(
                        name,
                        workload,
                        pid,
                        bootstrap,
                        source,
                        records,
                        expected,
                        work,
                        args.timeout,
                        feed=(
                            (
                                partial(committed_all, bootstrap, f"bench-{name}-join", table),
                                partial(produce_all, bootstrap, source, pairs),
                            )
                            if workload == "join"
                            else None
                        ),
                        # --quick: commit the loaded table after 1 s, not the default 30 s
                        flows_args=(
                            ("--commit-interval-ms", "1000")
                            if args.quick and workload == "join"
                            else ()
                        ),
                    )
                    results.append(result)
                    print_table([result])
    print()
    print(
        f"records: stateless {args.records}, stateful {args.stateful_records}, "
        f"window {args.window_records} over {args.window_minutes} min of event time, "
        f"join {args.join_records}; {args.keys} keys; {PARTITIONS} partitions; "
        f"one included broker"
    )
    print_table(results)
    if args.json:
        args.json.write_text(json.dumps([r.__dict__ | {"e2e_rps": r.e2e_rps} for r in results]))
    failed = [r for r in results if r.note and not r.note.startswith("skipped")]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
