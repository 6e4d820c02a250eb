"""The embedded broker lifecycle, bootstrap resolution and the ``flows broker`` commands."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from broker.embedded import (
    embedded_status,
    ensure_embedded_broker,
    parse_broker_url,
    resolve_bootstrap,
    stop_embedded_broker,
)

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("kafka://localhost:9092", "localhost:9092"),
        ("KAFKA://a:1,b:2", "a:1,b:2"),
        ("a:1", "a:1"),
        (" kafka://a:1, b:2 ", "a:1,b:2"),
    ],
)
def test_parse_broker_url(value: str, expected: str) -> None:
    assert parse_broker_url(value) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("http://a:1", "uses http://"),
        ("kafka://a", "is not host:port"),
        ("kafka://a:port", "is not host:port"),
        ("kafka://", "is empty"),
    ],
)
def test_parse_broker_url_refusals(value: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_broker_url(value)


def test_resolve_bootstrap_order(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FLOWS_BROKER", "kafka://env:1")
    assert resolve_bootstrap("kafka://cli:2", tmp_path) == "cli:2"
    assert resolve_bootstrap(None, tmp_path) == "env:1"


def test_embedded_lifecycle(tmp_path: Path) -> None:
    home = tmp_path / ".flows"
    try:
        first = ensure_embedded_broker(home)
        record = json.loads((home / "broker.json").read_text())
        assert first == f"127.0.0.1:{record['port']}"
        assert ensure_embedded_broker(home) == first  # reused, not restarted
        assert json.loads((home / "broker.json").read_text())["pid"] == record["pid"]
        status = embedded_status(home)
        assert status["running"] and status["bootstrap"] == first
        assert "listening on" in (home / "broker.log").read_text()
        assert (home / "data" / "meta.properties").exists()
    finally:
        stopped = stop_embedded_broker(home)
    assert stopped
    assert not embedded_status(home)["running"]
    assert not (home / "broker.json").exists()
    assert stop_embedded_broker(home) is False


def test_stale_record_is_replaced(tmp_path: Path) -> None:
    home = tmp_path / ".flows"
    home.mkdir()
    (home / "broker.json").write_text(json.dumps({"pid": 2**22 + 12345, "port": 1}))
    assert not embedded_status(home)["running"]
    try:
        bootstrap = ensure_embedded_broker(home)
        assert bootstrap != "127.0.0.1:1"
    finally:
        stop_embedded_broker(home)


def _cli() -> tuple[CliRunner, object]:
    from flows.cli import _load_commands, app

    _load_commands()
    return CliRunner(), app


def test_cli_config_error_is_one_line(tmp_path: Path) -> None:
    runner, app = _cli()
    result = runner.invoke(
        app,  # type: ignore[arg-type]
        ["broker", "--override", "default.replication.factor=2", "--log-dirs", str(tmp_path)],
    )
    assert result.exit_code == 2
    assert "only 1 is possible on a single-node broker" in result.output
    assert "Traceback" not in result.output


def test_cli_start_status_stop(tmp_path: Path) -> None:
    runner, app = _cli()
    home = str(tmp_path / ".flows")
    try:
        result = runner.invoke(app, ["broker", "start", "--dir", home])  # type: ignore[arg-type]
        assert result.exit_code == 0, result.output
        assert "embedded broker running at kafka://127.0.0.1:" in result.output
        result = runner.invoke(app, ["broker", "status", "--dir", home])  # type: ignore[arg-type]
        assert result.exit_code == 0 and "running at" in result.output
    finally:
        result = runner.invoke(app, ["broker", "stop", "--dir", home])  # type: ignore[arg-type]
    assert result.exit_code == 0 and "stopped" in result.output
    result = runner.invoke(app, ["broker", "status", "--dir", home])  # type: ignore[arg-type]
    assert result.exit_code == 1 and "not running" in result.output


def test_cli_runs_a_broker_in_the_foreground(tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from flows.cli import main; main()",
            "broker",
            "--listeners",
            "PLAINTEXT://127.0.0.1:0",
            "--log-dirs",
            str(tmp_path / "data"),
            "--override",
            "offsets.topic.num.partitions=1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=tmp_path,
        env=env,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("flows broker listening on PLAINTEXT://127.0.0.1:")
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
