"""Fixtures for worker tests: a real broker, worker subprocesses, topic helpers.

Workers run as ``python -c "from flows.cli import main; main()" worker ...`` subprocesses with
their own state directories, exactly as a user starts them. Every wait polls with a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.structs import TopicPartition

REPO_ROOT = Path(__file__).resolve().parents[2]


def _launcher() -> Any:
    path = REPO_ROOT / "tests" / "integration" / "conftest.py"
    spec = importlib.util.spec_from_file_location("flows_worker_tests_launcher", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Any]:
    launcher = _launcher()
    proc = launcher.BrokerProcess(tmp_path / "broker-logs", tmp_path / "broker-output.txt")
    proc.start()
    try:
        yield proc
    finally:
        proc.close()
        print("----- broker output -----")
        print(proc.tail(3000))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class WorkerProcess:
    """One ``flows worker`` subprocess; its output goes to a file for assertions."""

    def __init__(
        self,
        app_file: Path,
        bootstrap: str,
        state_dir: Path,
        log_path: Path,
        *extra: str,
    ) -> None:
        self.log_path = log_path
        cmd = [
            sys.executable,
            "-c",
            "from flows.cli import main; main()",
            "worker",
            "-A",
            str(app_file),
            "--broker",
            f"kafka://{bootstrap}",
            "--state-dir",
            str(state_dir),
            *extra,
        ]
        env = dict(os.environ)
        env["PYTHONPATH"] = str(REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
        env["PYTHONUNBUFFERED"] = "1"
        env.pop("FLOWS_BROKER", None)
        self._log = log_path.open("ab")
        self.proc = subprocess.Popen(
            cmd, stdout=self._log, stderr=subprocess.STDOUT, env=env, cwd=str(app_file.parent)
        )

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def terminate(self, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()
        return self.proc.returncode

    def kill9(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._log.close()


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    started: list[WorkerProcess] = []

    def start(app_file: Path, bootstrap: str, name: str, *extra: str) -> WorkerProcess:
        w = WorkerProcess(
            app_file,
            bootstrap,
            tmp_path / f"state-{name}",
            tmp_path / f"worker-{name}-{len(started)}.log",
            *extra,
        )
        started.append(w)
        return w

    yield start
    for w in started:
        with contextlib.suppress(Exception):
            w.terminate(timeout=20)
        print(f"----- worker {w.log_path.name} -----")
        print(w.output()[-4000:])


def wait_for(
    what: str, check: Callable[[], Any], timeout: float = 120, interval: float = 0.5
) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


# -- kafka helpers (synchronous wrappers around aiokafka) -------------------------------------


def create_topics(bootstrap: str, topics: dict[str, int]) -> None:
    async def go() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(t, n, 1) for t, n in topics.items()])
        finally:
            await admin.close()

    asyncio.run(go())


def produce(
    bootstrap: str,
    topic: str,
    records: Sequence[tuple[bytes | None, bytes | None] | tuple[bytes | None, bytes | None, int]],
    partition: int | None = None,
) -> None:
    """Produce ``(key, value)`` or ``(key, value, timestamp_ms)`` records and wait for acks."""

    async def go() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
        await producer.start()
        try:
            futures = []
            for key, value, *ts in records:
                futures.append(
                    await producer.send(
                        topic,
                        value,
                        key=key,
                        partition=partition,
                        timestamp_ms=ts[0] if ts else None,
                    )
                )
            await asyncio.gather(*futures)
        finally:
            await producer.stop()

    asyncio.run(go())


def read_all(bootstrap: str, topic: str, *, isolation_level: str = "read_uncommitted") -> list[Any]:
    """Every record of ``topic`` up to its current end."""

    async def go() -> list[Any]:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level=isolation_level,
        )
        await consumer.start()
        try:
            try:
                await consumer._client._wait_on_metadata(topic)
            except Exception:  # unknown topic: nothing to read
                return []
            parts = consumer.partitions_for_topic(topic) or set()
            tps = [TopicPartition(topic, p) for p in sorted(parts)]
            if not tps:
                return []
            consumer.assign(tps)
            ends = await consumer.end_offsets(tps)
            for tp in tps:
                consumer.seek(tp, 0)
            out: list[Any] = []
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                done = True
                for tp in tps:
                    if await consumer.position(tp) < ends[tp]:
                        done = False
                if done:
                    break
                batch = await consumer.getmany(timeout_ms=500)
                for recs in batch.values():
                    out.extend(recs)
            return out
        finally:
            await consumer.stop()

    return asyncio.run(go())


def latest_counts(bootstrap: str, topic: str, **kw: Any) -> dict[str, int]:
    out = {}
    for r in sorted(read_all(bootstrap, topic, **kw), key=lambda r: (r.partition, r.offset)):
        out[r.key.decode()] = int.from_bytes(r.value, "big", signed=True)
    return out


def metrics_text(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        return resp.read().decode()


def metric_sum(text: str, name: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            m = re.match(rf"^{re.escape(name)}(\{{[^}}]*\}})?\s+(\S+)$", line)
            if m:
                total += float(m.group(2))
    return total


RESTORED_LINE = re.compile(r"task (\S+) store (\S+) restored (\d+) records")


def restored_counts(output: str) -> list[int]:
    """Records restored per store, from the workers' restore-complete log lines."""
    return [int(m.group(3)) for m in RESTORED_LINE.finditer(output)]


def committed_to_end(bootstrap: str, group: str, topics: list[str]) -> bool:
    """True when ``group`` has committed every partition of ``topics`` up to its end."""

    async def go() -> bool:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        await admin.start()
        await consumer.start()
        try:
            committed = await admin.list_consumer_group_offsets(group)
            tps = []
            for topic in topics:
                await consumer._client._wait_on_metadata(topic)
                tps += [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
            ends = await consumer.end_offsets(tps)
            return all(
                ends[tp] == 0 or (tp in committed and committed[tp].offset >= ends[tp])
                for tp in tps
            )
        finally:
            await consumer.stop()
            await admin.close()

    return asyncio.run(go())
