"""``flows demo`` -- the page-view pipeline, live, on the embedded broker.

It starts (or reuses) the embedded broker under ``./.flows/``, creates the topics, feeds sample
page views continuously, runs a worker for ``examples/pipeline.py`` in this process, and shows
the counts per page as they change, read back from the output topic. It stops after
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
USERS = [f"user-{i}" for i in range(50)]
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


def _page_view(rng: random.Random) -> tuple[bytes, bytes]:
    user = rng.choice(USERS)
    page = rng.choices(PAGES, weights=[8, 4, 6, 3, 2, 3, 1, 2])[0]
    agent = "bot" if rng.random() < 0.1 else "browser"
    view = {"user": user, "page": page, "agent": agent, "duration_ms": rng.randrange(50, 9000)}
    return user.encode(), json.dumps(view).encode()


async def _feed(
    bootstrap: str, topic: str, rate: int, stop: asyncio.Event, sent: list[int]
) -> None:
    """Produce about ``rate`` page views per second, in batches, until ``stop``."""
    rng = random.Random()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20)
    await producer.start()
    try:
        while not stop.is_set():
            batch = max(1, rate // 10)
            futures = [
                await producer.send(topic, value, key=key)
                for key, value in (_page_view(rng) for _ in range(batch))
            ]
            await asyncio.gather(*futures)
            sent[0] += batch
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.1)
    finally:
        await producer.stop()


async def _read_counts(
    bootstrap: str, topic: str, counts: dict[str, int], stop: asyncio.Event
) -> None:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        parts = consumer.partitions_for_topic(topic)
        while not parts and not stop.is_set():
            await consumer._client.force_metadata_update()
            parts = consumer.partitions_for_topic(topic)
        consumer.assign([TopicPartition(topic, p) for p in sorted(parts or ())])
        while not stop.is_set():
            data = await consumer.getmany(timeout_ms=200)
            for records in data.values():
                for r in records:
                    if r.key is not None and r.value is not None:
                        counts[r.key.decode()] = int.from_bytes(r.value, "big", signed=True)
    finally:
        await consumer.stop()


def _view(counts: dict[str, int], sent: int, started: float, metrics: str) -> Group:
    table = Table(title="page views per page (humans only)", title_justify="left")
    table.add_column("page")
    table.add_column("views", justify="right")
    for page, n in sorted(counts.items(), key=lambda kv: -kv[1]):
        table.add_row(page, str(n))
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
    source = "page-views"
    output = "page-view-counts"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        new = [NewTopic(t, 4, 1) for t in (source, output) if t not in existing]
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
    counts: dict[str, int] = {}
    sent = [0]
    worker_task = asyncio.create_task(worker.run())
    feeder = asyncio.create_task(_feed(bootstrap, source, rate, stop, sent))
    reader = asyncio.create_task(_read_counts(bootstrap, output, counts, stop))
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
        f"{len(counts)} pages counted. The broker keeps running: `flows broker stop` stops it."
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
    """Feed sample page views through examples/pipeline.py and show the counts live."""
    if duration <= 0:
        raise CliError(f"--duration must be positive, got {duration}")
    if rate < 1:
        raise CliError(f"--rate must be at least 1, got {rate}")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    bootstrap = resolve_bootstrap(broker)
    asyncio.run(_demo(bootstrap, pipeline, duration, rate, metrics_port, state_dir))
