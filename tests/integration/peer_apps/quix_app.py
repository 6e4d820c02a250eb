"""A quixstreams app in exactly-once mode: a stateful count per key.

Run as ``python -m tests.integration.peer_apps.quix_app`` with these environment variables:

- ``PEER_BOOTSTRAP``: ``host:port`` of the broker.
- ``PEER_APP_ID``: the consumer group (quixstreams also derives its changelog names from it).
- ``PEER_INPUT`` / ``PEER_OUTPUT``: input and output topic names.
- ``PEER_STATE_DIR``: the RocksDB state directory.
- ``PEER_LIBRDKAFKA_DEBUG``: optional librdkafka ``debug`` contexts (e.g. ``broker,protocol``).
- ``PEER_SLEEP_MS``: optional pause per record, so that a test can kill the app while a
  transaction is open.
- ``PEER_TXN_TIMEOUT_MS`` / ``PEER_SESSION_TIMEOUT_MS``: optional producer
  ``transaction.timeout.ms`` and consumer ``session.timeout.ms``, so that the broker ends a
  killed instance's transaction and group membership soon.

Every input record increments a per-key count kept in quixstreams State (RocksDB, with a
changelog topic) and produces ``key -> {"count": n}`` to the output topic. With
``processing_guarantee="exactly-once"`` the output, the changelog and the consumed offsets
are committed in one Kafka transaction, so a ``read_committed`` reader sees each count once.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from quixstreams import Application, State

BOOTSTRAP = os.environ["PEER_BOOTSTRAP"]
APP_ID = os.environ.get("PEER_APP_ID", "quix-peer")
INPUT = os.environ.get("PEER_INPUT", "quix-in")
OUTPUT = os.environ.get("PEER_OUTPUT", "quix-out")
STATE_DIR = os.environ.get("PEER_STATE_DIR", ".quix-state")
DEBUG = os.environ.get("PEER_LIBRDKAFKA_DEBUG", "")
SLEEP_S = int(os.environ.get("PEER_SLEEP_MS", "0")) / 1000
TXN_TIMEOUT_MS = os.environ.get("PEER_TXN_TIMEOUT_MS", "")
SESSION_TIMEOUT_MS = os.environ.get("PEER_SESSION_TIMEOUT_MS", "")


def count(value: Any, state: State) -> dict[str, int]:
    """Increment this key's count in State and emit the new count."""
    if SLEEP_S:
        time.sleep(SLEEP_S)
    n = int(state.get("count", 0)) + 1
    state.set("count", n)
    return {"count": n}


class FirstRecordReporter:
    """Prints one line the first time this instance processes a record of a partition,
    so that a test can tell which instances took part (without debug logging)."""

    def __init__(self) -> None:
        self.seen: set[tuple[str, int]] = set()

    def __call__(self, topic: str, partition: int, offset: int) -> None:
        if (topic, partition) not in self.seen:
            self.seen.add((topic, partition))
            print(f"peer processed {topic}[{partition}] from offset {offset}", flush=True)


def main() -> None:
    consumer_extra: dict[str, str] = {"debug": DEBUG} if DEBUG else {}
    producer_extra = dict(consumer_extra)
    if TXN_TIMEOUT_MS:
        producer_extra["transaction.timeout.ms"] = TXN_TIMEOUT_MS
    if SESSION_TIMEOUT_MS:
        consumer_extra["session.timeout.ms"] = SESSION_TIMEOUT_MS
        # librdkafka times the session out on its own side too: heartbeat well within it.
        consumer_extra["heartbeat.interval.ms"] = str(max(int(SESSION_TIMEOUT_MS) // 6, 100))
    app = Application(
        broker_address=BOOTSTRAP,
        consumer_group=APP_ID,
        auto_offset_reset="earliest",
        processing_guarantee="exactly-once",
        state_dir=STATE_DIR,
        commit_interval=1.0,
        consumer_extra_config=consumer_extra,
        producer_extra_config=producer_extra,
        on_message_processed=FirstRecordReporter(),
        loglevel=logging.getLevelName(os.environ.get("PEER_LOGLEVEL", "INFO").upper()),
    )
    source = app.topic(INPUT, key_deserializer="str", value_deserializer="bytes")
    sink = app.topic(OUTPUT, key_serializer="str", value_serializer="json")
    sdf = app.dataframe(source)
    sdf = sdf.apply(count, stateful=True)
    sdf.to_topic(sink)
    app.run()


if __name__ == "__main__":
    main()
