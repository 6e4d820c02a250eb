"""The embedded broker: what flows uses when no broker is configured.

``ensure_embedded_broker()`` reuses the broker recorded in ``.flows/broker.json`` when
its process is alive and accepts connections, and otherwise starts ``python -m broker``
detached (its own session, so it outlives the command that started it), logging to
``.flows/broker.log`` and keeping data in ``.flows/data``. It listens on a free
loopback port: the broker binds port 0 and prints the real port, which is read back from
the log, so two starts never race for one port. A file lock makes concurrent callers
share one broker.

``resolve_bootstrap()`` implements the rule every command follows: ``--broker
kafka://host:port[,host:port]``, else ``FLOWS_BROKER``, else the embedded broker.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = [
    "EmbeddedBrokerError",
    "embedded_status",
    "ensure_embedded_broker",
    "parse_broker_url",
    "resolve_bootstrap",
    "stop_embedded_broker",
]

DEFAULT_DIR = Path(".flows")
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 20.0
_LISTENING = re.compile(r"flows broker listening on \S+://(\S+):(\d+) \(advertised as")


class EmbeddedBrokerError(RuntimeError):
    """The embedded broker could not be started, reached or stopped (one-line message)."""


def parse_broker_url(value: str) -> str:
    """``kafka://h1:p1,h2:p2`` (scheme optional) -> ``h1:p1,h2:p2``.

    >>> parse_broker_url("kafka://localhost:9092,127.0.0.1:9093")
    'localhost:9092,127.0.0.1:9093'
    """
    text = value.strip()
    if "://" in text:
        scheme, _, text = text.partition("://")
        if scheme.lower() != "kafka":
            raise ValueError(
                f"broker address {value!r} uses {scheme}://; use kafka://host:port[,host:port]"
            )
    out = []
    for item in text.split(","):
        item = item.strip().rstrip("/")
        if not item:
            continue
        host, sep, port = item.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError(
                f"broker address {value!r}: {item!r} is not host:port "
                "(expected kafka://host:port[,host:port])"
            )
        out.append(f"{host}:{port}")
    if not out:
        raise ValueError("broker address is empty; expected kafka://host:port[,host:port]")
    return ",".join(out)


def resolve_bootstrap(cli_value: str | None, data_dir: Path = DEFAULT_DIR) -> str:
    """The bootstrap servers to use: ``--broker``, else ``FLOWS_BROKER``, else embedded."""
    if cli_value:
        return parse_broker_url(cli_value)
    env = os.environ.get("FLOWS_BROKER")
    if env:
        return parse_broker_url(env)
    return ensure_embedded_broker(data_dir)


def _record_path(data_dir: Path) -> Path:
    return data_dir / "broker.json"


def _read_record(data_dir: Path) -> dict[str, Any] | None:
    try:
        record = json.loads(_record_path(data_dir).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and "pid" in record and "port" in record else None


def _alive(pid: int) -> bool:
    with contextlib.suppress(ChildProcessError, OSError):
        # Reap it if it is our own exited child (a zombie still "exists" for kill 0).
        done, _status = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _answers(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def _locked(data_dir: Path) -> Iterator[None]:
    data_dir.mkdir(parents=True, exist_ok=True)
    with (data_dir / "broker.lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _running(data_dir: Path) -> dict[str, Any] | None:
    record = _read_record(data_dir)
    if record is None:
        return None
    if _alive(int(record["pid"])) and _answers(
        record.get("host", "127.0.0.1"), int(record["port"])
    ):
        return record
    return None


def ensure_embedded_broker(data_dir: Path = DEFAULT_DIR) -> str:
    """Return the bootstrap ``host:port`` of the embedded broker, starting it if needed."""
    data_dir = Path(data_dir)
    with _locked(data_dir):
        record = _running(data_dir)
        if record is not None:
            return f"{record.get('host', '127.0.0.1')}:{record['port']}"
        return _start(data_dir)


def _start(data_dir: Path) -> str:
    log_path = data_dir / "broker.log"
    start_at = log_path.stat().st_size if log_path.exists() else 0
    package_root = str(Path(__file__).resolve().parents[1])
    env = dict(os.environ)
    env["PYTHONPATH"] = package_root + (
        os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else ""
    )
    env["PYTHONUNBUFFERED"] = "1"
    args = [
        sys.executable,
        "-m",
        "broker",
        "--listeners",
        "PLAINTEXT://127.0.0.1:0",
        "--log-dirs",
        str((data_dir / "data").resolve()),
    ]
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
            close_fds=True,
        )
    deadline = time.monotonic() + START_TIMEOUT_S
    port: int | None = None
    host = "127.0.0.1"
    while time.monotonic() < deadline:
        text = _read_from(log_path, start_at)
        match = _LISTENING.search(text)
        if match:
            host, port = match.group(1).strip("[]"), int(match.group(2))
            break
        if proc.poll() is not None:
            tail = " | ".join(text.strip().splitlines()[-3:])
            raise EmbeddedBrokerError(
                f"the embedded broker exited with status {proc.returncode}: {tail or 'no output'}"
                f" (see {log_path})"
            )
        time.sleep(0.05)
    if port is None:
        proc.terminate()
        raise EmbeddedBrokerError(f"the embedded broker did not start in time (see {log_path})")
    record = {"pid": proc.pid, "host": host, "port": port, "data": str(data_dir / "data")}
    tmp = _record_path(data_dir).with_suffix(".tmp")
    tmp.write_text(json.dumps(record))
    tmp.replace(_record_path(data_dir))
    return f"{host}:{port}"


def _read_from(path: Path, offset: int) -> str:
    try:
        with path.open("rb") as f:
            f.seek(offset)
            return f.read().decode(errors="replace")
    except OSError:
        return ""


def stop_embedded_broker(data_dir: Path = DEFAULT_DIR) -> bool:
    """SIGTERM the embedded broker, wait for it, remove the record; False if none ran."""
    data_dir = Path(data_dir)
    with _locked(data_dir):
        record = _read_record(data_dir)
        if record is None:
            return False
        pid = int(record["pid"])
        stopped = False
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + STOP_TIMEOUT_S
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if _alive(pid):
                raise EmbeddedBrokerError(
                    f"the embedded broker (pid {pid}) did not stop within {STOP_TIMEOUT_S:.0f}s"
                )
            stopped = True
        _record_path(data_dir).unlink(missing_ok=True)
        return stopped


def embedded_status(data_dir: Path = DEFAULT_DIR) -> dict[str, Any]:
    """``{"running": bool, "pid", "bootstrap", "log"}`` of the embedded broker."""
    data_dir = Path(data_dir)
    record = _read_record(data_dir)
    running = _running(data_dir) is not None
    status: dict[str, Any] = {"running": running, "log": str(data_dir / "broker.log")}
    if record is not None:
        status["pid"] = int(record["pid"])
        status["bootstrap"] = f"{record.get('host', '127.0.0.1')}:{record['port']}"
        status["data"] = record.get("data")
    return status
