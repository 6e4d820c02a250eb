"""Broker configuration: Kafka names, defaults, precedence and every refusal."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from broker.config import BrokerConfig, ConfigError, parse_properties

REPO = Path(__file__).resolve().parents[2]


def test_defaults() -> None:
    cfg = BrokerConfig()
    assert cfg.node_id == 1
    assert cfg.get_bool("auto.create.topics.enable") is True
    assert cfg.get_int("num.partitions") == 1
    assert cfg.get_int("message.max.bytes") == 1048588
    assert cfg.get_int("socket.request.max.bytes") == 104857600
    (listener,) = cfg.listeners
    assert (listener.name, listener.host, listener.port) == ("PLAINTEXT", "127.0.0.1", 9092)
    assert (listener.advertised_host, listener.advertised_port) == ("127.0.0.1", 9092)
    assert cfg.retention_ms == 7 * 24 * 3_600_000
    assert cfg.topic_defaults() == {}


def test_properties_syntax() -> None:
    text = (
        "# comment\n"
        "! also a comment\n"
        "node.id=3\n"
        "num.partitions : 4\n"
        "log.dirs /data/a,\\\n"
        "    /data/b\n"
        "  key\\=with\\:escapes = v\\tx\n"
        "empty=\n"
    )
    props = parse_properties(text)
    assert props["node.id"] == "3"
    assert props["num.partitions"] == "4"
    assert props["log.dirs"] == "/data/a,/data/b"
    assert props["key=with:escapes"] == "v\tx"
    assert props["empty"] == ""


def test_sources_precedence(tmp_path: Path) -> None:
    f = tmp_path / "server.properties"
    f.write_text("num.partitions=2\nlisteners=PLAINTEXT://127.0.0.1:1111\nlog.dirs=/x\n")
    cfg = BrokerConfig.from_sources(
        f,
        ["num.partitions=5", "log.retention.minutes=2"],
        listeners="PLAINTEXT://127.0.0.1:0",
        log_dirs=str(tmp_path / "d1") + "," + str(tmp_path / "d2"),
    )
    assert cfg.get_int("num.partitions") == 5
    assert cfg.listeners[0].port == 0
    assert cfg.log_dirs == [tmp_path / "d1", tmp_path / "d2"]
    assert cfg.retention_ms == 120_000


def test_retention_precedence() -> None:
    cfg = BrokerConfig({"log.retention.hours": "1", "log.retention.minutes": "5"})
    assert cfg.retention_ms == 300_000
    cfg = BrokerConfig({"log.retention.ms": "7", "log.retention.minutes": "5"})
    assert cfg.retention_ms == 7


def test_topic_defaults_mapping() -> None:
    cfg = BrokerConfig(
        {
            "log.retention.hours": "2",
            "log.segment.bytes": "1000000",
            "log.cleanup.policy": "compact",
            "message.max.bytes": "2000000",
            "log.flush.interval.messages": "10",
            "log.flush.interval.ms": "500",
            "log.roll.hours": "1",
            "log.retention.bytes": "99",
            "log.message.timestamp.type": "LogAppendTime",
        }
    )
    assert cfg.topic_defaults() == {
        "retention.ms": "7200000",
        "segment.bytes": "1000000",
        "cleanup.policy": "compact",
        "max.message.bytes": "2000000",
        "flush.messages": "10",
        "flush.ms": "500",
        "segment.ms": "3600000",
        "retention.bytes": "99",
        "message.timestamp.type": "LogAppendTime",
    }
    full = BrokerConfig().topic_defaults(include_kafka_defaults=True)
    assert full["retention.ms"] == "604800000" and full["segment.bytes"] == "1073741824"


def test_listeners_and_advertised() -> None:
    cfg = BrokerConfig(
        {
            "listeners": "A://127.0.0.1:0,B://[::1]:9093",
            "listener.security.protocol.map": "A:PLAINTEXT,B:PLAINTEXT",
            "advertised.listeners": "A://localhost:0",
        }
    )
    a, b = cfg.listeners
    assert (a.name, a.host, a.port, a.advertised_host, a.advertised_port) == (
        "A",
        "127.0.0.1",
        0,
        "localhost",
        0,
    )
    assert (b.host, b.port, b.advertised_host, b.advertised_port) == ("::1", 9093, "::1", 9093)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"default.replication.factor": "3"}, "only 1 is possible on a single-node broker"),
        ({"listeners": "SSL://127.0.0.1:9093"}, "supports only PLAINTEXT"),
        (
            {
                "listeners": "X://127.0.0.1:1",
                "listener.security.protocol.map": "X:SASL_SSL",
            },
            "X uses SASL_SSL",
        ),
        ({"listeners": "INTERNAL://127.0.0.1:1"}, "no entry in listener.security.protocol.map"),
        ({"listeners": "127.0.0.1:9092"}, "is not NAME://host:port"),
        ({"listeners": ""}, "listeners is empty"),
        ({"listeners": "PLAINTEXT://h:70000"}, "above 65535"),
        ({"listeners": "PLAINTEXT://h:1,PLAINTEXT://h:2"}, "twice"),
        ({"advertised.listeners": "OTHER://h:1"}, "not in listeners"),
        ({"inter.broker.listener.name": "OTHER"}, "inter.broker.listener.name OTHER"),
        ({"listener.security.protocol.map": "PLAINTEXT"}, "is not NAME:PROTOCOL"),
        ({"num.partitions": "many"}, "num.partitions must be an integer"),
        ({"num.partitions": "0"}, "at least 1"),
        ({"auto.create.topics.enable": "yes"}, "true or false"),
        ({"socket.request.max.bytes": "10"}, "at least 1024"),
    ],
)
def test_refusals(values: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        BrokerConfig(values)


def test_override_syntax_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="key=value"):
        BrokerConfig.from_sources(None, ["novalue"])
    with pytest.raises(ConfigError, match="cannot read config file"):
        BrokerConfig.from_sources(tmp_path / "missing.properties")


def test_cluster_id_is_persisted(tmp_path: Path) -> None:
    cfg = BrokerConfig({"log.dirs": str(tmp_path / "a")})
    first = cfg.load_or_create_cluster_id()
    assert len(first) == 22
    assert "cluster.id=" + first in (tmp_path / "a" / "meta.properties").read_text()
    again = BrokerConfig({"log.dirs": str(tmp_path / "a")}).load_or_create_cluster_id()
    assert again == first


def test_cli_reports_config_error_in_one_line(tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run(
        [sys.executable, "-m", "broker", "--override", "default.replication.factor=3"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0
    assert "only 1 is possible on a single-node broker" in proc.stderr
    assert "Traceback" not in proc.stderr


def _run_broker(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run(
        [sys.executable, "-m", "broker", *args, "--override", "offsets.topic.num.partitions=1"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=60,
    )


def test_port_in_use_is_one_line(tmp_path: Path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = _run_broker(
            tmp_path,
            "--listeners",
            f"PLAINTEXT://127.0.0.1:{port}",
            "--log-dirs",
            str(tmp_path / "data"),
        )
    assert proc.returncode == 1
    assert (
        "error: cannot start the broker" in proc.stderr and "address already in use" in proc.stderr
    )
    assert "Traceback" not in proc.stderr


def test_unusable_log_dir_is_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    proc = _run_broker(
        tmp_path, "--listeners", "PLAINTEXT://127.0.0.1:0", "--log-dirs", str(blocker / "data")
    )
    assert proc.returncode == 1
    assert "error: cannot open the log dirs" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_bad_broker_log_default_is_one_line(tmp_path: Path) -> None:
    proc = _run_broker(
        tmp_path,
        "--listeners",
        "PLAINTEXT://127.0.0.1:0",
        "--log-dirs",
        str(tmp_path / "data"),
        "--override",
        "log.cleanup.policy=sometimes",
    )
    assert proc.returncode == 2
    assert "cleanup.policy" in proc.stderr and "sometimes" in proc.stderr
    assert "Traceback" not in proc.stderr
