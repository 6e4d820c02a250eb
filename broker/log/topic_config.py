"""Every Kafka topic config: type, default, validation, and its broker-level synonyms.

The effective value of a topic config is, in order: the topic's override, the broker's
setting (``log.retention.ms`` for ``retention.ms``, ...), Kafka's default. A bad name or
value is ``KafkaError(INVALID_CONFIG)`` with a message that says which and why.

>>> cfg = TopicConfig.resolve({"cleanup.policy": "compact"}, {"log.retention.hours": "1"})
>>> cfg.compact, cfg.retention_ms
(True, 3600000)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from broker.errors import ErrorCode, KafkaError

__all__ = ["CONFIG_DEFS", "ConfigDef", "TopicConfig", "broker_level_values", "validate_overrides"]

LONG_MAX = 9223372036854775807
INT_MAX = 2147483647
SOURCE_TOPIC = 1
SOURCE_STATIC_BROKER = 4
SOURCE_DEFAULT = 5


@dataclass(frozen=True, slots=True)
class ConfigDef:
    name: str
    type: str
    """long, int, double, boolean, string or list."""
    default: str
    check: Callable[[Any], str | None] | None = None
    """Returns why a parsed value is invalid, or None."""
    synonyms: tuple[tuple[str, int], ...] = ()
    """Broker configs that set the default, highest priority first, with a unit multiplier."""


def _at_least(n: float) -> Callable[[Any], str | None]:
    return lambda v: None if v >= n else f"must be at least {n}"


def _between(lo: float, hi: float) -> Callable[[Any], str | None]:
    return lambda v: None if lo <= v <= hi else f"must be between {lo} and {hi}"


def _one_of(*allowed: str) -> Callable[[Any], str | None]:
    def check(v: Any) -> str | None:
        items = v if isinstance(v, list) else [v]
        bad = [i for i in items if i not in allowed]
        return f"must be one of {', '.join(allowed)}" if bad or not items else None

    return check


_DEFS = [
    ConfigDef("cleanup.policy", "list", "delete", _one_of("delete", "compact"),
              (("log.cleanup.policy", 1),)),
    ConfigDef("compression.type", "string", "producer",
              _one_of("uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"),
              (("compression.type", 1),)),
    ConfigDef("compression.gzip.level", "int", "-1", _between(-1, 9),
              (("compression.gzip.level", 1),)),
    ConfigDef("compression.lz4.level", "int", "9", _between(1, 17),
              (("compression.lz4.level", 1),)),
    ConfigDef("compression.zstd.level", "int", "3", _between(-131072, 22),
              (("compression.zstd.level", 1),)),
    ConfigDef("delete.retention.ms", "long", "86400000", _at_least(0),
              (("log.cleaner.delete.retention.ms", 1),)),
    ConfigDef("file.delete.delay.ms", "long", "60000", _at_least(0),
              (("log.segment.delete.delay.ms", 1),)),
    ConfigDef("flush.messages", "long", str(LONG_MAX), _at_least(1),
              (("log.flush.interval.messages", 1),)),
    ConfigDef("flush.ms", "long", str(LONG_MAX), _at_least(0),
              (("log.flush.interval.ms", 1), ("log.flush.scheduler.interval.ms", 1))),
    ConfigDef("follower.replication.throttled.replicas", "list", ""),
    ConfigDef("index.interval.bytes", "int", "4096", _at_least(0),
              (("log.index.interval.bytes", 1),)),
    ConfigDef("leader.replication.throttled.replicas", "list", ""),
    ConfigDef("local.retention.bytes", "long", "-2", _at_least(-2),
              (("log.local.retention.bytes", 1),)),
    ConfigDef("local.retention.ms", "long", "-2", _at_least(-2),
              (("log.local.retention.ms", 1),)),
    ConfigDef("max.compaction.lag.ms", "long", str(LONG_MAX), _at_least(1),
              (("log.cleaner.max.compaction.lag.ms", 1),)),
    ConfigDef("max.message.bytes", "int", "1048588", _at_least(0),
              (("message.max.bytes", 1),)),
    ConfigDef("message.downconversion.enable", "boolean", "true", None,
              (("log.message.downconversion.enable", 1),)),
    ConfigDef("message.format.version", "string", "3.0-IV1", None,
              (("log.message.format.version", 1),)),
    ConfigDef("message.timestamp.after.max.ms", "long", str(LONG_MAX), _at_least(0),
              (("log.message.timestamp.after.max.ms", 1),)),
    ConfigDef("message.timestamp.before.max.ms", "long", str(LONG_MAX), _at_least(0),
              (("log.message.timestamp.before.max.ms", 1),)),
    ConfigDef("message.timestamp.difference.max.ms", "long", str(LONG_MAX), _at_least(0),
              (("log.message.timestamp.difference.max.ms", 1),)),
    ConfigDef("message.timestamp.type", "string", "CreateTime",
              _one_of("CreateTime", "LogAppendTime"),
              (("log.message.timestamp.type", 1),)),
    ConfigDef("min.cleanable.dirty.ratio", "double", "0.5", _between(0, 1),
              (("log.cleaner.min.cleanable.ratio", 1),)),
    ConfigDef("min.compaction.lag.ms", "long", "0", _at_least(0),
              (("log.cleaner.min.compaction.lag.ms", 1),)),
    ConfigDef("min.insync.replicas", "int", "1", _at_least(1),
              (("min.insync.replicas", 1),)),
    ConfigDef("preallocate", "boolean", "false", None, (("log.preallocate", 1),)),
    ConfigDef("remote.storage.enable", "boolean", "false", None),
    ConfigDef("retention.bytes", "long", "-1", None, (("log.retention.bytes", 1),)),
    ConfigDef("retention.ms", "long", "604800000", _at_least(-1),
              (("log.retention.ms", 1), ("log.retention.minutes", 60_000),
               ("log.retention.hours", 3_600_000))),
    ConfigDef("segment.bytes", "int", "1073741824", _at_least(14),
              (("log.segment.bytes", 1),)),
    ConfigDef("segment.index.bytes", "int", "10485760", _at_least(4),
              (("log.index.size.max.bytes", 1),)),
    ConfigDef("segment.jitter.ms", "long", "0", _at_least(0),
              (("log.roll.jitter.ms", 1), ("log.roll.jitter.hours", 3_600_000))),
    ConfigDef("segment.ms", "long", "604800000", _at_least(1),
              (("log.roll.ms", 1), ("log.roll.hours", 3_600_000))),
    ConfigDef("unclean.leader.election.enable", "boolean", "false", None,
              (("unclean.leader.election.enable", 1),)),
]  # fmt: skip

CONFIG_DEFS: dict[str, ConfigDef] = {d.name: d for d in _DEFS}


def _invalid(name: str, value: str, why: str) -> KafkaError:
    return KafkaError(ErrorCode.invalid_config, f"invalid value {value!r} for config {name}: {why}")


def parse(name: str, value: str, multiplier: int = 1) -> Any:
    """Parse and check one value of config ``name``; raise INVALID_CONFIG if bad."""
    d = CONFIG_DEFS.get(name)
    if d is None:
        raise KafkaError(
            ErrorCode.invalid_config,
            f"unknown topic config {name!r}; valid names: {', '.join(sorted(CONFIG_DEFS))}",
        )
    if value is None:
        raise _invalid(name, "null", "a value is required")
    text = str(value).strip()
    parsed: Any
    try:
        if d.type in ("long", "int"):
            parsed = int(text) * multiplier
            lo, hi = (-LONG_MAX - 1, LONG_MAX) if d.type == "long" else (-INT_MAX - 1, INT_MAX)
            if not lo <= parsed <= hi:
                raise _invalid(name, text, f"out of range for a {d.type}")
        elif d.type == "double":
            parsed = float(text)
        elif d.type == "boolean":
            if text.lower() not in ("true", "false"):
                raise _invalid(name, text, "must be true or false")
            parsed = text.lower() == "true"
        elif d.type == "list":
            parsed = [p.strip() for p in text.split(",") if p.strip()]
        else:
            parsed = text
    except ValueError:
        raise _invalid(name, text, f"not a valid {d.type}") from None
    if d.check is not None:
        why = d.check(parsed)
        if why:
            raise _invalid(name, text, why)
    return parsed


def validate_overrides(overrides: Mapping[str, str]) -> dict[str, str]:
    """Check topic-level overrides; return them with values stripped."""
    out: dict[str, str] = {}
    for name, value in overrides.items():
        parse(name, value)
        out[name] = str(value).strip()
    return out


def broker_level_values(broker_defaults: Mapping[str, str]) -> dict[str, str]:
    """Topic-config defaults set at broker level, as topic-config strings.

    Accepts Kafka's broker names (``log.retention.hours``) and topic names directly.
    A bad broker value is INVALID_CONFIG naming the broker setting.
    """
    out: dict[str, str] = {}
    for d in _DEFS:
        if d.name in broker_defaults and broker_defaults[d.name] is not None:
            parse(d.name, broker_defaults[d.name])
            out[d.name] = str(broker_defaults[d.name]).strip()
            continue
        for broker_name, mult in d.synonyms:
            raw = broker_defaults.get(broker_name)
            if raw is None:
                continue
            try:
                value = parse(d.name, raw, mult)
            except KafkaError as exc:
                raise KafkaError(
                    ErrorCode.invalid_config, f"broker setting {broker_name}: {exc.message}"
                ) from None
            out[d.name] = str(value) if mult != 1 else str(raw).strip()
            break
    return out


def effective(
    overrides: Mapping[str, str], broker_values: Mapping[str, str]
) -> dict[str, tuple[str, int]]:
    """Every config's effective value and its DescribeConfigs source."""
    out: dict[str, tuple[str, int]] = {}
    for d in _DEFS:
        if d.name in overrides:
            out[d.name] = (overrides[d.name], SOURCE_TOPIC)
        elif d.name in broker_values:
            out[d.name] = (broker_values[d.name], SOURCE_STATIC_BROKER)
        else:
            out[d.name] = (d.default, SOURCE_DEFAULT)
    return out


@dataclass(frozen=True, slots=True)
class TopicConfig:
    """The typed effective configs the log reads on its paths."""

    compact: bool
    delete: bool
    delete_retention_ms: int
    flush_messages: int
    flush_ms: int
    index_interval_bytes: int
    max_compaction_lag_ms: int
    max_message_bytes: int
    log_append_time: bool
    timestamp_difference_max_ms: int
    timestamp_before_max_ms: int
    timestamp_after_max_ms: int
    min_cleanable_dirty_ratio: float
    min_compaction_lag_ms: int
    retention_bytes: int
    retention_ms: int
    segment_bytes: int
    segment_index_bytes: int
    segment_jitter_ms: int
    segment_ms: int

    @classmethod
    def resolve(
        cls, overrides: Mapping[str, str], broker_defaults: Mapping[str, str] | None = None
    ) -> TopicConfig:
        values = {
            name: parse(name, value)
            for name, (value, _src) in effective(
                overrides, broker_level_values(broker_defaults or {})
            ).items()
        }
        policy = values["cleanup.policy"]
        return cls(
            compact="compact" in policy,
            delete="delete" in policy,
            delete_retention_ms=values["delete.retention.ms"],
            flush_messages=values["flush.messages"],
            flush_ms=values["flush.ms"],
            index_interval_bytes=values["index.interval.bytes"],
            max_compaction_lag_ms=values["max.compaction.lag.ms"],
            max_message_bytes=values["max.message.bytes"],
            log_append_time=values["message.timestamp.type"] == "LogAppendTime",
            timestamp_difference_max_ms=values["message.timestamp.difference.max.ms"],
            timestamp_before_max_ms=values["message.timestamp.before.max.ms"],
            timestamp_after_max_ms=values["message.timestamp.after.max.ms"],
            min_cleanable_dirty_ratio=values["min.cleanable.dirty.ratio"],
            min_compaction_lag_ms=values["min.compaction.lag.ms"],
            retention_bytes=values["retention.bytes"],
            retention_ms=values["retention.ms"],
            segment_bytes=values["segment.bytes"],
            segment_index_bytes=values["segment.index.bytes"],
            segment_jitter_ms=values["segment.jitter.ms"],
            segment_ms=values["segment.ms"],
        )
