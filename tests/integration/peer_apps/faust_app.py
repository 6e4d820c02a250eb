"""A faust-streaming app: an agent counts records per key in a table with a changelog.

Run as ``python -m tests.integration.peer_apps.faust_app`` with these environment variables:

- ``PEER_BOOTSTRAP``: ``host:port`` of the broker.
- ``PEER_APP_ID``: the faust app id (also the consumer group and the changelog prefix).
- ``PEER_INPUT`` / ``PEER_OUTPUT``: input and output topic names.
- ``PEER_PARTITIONS``: partitions of the input topic (the table uses as many).
- ``PEER_STATE_DIR``: faust's data directory (the table's RocksDB lives there).
- ``PEER_SLEEP_MS``: optional pause per record, so that a test can change the group (start
  or stop a worker) while records are still being processed.

Every input record ``key -> anything`` increments ``counts[key]`` (a faust Table, so each
update is also written to the compacted changelog topic ``<app-id>-counts-changelog``) and
sends ``key -> count`` (JSON number) to the output topic. The last output record per key
therefore carries the final count.
"""

from __future__ import annotations

import asyncio
import os
import sys

import faust

BOOTSTRAP = os.environ["PEER_BOOTSTRAP"]
APP_ID = os.environ.get("PEER_APP_ID", "faust-peer")
INPUT = os.environ.get("PEER_INPUT", "faust-in")
OUTPUT = os.environ.get("PEER_OUTPUT", "faust-out")
PARTITIONS = int(os.environ.get("PEER_PARTITIONS", "1"))
STATE_DIR = os.environ.get("PEER_STATE_DIR", ".faust-state")
SLEEP_S = int(os.environ.get("PEER_SLEEP_MS", "0")) / 1000

app = faust.App(
    APP_ID,
    broker=f"kafka://{BOOTSTRAP}",
    store="rocksdb://",
    datadir=STATE_DIR,
    web_enabled=False,
    topic_partitions=PARTITIONS,
    topic_replication_factor=1,
    key_serializer="raw",
    value_serializer="json",
    consumer_auto_offset_reset="earliest",
    table_standby_replicas=0,
)

source = app.topic(INPUT, key_type=bytes, value_type=bytes, value_serializer="raw")
sink = app.topic(OUTPUT, key_type=bytes, partitions=PARTITIONS)
# key_type=bytes makes the changelog keys raw bytes both when written and when read back
# during recovery (without it faust writes bytes keys as they are but reads them as JSON).
counts = app.Table("counts", default=int, partitions=PARTITIONS, key_type=bytes, value_type=int)


@app.agent(source)
async def count(stream: faust.StreamT) -> None:
    """Count per key; the table update goes to the changelog, the count to the output."""
    async for key, _value in stream.items():
        if SLEEP_S:
            await asyncio.sleep(SLEEP_S)
        counts[key] += 1
        await sink.send(key=key, value=counts[key])


if __name__ == "__main__":
    # Without the web server: a worker would otherwise listen on a fixed port (6066), which
    # a second worker on the same machine (or anything else there) may already hold.
    loglevel = os.environ.get("PEER_LOGLEVEL", "info")
    sys.argv = [sys.argv[0], "worker", "--without-web", "--loglevel", loglevel]
    app.main()
