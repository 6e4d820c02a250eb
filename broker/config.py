"""Broker configuration under Kafka's own names.

A Kafka user's ``server.properties`` works here: the same keys, the same defaults, the
same precedence (``log.retention.ms`` over ``.minutes`` over ``.hours``). Values come from
a Java-style properties file, then ``--override key=value`` pairs, then the convenience
flags (``--listeners``, ``--log-dirs``, ...), later sources winning.

Anything wrong is a :class:`ConfigError` with a one-line message naming the key and how to
fix it; the command line prints it without a traceback.

>>> cfg = BrokerConfig({"listeners": "PLAINTEXT://127.0.0.1:0", "log.retention.hours": "1"})
>>> cfg.get_int("num.partitions"), cfg.listeners[0].port, cfg.topic_defaults()
(1, 0, {'retention.ms': '3600000'})
"""

from __future__ import annotations

import re
import socket
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DEFAULTS", "BrokerConfig", "ConfigError", "Listener", "parse_properties"]

_LONG_MAX = str(2**63 - 1)

DEFAULTS: dict[str, str] = {
    "node.id": "1",
    "broker.id": "",
    "log.dirs": "",
    "log.dir": ".flows/data",
    "listeners": "PLAINTEXT://127.0.0.1:9092",
    "advertised.listeners": "",
    "listener.security.protocol.map": (
        "PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL"
    ),
    "inter.broker.listener.name": "",
    "auto.create.topics.enable": "true",
    "num.partitions": "1",
    "default.replication.factor": "1",
    "delete.topic.enable": "true",
    "log.retention.ms": "",
    "log.retention.minutes": "",
    "log.retention.hours": "168",
    "log.retention.bytes": "-1",
    "log.segment.bytes": "1073741824",
    "log.roll.ms": "",
    "log.roll.hours": "168",
    "log.roll.jitter.ms": "",
    "log.roll.jitter.hours": "0",
    "log.cleanup.policy": "delete",
    "message.max.bytes": "1048588",
    "log.flush.interval.messages": _LONG_MAX,
    "log.flush.interval.ms": "",
    "log.flush.scheduler.interval.ms": _LONG_MAX,
    "log.retention.check.interval.ms": "300000",
    "log.index.interval.bytes": "4096",
    "log.index.size.max.bytes": "10485760",
    "log.cleaner.delete.retention.ms": "86400000",
    "log.cleaner.min.compaction.lag.ms": "0",
    "log.cleaner.max.compaction.lag.ms": _LONG_MAX,
    "log.cleaner.min.cleanable.ratio": "0.5",
    "log.segment.delete.delay.ms": "60000",
    "log.message.timestamp.type": "CreateTime",
    "log.message.timestamp.difference.max.ms": _LONG_MAX,
    "log.preallocate": "false",
    "compression.type": "producer",
    "min.insync.replicas": "1",
    "unclean.leader.election.enable": "false",
    "socket.request.max.bytes": "104857600",
    "offsets.topic.num.partitions": "50",
    "offsets.topic.replication.factor": "1",
    "transaction.state.log.num.partitions": "50",
    "group.initial.rebalance.delay.ms": "3000",
    "group.min.session.timeout.ms": "6000",
    "group.max.session.timeout.ms": "1800000",
}

# Broker-level log default -> topic-level config name (Kafka's "synonyms").
_TOPIC_SYNONYMS: dict[str, str] = {
    "log.segment.bytes": "segment.bytes",
    "log.index.size.max.bytes": "segment.index.bytes",
    "log.flush.interval.messages": "flush.messages",
    "log.retention.bytes": "retention.bytes",
    "log.cleanup.policy": "cleanup.policy",
    "message.max.bytes": "max.message.bytes",
    "log.index.interval.bytes": "index.interval.bytes",
    "log.cleaner.delete.retention.ms": "delete.retention.ms",
    "log.cleaner.min.compaction.lag.ms": "min.compaction.lag.ms",
    "log.cleaner.max.compaction.lag.ms": "max.compaction.lag.ms",
    "log.cleaner.min.cleanable.ratio": "min.cleanable.dirty.ratio",
    "log.segment.delete.delay.ms": "file.delete.delay.ms",
    "log.message.timestamp.type": "message.timestamp.type",
    "log.message.timestamp.difference.max.ms": "message.timestamp.difference.max.ms",
    "log.preallocate": "preallocate",
    "compression.type": "compression.type",
    "min.insync.replicas": "min.insync.replicas",
    "unclean.leader.election.enable": "unclean.leader.election.enable",
}

_INT_KEYS = (
    "node.id",
    "num.partitions",
    "default.replication.factor",
    "log.retention.bytes",
    "log.segment.bytes",
    "message.max.bytes",
    "log.flush.interval.messages",
    "log.retention.check.interval.ms",
    "socket.request.max.bytes",
)
_BOOL_KEYS = ("auto.create.topics.enable", "delete.topic.enable")
_LISTENER_RE = re.compile(r"^([A-Za-z0-9_.-]+)://(\[[^\]]*\]|[^:/\[\]]*):(\d+)$")


class ConfigError(ValueError):
    """A configuration value that cannot be used; the message is one line."""


@dataclass(slots=True)
class Listener:
    """One listener: where it binds and what clients are told to connect to.

    A port of 0 binds a free port; an advertised port of 0 means "the bound port", so a
    listener on port 0 still advertises an address that works.
    """

    name: str
    host: str
    port: int
    advertised_host: str
    advertised_port: int
    protocol: str = "PLAINTEXT"

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.protocol}://{host}:{self.port}"


def parse_properties(text: str) -> dict[str, str]:
    """Parse Java ``.properties`` text: ``k=v``, ``k: v`` or ``k v``; ``#``/``!`` comments."""
    result: dict[str, str] = {}
    logical: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.lstrip()
        if not pending and (not line or line[0] in "#!"):
            continue
        trailing = len(line) - len(line.rstrip("\\"))
        if trailing % 2 == 1:
            pending += line[:-1]
            continue
        logical.append(pending + line)
        pending = ""
    if pending:
        logical.append(pending)
    for line in logical:
        match = re.match(r"^((?:\\.|[^=:\s\\])*)\s*[=:\s]?\s*(.*)$", line)
        if not match:  # pragma: no cover - the pattern matches every string
            continue
        key = _unescape(match.group(1))
        if key:
            result[key] = _unescape(match.group(2).rstrip())
    return result


def _unescape(text: str) -> str:
    table = {"t": "\t", "n": "\n", "r": "\r", "f": "\f"}
    return re.sub(r"\\(.)", lambda m: table.get(m.group(1), m.group(1)), text)


class BrokerConfig:
    """Effective broker configuration (Kafka names); see the module docstring."""

    def __init__(self, values: Mapping[str, str] | None = None) -> None:
        self._values: dict[str, str] = dict(DEFAULTS)
        self._explicit: dict[str, str] = {k: str(v) for k, v in (values or {}).items()}
        self._values.update(self._explicit)
        self.cluster_id: str = ""
        """Filled in by :meth:`load_or_create_cluster_id` when the broker starts."""
        self._validate()
        self.listeners: list[Listener] = self._parse_listeners()

    @classmethod
    def from_sources(
        cls,
        config_file: Path | str | None = None,
        overrides: Iterable[str] = (),
        *,
        listeners: str | None = None,
        advertised_listeners: str | None = None,
        log_dirs: str | None = None,
    ) -> BrokerConfig:
        """Merge a properties file, ``key=value`` overrides and the convenience flags."""
        values: dict[str, str] = {}
        if config_file is not None:
            path = Path(config_file)
            try:
                values.update(parse_properties(path.read_text(encoding="utf-8")))
            except OSError as exc:
                raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
        for item in overrides:
            key, sep, value = item.partition("=")
            if not sep or not key.strip():
                raise ConfigError(f"--override expects key=value, got {item!r}")
            values[key.strip()] = value.strip()
        if listeners is not None:
            values["listeners"] = listeners
        if advertised_listeners is not None:
            values["advertised.listeners"] = advertised_listeners
        if log_dirs is not None:
            values["log.dirs"] = log_dirs
        return cls(values)

    # -- lookups -----------------------------------------------------------------------

    def get(self, name: str) -> str | None:
        """The value of ``name``, or None when it is unset and has no default."""
        value = self._values.get(name)
        return value if value not in (None, "") else None

    def get_int(self, name: str, default: int | None = None) -> int:
        value = self.get(name)
        if value is None:
            if default is None:
                raise ConfigError(f"config {name} is not set")
            return default
        try:
            return int(value)
        except ValueError:
            raise ConfigError(f"config {name} must be an integer, got {value!r}") from None

    def get_bool(self, name: str, default: bool = False) -> bool:
        value = self.get(name)
        if value is None:
            return default
        lowered = value.strip().lower()
        if lowered not in ("true", "false"):
            raise ConfigError(f"config {name} must be true or false, got {value!r}")
        return lowered == "true"

    def items(self) -> dict[str, str]:
        """Every known key with its effective value (for DescribeConfigs on the broker)."""
        return {k: v for k, v in self._values.items() if v != ""}

    def is_explicit(self, name: str) -> bool:
        return name in self._explicit

    @property
    def node_id(self) -> int:
        if self.is_explicit("broker.id") and not self.is_explicit("node.id"):
            return self.get_int("broker.id")
        return self.get_int("node.id")

    @property
    def log_dirs(self) -> list[Path]:
        raw = self.get("log.dirs") or self.get("log.dir") or ".flows/data"
        return [Path(p.strip()) for p in raw.split(",") if p.strip()]

    @property
    def retention_ms(self) -> int:
        if self.get("log.retention.ms") is not None:
            return self.get_int("log.retention.ms")
        if self.get("log.retention.minutes") is not None:
            return self.get_int("log.retention.minutes") * 60_000
        return self.get_int("log.retention.hours") * 3_600_000

    @property
    def roll_ms(self) -> int:
        if self.get("log.roll.ms") is not None:
            return self.get_int("log.roll.ms")
        return self.get_int("log.roll.hours") * 3_600_000

    def topic_defaults(self, *, include_kafka_defaults: bool = False) -> dict[str, str]:
        """Broker-level log settings under topic-level names (``retention.ms``, ...).

        Only settings given explicitly are included (so DescribeConfigs can tell a
        broker-level setting from Kafka's default), unless ``include_kafka_defaults``.
        """
        explicit = include_kafka_defaults

        def given(*names: str) -> bool:
            return explicit or any(self.is_explicit(n) for n in names)

        out = {
            topic: self._values[broker]
            for broker, topic in _TOPIC_SYNONYMS.items()
            if given(broker)
        }
        if given("log.retention.ms", "log.retention.minutes", "log.retention.hours"):
            out["retention.ms"] = str(self.retention_ms)
        if given("log.roll.ms", "log.roll.hours"):
            out["segment.ms"] = str(self.roll_ms)
        if given("log.roll.jitter.ms", "log.roll.jitter.hours"):
            jitter = self.get("log.roll.jitter.ms")
            out["segment.jitter.ms"] = (
                jitter
                if jitter is not None
                else str(self.get_int("log.roll.jitter.hours") * 3_600_000)
            )
        if given("log.flush.interval.ms", "log.flush.scheduler.interval.ms"):
            out["flush.ms"] = (
                self.get("log.flush.interval.ms") or self._values["log.flush.scheduler.interval.ms"]
            )
        return out

    def load_or_create_cluster_id(self) -> str:
        """Read ``cluster.id`` from ``meta.properties`` in the first log dir, or create it.

        Generated once and kept, like Kafka, so clients see a stable cluster across restarts.
        """
        first = self.log_dirs[0]
        meta = first / "meta.properties"
        if meta.exists():
            props = parse_properties(meta.read_text(encoding="utf-8"))
            cluster_id = props.get("cluster.id", "")
            if cluster_id:
                self.cluster_id = cluster_id
                return cluster_id
        first.mkdir(parents=True, exist_ok=True)
        cluster_id = _new_cluster_id()
        tmp = meta.with_suffix(".tmp")
        tmp.write_text(
            f"version=1\ncluster.id={cluster_id}\nnode.id={self.node_id}\n", encoding="utf-8"
        )
        tmp.replace(meta)
        self.cluster_id = cluster_id
        return cluster_id

    # -- validation --------------------------------------------------------------------

    def _validate(self) -> None:
        for key in _INT_KEYS:
            self.get_int(key)
        for key in _BOOL_KEYS:
            self.get_bool(key)
        for key in ("log.retention.ms", "log.retention.minutes", "log.retention.hours"):
            if self.get(key) is not None:
                self.get_int(key)
        if self.get_int("default.replication.factor") != 1:
            raise ConfigError(
                "default.replication.factor must be 1: only 1 is possible on a single-node broker"
            )
        if self.get_int("num.partitions") < 1:
            raise ConfigError("num.partitions must be at least 1")
        if self.get_int("socket.request.max.bytes") < 1024:
            raise ConfigError("socket.request.max.bytes must be at least 1024")

    def _protocol_map(self) -> dict[str, str]:
        mapping: dict[str, str] = {}
        raw = self.get("listener.security.protocol.map") or ""
        for item in raw.split(","):
            item = item.strip()
            if not item:
                continue
            name, sep, proto = item.partition(":")
            if not sep or not name or not proto:
                raise ConfigError(
                    f"listener.security.protocol.map entry {item!r} is not NAME:PROTOCOL"
                )
            mapping[name.strip().upper()] = proto.strip().upper()
        return mapping

    def _parse_listeners(self) -> list[Listener]:
        protocols = self._protocol_map()
        bound = _parse_listener_list("listeners", self.get("listeners") or "")
        if not bound:
            raise ConfigError(
                "listeners is empty; give at least one, e.g. PLAINTEXT://127.0.0.1:9092"
            )
        advertised = _parse_listener_list(
            "advertised.listeners", self.get("advertised.listeners") or ""
        )
        advertised_by_name = {name: (host, port) for name, host, port in advertised}
        names = [name for name, _, _ in bound]
        for name in advertised_by_name:
            if name not in names:
                raise ConfigError(
                    f"advertised.listeners names {name}, which is not in listeners "
                    f"({', '.join(names)})"
                )
        inter = self.get("inter.broker.listener.name")
        if inter is not None and inter.upper() not in names:
            raise ConfigError(
                f"inter.broker.listener.name {inter} is not in listeners ({', '.join(names)})"
            )
        result: list[Listener] = []
        for name, host, port in bound:
            if names.count(name) > 1:
                raise ConfigError(f"listeners names {name} twice; each listener needs its own name")
            protocol = protocols.get(name)
            if protocol is None:
                raise ConfigError(
                    f"listener {name} has no entry in listener.security.protocol.map; "
                    f"add {name}:PLAINTEXT"
                )
            if protocol != "PLAINTEXT":
                raise ConfigError(
                    f"listener {name} uses {protocol}; "
                    "this broker supports only PLAINTEXT listeners"
                )
            adv_host, adv_port = advertised_by_name.get(name, (host, port))
            if not adv_host:
                # Like Kafka: an empty host binds every interface and advertises this
                # machine's name.
                adv_host = host or socket.getfqdn()
            result.append(Listener(name, host, port, adv_host, adv_port, protocol))
        return result


def _parse_listener_list(key: str, raw: str) -> list[tuple[str, str, int]]:
    out: list[tuple[str, str, int]] = []
    for item in raw.split(","):
        item = item.strip()
        if not item:
            continue
        match = _LISTENER_RE.match(item)
        if not match:
            raise ConfigError(f"{key} entry {item!r} is not NAME://host:port")
        name, host, port = match.group(1).upper(), match.group(2), int(match.group(3))
        if host.startswith("["):
            host = host[1:-1]
        if port > 65535:
            raise ConfigError(f"{key} entry {item!r} has a port above 65535")
        out.append((name, host, port))
    return out


def _new_cluster_id() -> str:
    """A 22-character URL-safe base64 UUID, the shape Kafka uses for cluster ids."""
    import base64

    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
