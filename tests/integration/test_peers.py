"""Other stream-processing frameworks run end to end on the included broker.

A faust-streaming app (an agent and a table with its compacted changelog) and a
quixstreams app (a stateful count in exactly-once mode, so transactions and
``read_committed``) each run unmodified as a subprocess against a broker started for the
test. The test produces a known input with confluent-kafka, reads the app's output until
the expected final count per key appears (polling with a deadline; nothing is timed), and
checks the counts exactly. The apps live in ``tests/integration/peer_apps/``.

Beyond the plain run: a faust worker restarted on an empty data dir rebuilds its table from
the changelog; a quixstreams app restarted on an empty state dir, killed with SIGKILL
inside a transaction, or joined by a second instance mid-stream still shows every count
exactly once to a ``read_committed`` reader.

To see why a peer fails, set ``PEER_LOGLEVEL=debug`` (faust, including aiokafka's
requests and responses) or ``PEER_LOGLEVEL=DEBUG PEER_LIBRDKAFKA_DEBUG=broker,protocol``
(quixstreams); the apps' output files are kept in the test's temporary directory.

The peers are optional dependencies (the ``bench`` extra); without them these tests are
skipped with the reason.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import REPO_ROOT, BrokerFactory, BrokerProcess

pytestmark = pytest.mark.peers

WAIT_S = float(os.environ.get("PEER_WAIT_S", "90"))
RECORDS = 1000
KEYS = 20
PARTITIONS = 2
OVERRIDES = {
    "offsets.topic.num.partitions": "1",
    "transaction.state.log.num.partitions": "1",
    "transaction.abort.timed.out.transaction.cleanup.interval.ms": "200",
    "group.initial.rebalance.delay.ms": "0",
    "group.min.session.timeout.ms": "1000",
}


@pytest.fixture
def faust_installed() -> None:
    require("faust", "faust-streaming")


@pytest.fixture
def quix_installed() -> None:
    require("quixstreams", "quixstreams")


@pytest.fixture
def peer_broker(start_broker: BrokerFactory) -> BrokerProcess:
    return start_broker(OVERRIDES)


# -- helpers -----------------------------------------------------------------------------


def require(module: str, package: str) -> None:
    """Skip unless the peer is importable (it belongs to the optional ``bench`` extra)."""
    # Recording swallows the deprecation warning that quixstreams' authlib import emits
    # (authlib forces its own warnings filter to "always", so a filter mark cannot).
    with warnings.catch_warnings(record=True):
        pytest.importorskip(module, reason=f"{package} is not installed (bench extra)")


def create_topic(bootstrap: str, name: str, partitions: int) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(name, partitions, 1)]).values():
        future.result(30)


def produce_input(
    bootstrap: str, topic: str, *, first: int = 0, count: int = RECORDS, create: bool = True
) -> Counter[str]:
    """Write records ``first .. first+count-1`` over KEYS keys; return the count per key."""
    from confluent_kafka import Producer

    if create:
        create_topic(bootstrap, topic, PARTITIONS)
    producer = Producer({"bootstrap.servers": bootstrap, "partitioner": "murmur2_random"})
    expected: Counter[str] = Counter()
    for i in range(first, first + count):
        key = f"key-{i % KEYS:02d}"
        expected[key] += 1
        producer.produce(topic, key=key.encode(), value=f"value-{i}".encode())
    assert producer.flush(30) == 0
    return expected


class PeerProcess:
    """A peer app subprocess whose output goes to a file (shown when a test fails)."""

    def __init__(self, module: str, env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        with open(log_path, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", module],
                cwd=REPO_ROOT,
                env=dict(os.environ, PYTHONUNBUFFERED="1", **env),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    def tail(self, n_chars: int = 8000) -> str:
        return self.log_path.read_bytes().decode("utf-8", "replace")[-n_chars:]

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise AssertionError(
                f"peer app exited with code {self.proc.returncode}:\n{self.tail()}"
            )

    def kill9(self) -> None:
        """Crash the app (SIGKILL): no commit, no abort, no LeaveGroup."""
        self.proc.kill()
        self.proc.wait(10)

    def stop(self) -> int | None:
        """Clean stop (SIGTERM, as an operator would), escalating to SIGKILL."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode


@pytest.fixture
def run_peer(tmp_path: Path) -> Iterator[Callable[..., PeerProcess]]:
    started: list[PeerProcess] = []

    def start(module: str, env: dict[str, str]) -> PeerProcess:
        name = f"{module.rsplit('.', 1)[-1]}-{len(started)}.log"
        peer = PeerProcess(module, env, tmp_path / name)
        started.append(peer)
        return peer

    yield start
    for peer in started:
        peer.stop()
        print(f"----- peer output ({peer.log_path.name}) -----")
        print(peer.tail())


def read_topic(
    bootstrap: str,
    topic: str,
    done: Callable[[list[tuple[str, bytes]]], bool],
    *,
    read_committed: bool = False,
    alive: Callable[[], None] = lambda: None,
) -> list[tuple[str, bytes]]:
    """Read every partition of ``topic`` from the start until ``done(records)`` holds.

    Waits for the topic to appear (the peer app creates it). Raises with what was read if
    the deadline passes first.
    """
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"peer-test-reader-{topic}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed" if read_committed else "read_uncommitted",
        }
    )
    records: list[tuple[str, bytes]] = []
    deadline = time.monotonic() + WAIT_S
    try:
        partitions = 0
        while partitions == 0:
            meta = consumer.list_topics(topic, timeout=10).topics.get(topic)
            if meta is not None and meta.error is None:
                partitions = len(meta.partitions)
            if partitions == 0:
                alive()
                assert time.monotonic() < deadline, f"topic {topic} was never created"
                time.sleep(0.5)
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
        while not done(records):
            assert time.monotonic() < deadline, (
                f"{topic}: expected output not seen in {WAIT_S}s; "
                f"{len(records)} records, last per key {last_per_key(records)}"
            )
            alive()
            records.extend(_consume(consumer))
        # Drain what is already there, so that a duplicate right after the expected
        # output is seen too.
        while batch := _consume(consumer):
            records.extend(batch)
        return records
    finally:
        consumer.close()


def _consume(consumer: Any) -> list[tuple[str, bytes]]:
    return [
        (msg.key().decode(), msg.value())
        for msg in consumer.consume(500, 0.5)
        if msg.error() is None
    ]


def last_per_key(
    records: list[tuple[str, bytes]], decode: Callable[[bytes], Any] = json.loads
) -> dict[str, Any]:
    return {key: decode(value) for key, value in records}


def wait_committed(bootstrap: str, group: str, topic: str, total: int) -> None:
    """Wait until ``group`` committed offsets summing to ``total`` on ``topic``."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        deadline = time.monotonic() + WAIT_S
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        while True:
            committed = consumer.committed(tps, timeout=10)
            offsets = sum(max(tp.offset, 0) for tp in committed)
            if offsets == total:
                return
            assert time.monotonic() < deadline, (
                f"group {group} committed {offsets} of {total} offsets on {topic}"
            )
            time.sleep(0.2)
    finally:
        consumer.close()


def describe_topic_config(bootstrap: str, topic: str) -> dict[str, str]:
    from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType

    admin = AdminClient({"bootstrap.servers": bootstrap})
    resource = ConfigResource(ResourceType.TOPIC, topic)
    configs = admin.describe_configs([resource])[resource].result(30)
    return {name: entry.value for name, entry in configs.items()}


# -- faust-streaming ---------------------------------------------------------------------

FAUST_APP = "tests.integration.peer_apps.faust_app"
FAUST_ID = "faust-peer"


def faust_env(bootstrap: str, state_dir: Path) -> dict[str, str]:
    return {
        "PEER_BOOTSTRAP": bootstrap,
        "PEER_APP_ID": FAUST_ID,
        "PEER_INPUT": "faust-in",
        "PEER_OUTPUT": "faust-out",
        "PEER_PARTITIONS": str(PARTITIONS),
        "PEER_STATE_DIR": str(state_dir),
        "PEER_LOGLEVEL": os.environ.get("PEER_LOGLEVEL", "info"),
    }


def check_faust_changelog(bootstrap: str, want: dict[str, int], peer: PeerProcess) -> None:
    """The table's changelog is a compacted topic whose last value per key is the count."""
    changelog = f"{FAUST_ID}-counts-changelog"
    assert describe_topic_config(bootstrap, changelog)["cleanup.policy"] == "compact"
    table = read_topic(
        bootstrap, changelog, lambda recs: last_per_key(recs) == want, alive=peer.check_alive
    )
    assert last_per_key(table) == want


# faust logs this at INFO once a (re)started worker has restored its tables and moved its
# source partitions to the committed offsets; from then on it processes input normally.
FAUST_READY = "Recovery]: Worker ready"


def wait_faust_ready(peer: PeerProcess) -> None:
    """Wait until the worker's recovery is complete (its log says so; level info or debug)."""
    deadline = time.monotonic() + WAIT_S
    while FAUST_READY not in peer.tail(10_000_000):
        peer.check_alive()
        assert time.monotonic() < deadline, (
            f"faust worker did not log {FAUST_READY!r} in {WAIT_S}s "
            f"(PEER_LOGLEVEL must be info or debug):\n{peer.tail()}"
        )
        time.sleep(0.2)


def test_faust_agent_and_table(
    faust_installed: None,
    peer_broker: BrokerProcess,
    run_peer: Callable[..., PeerProcess],
    tmp_path: Path,
) -> None:
    bootstrap = peer_broker.bootstrap
    want = dict(produce_input(bootstrap, "faust-in"))
    peer = run_peer(FAUST_APP, faust_env(bootstrap, tmp_path / "faust-state"))

    out = read_topic(
        bootstrap, "faust-out", lambda recs: last_per_key(recs) == want, alive=peer.check_alive
    )
    assert last_per_key(out) == want
    check_faust_changelog(bootstrap, want, peer)
    assert peer.stop() == 0, peer.tail()


def test_faust_restart_restores_table_from_changelog(
    faust_installed: None,
    peer_broker: BrokerProcess,
    run_peer: Callable[..., PeerProcess],
    tmp_path: Path,
) -> None:
    """A worker restarted with an empty data dir rebuilds the table from the changelog."""
    bootstrap = peer_broker.bootstrap
    half = RECORDS // 2
    first = produce_input(bootstrap, "faust-in", count=half)
    peer = run_peer(FAUST_APP, faust_env(bootstrap, tmp_path / "faust-state"))
    want = dict(first)
    read_topic(
        bootstrap, "faust-out", lambda recs: last_per_key(recs) == want, alive=peer.check_alive
    )
    # faust is at-least-once: stop only once the consumed offsets are committed, so that
    # the second run neither reprocesses nor skips a record. faust commits source offsets
    # without waiting for the table's changelog sends to be acknowledged, so also wait for
    # the changelog to hold every count: the second worker restores exactly that.
    wait_committed(bootstrap, FAUST_ID, "faust-in", half)
    check_faust_changelog(bootstrap, want, peer)
    assert peer.stop() == 0, peer.tail()

    # A new data dir, as on another machine: the table must come from the changelog.
    peer = run_peer(FAUST_APP, faust_env(bootstrap, tmp_path / "faust-state-2"))
    # Produce the second half only once the worker is ready. A faust worker (0.15) that
    # starts with input already waiting behind its committed offsets fetches and processes
    # some of it while recovering, before it seeks its source partitions to the committed
    # offsets; when the seek lands, its read-offset and acknowledgement bookkeeping can
    # drop some of the records it reads again and repeat others (final counts a little
    # short or over). With no input waiting there is nothing to read early, so every
    # record is processed once; the counts still continue from the restored table.
    wait_faust_ready(peer)
    second = produce_input(bootstrap, "faust-in", first=half, count=half, create=False)
    want = dict(first + second)
    out = read_topic(
        bootstrap, "faust-out", lambda recs: last_per_key(recs) == want, alive=peer.check_alive
    )
    assert last_per_key(out) == want
    check_faust_changelog(bootstrap, want, peer)
    assert peer.stop() == 0, peer.tail()


# -- quixstreams -------------------------------------------------------------------------

QUIX_APP = "tests.integration.peer_apps.quix_app"
QUIX_ID = "quix-peer"


def quix_env(bootstrap: str, state_dir: Path, **extra: str) -> dict[str, str]:
    return {
        **extra,
        "PEER_BOOTSTRAP": bootstrap,
        "PEER_APP_ID": QUIX_ID,
        "PEER_INPUT": "quix-in",
        "PEER_OUTPUT": "quix-out",
        "PEER_STATE_DIR": str(state_dir),
        "PEER_LIBRDKAFKA_DEBUG": os.environ.get("PEER_LIBRDKAFKA_DEBUG", ""),
    }


def read_quix_counts(bootstrap: str, want: Counter[str], peer: PeerProcess) -> dict[str, list[int]]:
    """Read the output with read_committed until the final counts; return counts per key."""
    final = {key: {"count": n} for key, n in want.items()}
    out = read_topic(
        bootstrap,
        "quix-out",
        lambda recs: last_per_key(recs) == final,
        read_committed=True,
        alive=peer.check_alive,
    )
    seen: dict[str, list[int]] = {}
    for key, value in out:
        seen.setdefault(key, []).append(json.loads(value)["count"])
    return seen


def exactly_once(expected: Counter[str]) -> dict[str, list[int]]:
    """What a read_committed reader sees under exactly-once: each key's counts 1..n once,
    in order (one key always lands in one partition)."""
    return {key: list(range(1, n + 1)) for key, n in expected.items()}


def output_end_offsets(bootstrap: str, topic: str) -> int:
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "peer-test-offsets"})
    try:
        meta = consumer.list_topics(topic, timeout=10).topics[topic]
        return sum(
            consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in meta.partitions
        )
    finally:
        consumer.close()


def test_quixstreams_exactly_once_stateful_count(
    quix_installed: None,
    peer_broker: BrokerProcess,
    run_peer: Callable[..., PeerProcess],
    tmp_path: Path,
) -> None:
    bootstrap = peer_broker.bootstrap
    expected = produce_input(bootstrap, "quix-in")
    peer = run_peer(QUIX_APP, quix_env(bootstrap, tmp_path / "quix-state"))

    assert read_quix_counts(bootstrap, expected, peer) == exactly_once(expected)
    # The output was written in transactions: commit markers take offsets of their own.
    assert output_end_offsets(bootstrap, "quix-out") > RECORDS
    wait_committed(bootstrap, QUIX_ID, "quix-in", RECORDS)
    assert peer.stop() == 0, peer.tail()


def test_quixstreams_restart_recovers_state_from_changelog(
    quix_installed: None,
    peer_broker: BrokerProcess,
    run_peer: Callable[..., PeerProcess],
    tmp_path: Path,
) -> None:
    """A second run with an empty state dir restores the counts from the changelog topic
    (which holds transaction markers) and continues them exactly once."""
    bootstrap = peer_broker.bootstrap
    half = RECORDS // 2
    first = produce_input(bootstrap, "quix-in", count=half)
    peer = run_peer(QUIX_APP, quix_env(bootstrap, tmp_path / "quix-state-1"))
    assert read_quix_counts(bootstrap, first, peer) == exactly_once(first)
    assert peer.stop() == 0, peer.tail()

    second = produce_input(bootstrap, "quix-in", first=half, count=half, create=False)
    expected = first + second
    peer = run_peer(QUIX_APP, quix_env(bootstrap, tmp_path / "quix-state-2"))
    assert read_quix_counts(bootstrap, expected, peer) == exactly_once(expected)
    assert peer.stop() == 0, peer.tail()


def test_quixstreams_crash_mid_transaction_stays_exactly_once(
    quix_installed: None,
    peer_broker: BrokerProcess,
    run_peer: Callable[..., PeerProcess],
    tmp_path: Path,
) -> None:
    """An instance killed with SIGKILL while a transaction is open: the broker aborts that
    transaction when it times out, and a new instance (empty state dir, so state comes
    from the changelog) finishes the input; read_committed readers see every count once."""
    bootstrap = peer_broker.bootstrap
    expected = produce_input(bootstrap, "quix-in")
    slow = {
        "PEER_SLEEP_MS": "10",
        "PEER_TXN_TIMEOUT_MS": "5000",
        "PEER_SESSION_TIMEOUT_MS": "3000",
    }
    peer = run_peer(QUIX_APP, quix_env(bootstrap, tmp_path / "quix-state-1", **slow))
    # Kill once some transactions are committed but before the input is done.
    read_topic(
        bootstrap,
        "quix-out",
        lambda recs: len(recs) >= 100,
        read_committed=True,
        alive=peer.check_alive,
    )
    peer.kill9()

    fast = {"PEER_TXN_TIMEOUT_MS": "5000", "PEER_SESSION_TIMEOUT_MS": "3000"}
    peer = run_peer(QUIX_APP, quix_env(bootstrap, tmp_path / "quix-state-2", **fast))
    assert read_quix_counts(bootstrap, expected, peer) == exactly_once(expected)
    assert peer.stop() == 0, peer.tail()


def test_quixstreams_rebalance_between_two_instances_stays_exactly_once(
    quix_installed: None,
    peer_broker: BrokerProcess,
    run_peer: Callable[..., PeerProcess],
    tmp_path: Path,
) -> None:
    """A second instance joins mid-stream: the group rebalances, one partition moves with
    its state (restored from the changelog), and the output is still exactly once."""
    bootstrap = peer_broker.bootstrap
    expected = produce_input(bootstrap, "quix-in")
    slow = {"PEER_SLEEP_MS": "10", "PEER_SESSION_TIMEOUT_MS": "6000"}
    first = run_peer(QUIX_APP, quix_env(bootstrap, tmp_path / "quix-state-1", **slow))
    read_topic(
        bootstrap,
        "quix-out",
        lambda recs: len(recs) >= 100,
        read_committed=True,
        alive=first.check_alive,
    )
    second = run_peer(QUIX_APP, quix_env(bootstrap, tmp_path / "quix-state-2", **slow))

    def both_alive() -> None:
        first.check_alive()
        second.check_alive()

    final = {key: {"count": n} for key, n in expected.items()}
    out = read_topic(
        bootstrap,
        "quix-out",
        lambda recs: last_per_key(recs) == final,
        read_committed=True,
        alive=both_alive,
    )
    seen: dict[str, list[int]] = {}
    for key, value in out:
        seen.setdefault(key, []).append(json.loads(value)["count"])
    assert seen == exactly_once(expected)
    assert "peer processed quix-in[" in second.tail(100_000), "the second instance got no work"
    assert first.stop() == 0, first.tail()
    assert second.stop() == 0, second.tail()
