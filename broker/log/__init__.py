"""Kafka-like log storage: segments, indexes, retention, compaction, topic metadata.

Synchronous and free of asyncio: the network layer decides what runs in a thread.
:class:`LogManager` implements :class:`broker.log.interface.LogManager` and
:class:`Partition` implements :class:`broker.log.interface.PartitionLog`.
"""

from broker.log.interface import AppendInfo, ConfigEntry, TopicInfo
from broker.log.manager import LogManager, validate_topic_name
from broker.log.partition import Partition
from broker.log.records import BatchHeader, Record, build_batch, decode_records, iter_batches
from broker.log.topic_config import CONFIG_DEFS, TopicConfig

DOCS = """\
### Storage and durability

Each partition is a directory `<topic>-<partition>/` in one of `log.dirs`, holding
segments named by their base offset (`00000000000000000000.log`, `.index`,
`.timeindex`), like Kafka. Batches are stored exactly as producers sent them (only the
base offset and leader epoch are patched), so a fetch is a plain read of whole batches.

Durability follows Kafka's topic configs (broker-wide: `log.flush.interval.messages`,
`log.flush.interval.ms`):

| setting | behaviour |
|---|---|
| default | no forced fsync; the OS writes data back: a broker crash loses nothing, \
a power loss may lose the last seconds of writes. |
| `flush.messages=1` | durable: a produce is acknowledged only after its data was fsync'd. |
| `flush.messages=N` | fsync after every N messages. |
| `flush.ms=T` | fsync data that has waited T milliseconds. |

After an unclean stop the broker rescans the segments written since the last fsync,
checks every batch's length and CRC, cuts off a torn tail (logged) and rebuilds the
indexes; after a clean stop it starts without rescanning. Retention (`retention.ms`,
`retention.bytes`) deletes whole old segments; compaction (`cleanup.policy=compact`)
keeps the latest record per key and drops tombstones after `delete.retention.ms`.
"""
"""A README section on storage and durability, in Markdown."""

PartitionLog = Partition
"""The concrete partition log class, under the contract's name."""

__all__ = [
    "CONFIG_DEFS",
    "DOCS",
    "AppendInfo",
    "BatchHeader",
    "ConfigEntry",
    "LogManager",
    "Partition",
    "PartitionLog",
    "Record",
    "TopicConfig",
    "TopicInfo",
    "build_batch",
    "decode_records",
    "iter_batches",
    "validate_topic_name",
]
