"""The broker's topics and partitions on disk: the file-backed ``LogManager``.

Each topic's metadata (name, partition count, topic id, config overrides) is one JSON
file ``<first log dir>/.topics/<topic id>.json``, written atomically (temporary file, fsync,
rename), so topics and their configs survive restarts. Each partition is a directory
``<topic>-<partition>`` in one of the log dirs (the least used one when created).

>>> import tempfile, pathlib
>>> with tempfile.TemporaryDirectory() as d:
...     logs = LogManager([pathlib.Path(d)], {"num.partitions": "1"})
...     info = logs.create_topic("clicks", 2, {"retention.ms": "60000"})
...     (info.partitions, logs.partition("clicks", 1).log_end_offset)
...     logs.close()
(2, 0)
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from broker.errors import ErrorCode, KafkaError
from broker.log.cleaner import clean, should_clean
from broker.log.interface import ConfigEntry, TopicInfo
from broker.log.partition import Partition, write_atomically
from broker.log.retention import apply_retention
from broker.log.topic_config import (
    CONFIG_DEFS,
    SOURCE_DEFAULT,
    TopicConfig,
    broker_level_values,
    effective,
    validate_overrides,
)

__all__ = ["LogManager", "validate_topic_name"]

log = logging.getLogger(__name__)

META_DIR = ".topics"
_LEGAL = re.compile(r"^[a-zA-Z0-9._-]+$")
MAX_NAME = 249


def validate_topic_name(name: str) -> None:
    """Kafka's rules: 1-249 characters of ``[a-zA-Z0-9._-]``, not ``.`` or ``..``."""
    why = None
    if not name:
        why = "the name is empty"
    elif name in (".", ".."):
        why = f"{name!r} is not allowed"
    elif len(name) > MAX_NAME:
        why = f"the name is {len(name)} characters long, the limit is {MAX_NAME}"
    elif not _LEGAL.match(name):
        why = "only ASCII letters, digits, '.', '_' and '-' are allowed"
    if why:
        raise KafkaError(ErrorCode.invalid_topic_exception, f"invalid topic name {name!r}: {why}")


def _now_ms() -> int:
    return int(time.time() * 1000)


class LogManager:
    """Topics, their configs and their partition logs (implements the log contract)."""

    def __init__(self, log_dirs: Sequence[Path], broker_defaults: Mapping[str, str]) -> None:
        if not log_dirs:
            raise ValueError("at least one log dir is needed (log.dirs)")
        self.log_dirs = [Path(d) for d in log_dirs]
        for d in self.log_dirs:
            d.mkdir(parents=True, exist_ok=True)
        self.broker_defaults = dict(broker_defaults)
        self._broker_values = broker_level_values(self.broker_defaults)
        self.on_append: Callable[[str, int], None] | None = None
        self._group_commit = False
        self._meta_dir = self.log_dirs[0] / META_DIR
        self._meta_dir.mkdir(exist_ok=True)
        self._topics: dict[str, TopicInfo] = {}
        self._configs: dict[str, TopicConfig] = {}
        self._partitions: dict[tuple[str, int], Partition] = {}
        self._lock = threading.RLock()
        self._roll_syncs = ThreadPoolExecutor(2, thread_name_prefix="log-roll-fsync")
        """fsyncs sealed segments after a roll, off the threads that append."""
        for path in sorted(self._meta_dir.glob("*.json")):
            self._load_topic(path)

    # --- persistence -----------------------------------------------------------------

    def _load_topic(self, path: Path) -> None:
        meta: dict[str, Any] = json.loads(path.read_bytes())
        name = meta["name"]
        overrides = dict(meta.get("configs", {}))
        info = TopicInfo(
            name=name,
            partitions=int(meta["partitions"]),
            topic_id=bytes.fromhex(meta["topic_id"]),
            configs=overrides,
            internal=name.startswith("__"),
        )
        self._topics[name] = info
        self._configs[name] = TopicConfig.resolve(overrides, self.broker_defaults)
        for p in range(info.partitions):
            self._open_partition(name, p, fresh=False)

    def _save_topic(self, info: TopicInfo) -> None:
        meta = {
            "name": info.name,
            "partitions": info.partitions,
            "topic_id": info.topic_id.hex(),
            "configs": dict(info.configs),
        }
        write_atomically(self._meta_path(info), json.dumps(meta).encode())

    def _meta_path(self, info: TopicInfo) -> Path:
        """Named by topic id: a 249-character topic name would not fit a file name."""
        return self._meta_dir / f"{info.topic_id.hex()}.json"

    def _partition_dir(self, topic: str, partition: int, fresh: bool) -> Path:
        name = f"{topic}-{partition}"
        for d in self.log_dirs:
            if (d / name).is_dir():
                if fresh:  # stale files of a topic deleted before a crash
                    shutil.rmtree(d / name)
                    break
                return d / name
        counts = [sum(1 for p in d.iterdir() if p.is_dir()) for d in self.log_dirs]
        return self.log_dirs[counts.index(min(counts))] / name

    def _open_partition(self, topic: str, partition: int, *, fresh: bool) -> Partition:
        part = Partition(
            self._partition_dir(topic, partition, fresh),
            topic,
            partition,
            self._configs[topic],
            now_ms=_now_ms(),
            notify=self._notify,
            executor=self._roll_syncs,
        )
        part.caller_syncs_durable = self._group_commit
        self._partitions[(topic, partition)] = part
        return part

    @property
    def group_commit(self) -> bool:
        """Whether the caller fsyncs ``flush.messages=1`` appends itself.

        Off by default: a durable append then fsyncs before it returns. A network layer
        that shares one fsync among concurrent produce requests (calling
        ``PartitionLog.flush`` in a thread before acknowledging) turns it on, so the
        append itself does not block on the disk.
        """
        return self._group_commit

    @group_commit.setter
    def group_commit(self, value: bool) -> None:
        self._group_commit = value
        for part in self._partitions.values():
            part.caller_syncs_durable = value

    def _notify(self, topic: str, partition: int) -> None:
        cb = self.on_append
        if cb is not None:
            cb(topic, partition)

    # --- topics ----------------------------------------------------------------------

    def topics(self) -> Mapping[str, TopicInfo]:
        return dict(self._topics)

    def _topic(self, name: str) -> TopicInfo:
        info = self._topics.get(name)
        if info is None:
            raise KafkaError(ErrorCode.unknown_topic_or_partition, f"unknown topic {name!r}")
        return info

    def create_topic(
        self,
        name: str,
        num_partitions: int,
        configs: Mapping[str, str],
        *,
        validate_only: bool = False,
    ) -> TopicInfo:
        validate_topic_name(name)
        if num_partitions == -1:
            num_partitions = int(self.broker_defaults.get("num.partitions", "1"))
        if num_partitions < 1:
            raise KafkaError(
                ErrorCode.invalid_partitions,
                f"topic {name!r} needs at least one partition, got {num_partitions}",
            )
        overrides = validate_overrides(configs)
        cfg = TopicConfig.resolve(overrides, self.broker_defaults)
        with self._lock:
            if name in self._topics:
                raise KafkaError(ErrorCode.topic_already_exists, f"topic {name!r} already exists")
            folded = name.replace(".", "_")
            for other in self._topics:
                if other.replace(".", "_") == folded:
                    raise KafkaError(
                        ErrorCode.invalid_topic_exception,
                        f"topic {name!r} collides with existing topic {other!r} "
                        "('.' and '_' are interchangeable in metric names)",
                    )
            info = TopicInfo(
                name=name,
                partitions=num_partitions,
                topic_id=uuid.uuid4().bytes,
                configs=overrides,
                internal=name.startswith("__"),
            )
            if validate_only:
                return info
            self._save_topic(info)
            self._topics[name] = info
            self._configs[name] = cfg
            for p in range(num_partitions):
                self._open_partition(name, p, fresh=True)
            return info

    def delete_topic(self, name: str) -> None:
        if str(self.broker_defaults.get("delete.topic.enable", "true")).lower() == "false":
            raise KafkaError(
                ErrorCode.topic_deletion_disabled,
                "topic deletion is disabled on this broker (delete.topic.enable=false)",
            )
        with self._lock:
            info = self._topic(name)
            self._meta_path(info).unlink(missing_ok=True)
            del self._topics[name]
            del self._configs[name]
            for p in range(info.partitions):
                part = self._partitions.pop((name, p), None)
                if part is not None:
                    part.remove()

    def create_partitions(self, name: str, total: int, *, validate_only: bool = False) -> None:
        with self._lock:
            info = self._topic(name)
            if total <= info.partitions:
                raise KafkaError(
                    ErrorCode.invalid_partitions,
                    f"topic {name!r} has {info.partitions} partitions and {total} were asked: "
                    "partitions can only be added",
                )
            if validate_only:
                return
            new = TopicInfo(info.name, total, info.topic_id, info.configs, info.internal)
            self._save_topic(new)
            self._topics[name] = new
            for p in range(info.partitions, total):
                self._open_partition(name, p, fresh=True)

    def partition(self, topic: str, partition: int) -> Partition:
        try:
            return self._partitions[(topic, partition)]
        except KeyError:
            raise KafkaError(
                ErrorCode.unknown_topic_or_partition,
                f"unknown topic or partition {topic}-{partition}",
            ) from None

    def partitions(self) -> dict[tuple[str, int], Partition]:
        """Every open partition (for metrics and maintenance)."""
        return dict(self._partitions)

    # --- configs ---------------------------------------------------------------------

    def topic_config(self, topic: str) -> TopicConfig:
        self._topic(topic)
        return self._configs[topic]

    def describe_configs(self, topic: str) -> list[ConfigEntry]:
        info = self._topic(topic)
        return [
            ConfigEntry(name=name, value=value, is_default=source == SOURCE_DEFAULT, source=source)
            for name, (value, source) in effective(info.configs, self._broker_values).items()
        ]

    def alter_configs(
        self,
        topic: str,
        set_: Mapping[str, str],
        delete: Iterable[str] = (),
        *,
        replace_all: bool = False,
        validate_only: bool = False,
    ) -> None:
        with self._lock:
            info = self._topic(topic)
            validated = validate_overrides(set_)
            if replace_all:
                overrides = validated
            else:
                overrides = dict(info.configs)
                overrides.update(validated)
                for name in delete:
                    if name not in CONFIG_DEFS:
                        raise KafkaError(ErrorCode.invalid_config, f"unknown topic config {name!r}")
                    overrides.pop(name, None)
            cfg = TopicConfig.resolve(overrides, self.broker_defaults)
            if validate_only:
                return
            new = TopicInfo(info.name, info.partitions, info.topic_id, overrides, info.internal)
            self._save_topic(new)
            self._topics[topic] = new
            self._configs[topic] = cfg
            for p in range(info.partitions):
                self._partitions[(topic, p)].config = cfg

    # --- time-driven work ------------------------------------------------------------

    def maintain(self, now_ms: int) -> None:
        """Roll by ``segment.ms``, fsync by ``flush.ms``, apply retention, compact."""
        for key, part in list(self._partitions.items()):
            try:
                part.maintain_roll(now_ms)
                part.maintain_flush(now_ms)
                part.expire_producers(now_ms)
                apply_retention(part, now_ms)
                if should_clean(part, now_ms):
                    clean(part, now_ms)
            except Exception:
                if key in self._partitions:
                    log.exception("maintenance of %s-%d failed", key[0], key[1])

    def flush_all(self) -> None:
        for part in list(self._partitions.values()):
            part.flush()

    def close(self) -> None:
        """Close every partition (each waits for its roll fsyncs), then the fsync threads."""
        with self._lock:
            for part in self._partitions.values():
                part.close()
            self._partitions.clear()
        self._roll_syncs.shutdown(wait=True)
