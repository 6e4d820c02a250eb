"""``flows demo`` -- the page-view pipeline, live, on the embedded broker.

It starts (or reuses) the embedded broker under ``./.flows/``, creates the topics, writes a small
``users`` table (a few of them bots), then feeds sample page views continuously, runs a worker for
``examples/pipeline.py`` in this process, and shows per page the human views of the current
minute and in total as they change, read back from the output topics. It stops after
``--duration`` seconds or on Ctrl-C, stopping everything it started except the broker
(``flows broker stop`` stops that).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import logging
import random
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.structs import TopicPartition
from rich.console import Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from flows.cli import app
from flows.cli._common import BrokerOption, CliError, console, handle_errors, resolve_bootstrap

PAGES = ["/", "/pricing", "/docs", "/docs/dsl", "/docs/state", "/blog", "/about", "/signup"]
NAMES = ["Ann", "Bob", "Chloé", "Dev", "Emma", "Farid", "Gus", "Hana", "Ivo", "Jun", "Kim", "Lea"]
COUNTRIES = ["FR", "DE", "US", "JP", "BR", "IN"]
BOTS = {"googlebot": "Googlebot", "bingbot": "Bingbot", "uptime-probe": "Uptime probe"}
SOURCE, USERS_TOPIC = "page-views", "users"
PER_MINUTE, TOTALS = "page-views-per-minute", "page-view-counts"
DEFAULT_PIPELINE = Path(__file__).resolve().parents[2] / "examples" / "pipeline.py"


def _load_pipeline(path: Path) -> Any:
    if not path.is_file():
        raise CliError(
            f"flow module {str(path)!r} not found: run from a flows checkout or pass "
            f"--pipeline path/to/pipeline.py"
        )
    spec = importlib.util.spec_from_file_location("flows_demo_pipeline", path)
    if spec is None or spec.loader is None:
        raise CliError(f"cannot import {str(path)!r}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module.app


def _users() -> dict[str, dict[str, Any]]:
    """The ``users`` table the demo writes: humans with a country and plan, and a few bots."""
    users: dict[str, dict[str, Any]] = {}
    for i, name in enumerate(NAMES):
        users[f"user-{i}"] = {
            "name": name,
            "country": COUNTRIES[i % len(COUNTRIES)],
            "plan": "pro" if i % 4 == 0 else "free",
            "is_bot": False,
        }
    for user_id, name in BOTS.items():
        users[user_id] = {"name": name, "country": "", "plan": "internal", "is_bot": True}
    return users


def _page_view(rng: random.Random, humans: list[str]) -> tuple[bytes, bytes]:
    user = rng.choice(list(BOTS)) if rng.random() < 0.15 else rng.choice(humans)
    page = rng.choices(PAGES, weights=[8, 4, 6, 3, 2, 3, 1, 2])[0]
    view = {
        "page": page,
        "timestamp": int(time.time() * 1000),
        "duration_ms": rng.randrange(50, 9000),
    }
    return user.encode(), json.dumps(view).encode()


async def _feed(
    bootstrap: str, topic: str, rate: int, stop: asyncio.Event, sent: list[int]
) -> None:
    """Write the users table, then about ``rate`` page views per second, until ``stop``."""
    rng = random.Random()
    users = _users()
    humans = [u for u, profile in users.items() if not profile["is_bot"]]
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20)
    await producer.start()
    try:
        futures = [
            await producer.send(USERS_TOPIC, json.dumps(profile).encode(), key=user.encode())
            for user, profile in users.items()
        ]
        await asyncio.gather(*futures)
        while not stop.is_set():
            batch = max(1, rate // 10)
            futures = [
                await producer.send(topic, value, key=key)
                for key, value in (_page_view(rng, humans) for _ in range(batch))
            ]
            await asyncio.gather(*futures)
            sent[0] += batch
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.1)
    finally:
        await producer.stop()


class _Counts:
    """What the live table shows, read back from the two output topics."""

    def __init__(self) -> None:
        self.totals: dict[str, int] = {}
        self.minute: dict[str, tuple[int, int]] = {}  # page -> (window start, count)
        self.current = 0  # the newest window start seen

    def add(self, topic: str, key: bytes, value: bytes) -> None:
        page = key.decode()
        if topic == TOTALS:
            self.totals[page] = int.from_bytes(value, "big", signed=True)
            return
        row = json.loads(value)
        start = int(row["window_start"])
        if start >= self.minute.get(page, (start, 0))[0]:
            self.minute[page] = (start, int(row["count"]))
        self.current = max(self.current, start)

    def this_minute(self, page: str) -> int:
        start, n = self.minute.get(page, (-1, 0))
        return n if start == self.current else 0


async def _read_counts(bootstrap: str, counts: _Counts, stop: asyncio.Event) -> None:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        tps: list[TopicPartition] = []
        while not stop.is_set():
            tps = [
                TopicPartition(topic, p)
                for topic in (PER_MINUTE, TOTALS)
                for p in sorted(consumer.partitions_for_topic(topic) or ())
            ]
            if {tp.topic for tp in tps} == {PER_MINUTE, TOTALS}:
                break
            await consumer._client.force_metadata_update()
        consumer.assign(tps)
        while not stop.is_set():
            data = await consumer.getmany(timeout_ms=200)
            for tp, records in data.items():
                for r in records:
                    if r.key is not None and r.value is not None:
                        counts.add(tp.topic, r.key, r.value)
    finally:
        await consumer.stop()


def _view(counts: _Counts, sent: int, started: float, metrics: str) -> Group:
    minute = "this minute"
    if counts.current:
        minute = time.strftime("minute %H:%M UTC", time.gmtime(counts.current / 1000))
    table = Table(
        title="page views per page (humans only)",
        title_justify="left",
        caption="bots are the users marked is_bot in the users table",
        caption_justify="left",
    )
    table.add_column("page")
    table.add_column(minute, justify="right")
    table.add_column("total", justify="right")
    for page, n in sorted(
        counts.totals.items(), key=lambda kv: (-counts.this_minute(kv[0]), -kv[1], kv[0])
    ):
        table.add_row(page, str(counts.this_minute(page)), str(n))
    footer = Text(
        f"{sent} page views sent in {time.monotonic() - started:.0f}s · Ctrl-C stops\n"
        f"metrics: {metrics}",
        style="dim",
    )
    return Group(table, footer)


async def _demo(
    bootstrap: str, pipeline: Path, duration: float, rate: int, metrics_port: int, state_dir: Path
) -> None:
    from core.worker.config import WorkerConfig
    from core.worker.worker import Worker

    flow = _load_pipeline(pipeline)
    topology = flow.topology
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        # page-views and users are joined by user id: they need the same partition count
        topics = (SOURCE, USERS_TOPIC, PER_MINUTE, TOTALS)
        new = [NewTopic(t, 4, 1) for t in topics if t not in existing]
        if new:
            await admin.create_topics(new)
    finally:
        await admin.close()
    config = WorkerConfig(
        bootstrap=bootstrap,
        state_dir=state_dir,
        metrics_port=metrics_port,
        commit_interval_ms=1000,
        errors=flow.errors,
    )
    worker = Worker(topology, config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    import signal

    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    counts = _Counts()
    sent = [0]
    worker_task = asyncio.create_task(worker.run())
    feeder = asyncio.create_task(_feed(bootstrap, SOURCE, rate, stop, sent))
    reader = asyncio.create_task(_read_counts(bootstrap, counts, stop))
    started = time.monotonic()
    while worker.metrics_port is None and not worker_task.done():
        await asyncio.sleep(0.05)
    metrics = f"http://127.0.0.1:{worker.metrics_port}/metrics"
    console.print(f"broker {bootstrap} · worker for {pipeline.name} · metrics at {metrics}")
    try:
        with Live(
            _view(counts, 0, started, metrics), console=console, refresh_per_second=4
        ) as live:
            while not stop.is_set() and time.monotonic() - started < duration:
                if worker_task.done():
                    break
                live.update(_view(counts, sent[0], started, metrics))
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(stop.wait(), 0.25)
            live.update(_view(counts, sent[0], started, metrics))
    finally:
        stop.set()
        worker.stop()
        await asyncio.gather(feeder, reader, return_exceptions=True)
        results = await asyncio.gather(worker_task, return_exceptions=True)
    console.print()
    if isinstance(results[0], BaseException):
        raise CliError(f"the worker failed: {results[0]}")
    console.print(
        f"stopped after {time.monotonic() - started:.0f}s: {sent[0]} page views, "
        f"{len(counts.totals)} pages counted. The broker keeps running: "
        f"`flows broker stop` stops it."
    )


@app.command("demo")
@handle_errors
def demo(
    broker: BrokerOption = None,
    duration: Annotated[
        float, typer.Option("--duration", help="Seconds to run before stopping.")
    ] = 20.0,
    rate: Annotated[int, typer.Option("--rate", help="Page views produced per second.")] = 200,
    metrics_port: Annotated[
        int, typer.Option("--metrics-port", help="Port for /metrics (0: any free port).")
    ] = 0,
    pipeline: Annotated[
        Path, typer.Option("--pipeline", help="The flow module to run.")
    ] = DEFAULT_PIPELINE,
    state_dir: Annotated[
        Path, typer.Option("--state-dir", help="Where the worker keeps its state.")
    ] = Path(".flows/demo-state"),
) -> None:
    """Feed sample users and page views through examples/pipeline.py; show the counts live."""
    if duration <= 0:
        raise CliError(f"--duration must be positive, got {duration}")
    if rate < 1:
        raise CliError(f"--rate must be at least 1, got {rate}")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    bootstrap = resolve_bootstrap(broker)
    asyncio.run(_demo(bootstrap, pipeline, duration, rate, metrics_port, state_dir))
