"""Start real broker processes (``python -m broker``) on loopback for tests.

``broker_process(tmp_path, overrides=..., listeners=...)`` starts one broker on free
ports (port 0), waits for its "listening on" lines and returns a :class:`BrokerProcess`;
every broker started through the fixture is stopped (SIGTERM) at teardown.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
_LISTENING = re.compile(
    r"^flows broker listening on (?P<name>[^:]+)://(?P<host>.+):(?P<port>\d+) "
    r"\(advertised as (?P<ahost>.+):(?P<aport>\d+)\)$"
)
START_TIMEOUT_S = 30.0
FAST_DEFAULTS = {"offsets.topic.num.partitions": "1"}


@dataclass
class BrokerProcess:
    proc: subprocess.Popen[str]
    log_path: Path
    listeners: dict[str, tuple[str, int, str, int]] = field(default_factory=dict)
    """name -> (bound host, bound port, advertised host, advertised port)."""
    stdout_lines: list[str] = field(default_factory=list)

    @property
    def bootstrap(self) -> str:
        _name, (host, port, _ah, _ap) = next(iter(self.listeners.items()))
        return f"{host}:{port}"

    def address(self, name: str) -> str:
        host, port, _ah, _ap = self.listeners[name]
        return f"{host}:{port}"

    def stop(self, timeout: float = 20.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def start_broker(
    tmp_path: Path,
    *,
    overrides: Sequence[str] | dict[str, str] = (),
    listeners: str = "PLAINTEXT://127.0.0.1:0",
    advertised_listeners: str | None = None,
    extra_args: Sequence[str] = (),
    data_dir: Path | None = None,
) -> BrokerProcess:
    """Start ``python -m broker`` and wait until every listener is up."""
    given = (
        dict(overrides)
        if isinstance(overrides, dict)
        else dict(item.split("=", 1) for item in overrides)
    )
    # One offsets partition instead of Kafka's 50 keeps test brokers quick to start.
    items = [f"{k}={v}" for k, v in {**FAST_DEFAULTS, **given}.items()]
    data = data_dir or tmp_path / "data"
    args = [sys.executable, "-m", "broker", "--log-dirs", str(data), "--listeners", listeners]
    if advertised_listeners is not None:
        args += ["--advertised-listeners", advertised_listeners]
    for item in items:
        args += ["--override", item]
    args += list(extra_args)
    log_path = tmp_path / f"broker-{len(list(tmp_path.glob('broker-*.log')))}.log"
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.Popen(
        args,
        stdout=subprocess.PIPE,
        stderr=log_path.open("w"),
        text=True,
        cwd=tmp_path,
        env=env,
    )
    expected = len([x for x in listeners.split(",") if x.strip()])
    bp = BrokerProcess(proc, log_path)
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    while len(bp.listeners) < expected:
        try:
            line = lines.get(timeout=START_TIMEOUT_S)
        except queue.Empty:
            bp.stop()
            raise RuntimeError(f"broker did not start in time:\n{bp.log_text()}") from None
        if line is None:
            proc.wait()
            raise RuntimeError(
                f"broker exited with {proc.returncode} before listening:\n{bp.log_text()}"
            )
        bp.stdout_lines.append(line)
        match = _LISTENING.match(line)
        if match:
            host = match["host"].strip("[]")
            bp.listeners[match["name"]] = (
                host,
                int(match["port"]),
                match["ahost"].strip("[]"),
                int(match["aport"]),
            )
    return bp


@pytest.fixture
def broker_process() -> Iterator[Callable[..., BrokerProcess]]:
    """Factory: ``broker_process(tmp_path, overrides=..., listeners=...)``."""
    started: list[BrokerProcess] = []

    def factory(tmp_path: Path, **kwargs: object) -> BrokerProcess:
        bp = start_broker(tmp_path, **kwargs)  # type: ignore[arg-type]
        started.append(bp)
        return bp

    yield factory
    for bp in started:
        bp.stop()


@pytest.fixture
def broker(broker_process: Callable[..., BrokerProcess], tmp_path: Path) -> BrokerProcess:
    """One broker with default settings, for this test alone."""
    return broker_process(tmp_path)


@pytest.fixture(scope="module")
def shared_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    """One default broker shared by a test module (tests must use distinct topic names)."""
    bp = start_broker(tmp_path_factory.mktemp("shared-broker"))
    yield bp
    bp.stop()


class WireClient:
    """A minimal blocking Kafka client speaking kio entities, for protocol-level tests."""

    def __init__(self, address: str, timeout: float = 10.0) -> None:
        import socket

        host, _, port = address.rpartition(":")
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        self._next = 0

    def send(self, body: object, client_id: str | None = "tests") -> int:
        from broker.codec import encode_request

        self._next += 1
        self.sock.sendall(encode_request(body, correlation_id=self._next, client_id=client_id))
        return self._next

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def recv_frame(self) -> bytes:
        size = int.from_bytes(self._exactly(4), "big", signed=True)
        return self._exactly(size)

    def recv(self, response_cls: type) -> tuple[int, object]:
        """(correlation id, decoded body) of the next response."""
        from kio.serial import entity_reader

        frame = self.recv_frame()
        corr = int.from_bytes(frame[:4], "big", signed=True)
        offset = 5 if response_cls.__header_schema__.__flexible__ else 4  # type: ignore[attr-defined]
        body, _ = entity_reader(response_cls)(frame, offset)
        return corr, body

    def call(self, body: object) -> object:
        from kio.index import load_response_schema

        cls = load_response_schema(type(body).__api_key__, type(body).__version__)  # type: ignore[attr-defined]
        corr = self.send(body)
        got, response = self.recv(cls)
        assert got == corr
        return response

    def closed_by_peer(self) -> bool:
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True

    def _exactly(self, n: int) -> bytes:
        chunks = bytearray()
        while len(chunks) < n:
            chunk = self.sock.recv(n - len(chunks))
            if not chunk:
                raise ConnectionError("broker closed the connection")
            chunks += chunk
        return bytes(chunks)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def wire() -> Iterator[Callable[[str], WireClient]]:
    """Factory of :class:`WireClient` connections, closed at teardown."""
    clients: list[WireClient] = []

    def connect(address: str) -> WireClient:
        client = WireClient(address)
        clients.append(client)
        return client

    yield connect
    for client in clients:
        client.close()
