"""Start the included broker as a real subprocess for integration tests and benchmarks.

The broker is started exactly as a user would (``python -m broker ...``) on a loopback
listener with port 0, and the real port is read from the line it prints when ready
(``flows broker listening on PLAINTEXT://127.0.0.1:PORT (advertised as HOST:PORT)``).
Its stdout and stderr go to one file, so a failing test shows what the broker said
(the fixture prints the tail at teardown, which pytest shows only for failures).

:class:`BrokerProcess` has no pytest dependency in its use, so benchmarks load this file
and reuse it rather than keeping a second launcher.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
_READY = re.compile(
    r"flows broker listening on PLAINTEXT://(?P<host>[^\s:]+):(?P<port>\d+)"
    r"(?: \(advertised as (?P<adv_host>[^\s:]+):(?P<adv_port>\d+)\))?"
)


class BrokerStartError(RuntimeError):
    """The broker did not come up; the message carries the tail of its output."""


class BrokerProcess:
    """One broker subprocess with a log dir that survives restarts.

    ``start()`` waits for the readiness line and then for a TCP connect. ``restart()``
    stops cleanly (SIGTERM) and starts again on the same log dir and, by default, the
    same port so that clients can reconnect; ``kill9()`` simulates a crash.
    """

    def __init__(
        self,
        log_dir: Path,
        output_path: Path,
        overrides: Mapping[str, str] | None = None,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.log_dir = Path(log_dir)
        self.output_path = Path(output_path)
        self.overrides = dict(overrides or {})
        self.extra_args = extra_args
        self.proc: subprocess.Popen[bytes] | None = None
        self.host = "127.0.0.1"
        self.port = 0
        self.starts = 0
        self._out_offset = 0

    # -- lifecycle ---------------------------------------------------------------------

    def start(self, *, port: int | None = None, timeout_s: float = 60.0) -> BrokerProcess:
        """Start the broker (port 0 unless given) and return once it accepts connections."""
        if self.proc is not None and self.proc.poll() is None:
            raise RuntimeError("broker already running")
        self.log_dir.mkdir(parents=True, exist_ok=True)
        want_port = 0 if port is None else port
        cmd = [
            sys.executable,
            "-m",
            "broker",
            "--listeners",
            f"PLAINTEXT://127.0.0.1:{want_port}",
            "--log-dirs",
            str(self.log_dir),
        ]
        for key, value in self.overrides.items():
            cmd += ["--override", f"{key}={value}"]
        cmd += list(self.extra_args)
        self.starts += 1
        with open(self.output_path, "ab") as out:
            out.write(f"\n===== start #{self.starts}: {' '.join(cmd)}\n".encode())
            out.flush()
            self._out_offset = out.tell()
            env = dict(os.environ, PYTHONUNBUFFERED="1")
            self.proc = subprocess.Popen(
                cmd,
                cwd=REPO_ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
            )
        self._wait_ready(timeout_s)
        return self

    def _wait_ready(self, timeout_s: float) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout_s
        match = None
        while match is None:
            text = self.output_since_start()
            match = _READY.search(text)
            if match is not None:
                break
            if self.proc.poll() is not None:
                raise BrokerStartError(
                    f"broker exited with code {self.proc.returncode} before listening:\n"
                    + self.tail()
                )
            if time.monotonic() > deadline:
                self.kill9()
                raise BrokerStartError(
                    f"broker printed no 'listening on' line in {timeout_s}s:\n" + self.tail()
                )
            time.sleep(0.05)
        self.host = match.group("adv_host") or match.group("host")
        self.port = int(match.group("adv_port") or match.group("port"))
        while True:
            try:
                with socket.create_connection((self.host, self.port), timeout=1.0):
                    return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise BrokerStartError(
                        "broker printed its port but does not accept connections:\n" + self.tail()
                    ) from None
                time.sleep(0.05)

    def stop(self, timeout_s: float = 30.0) -> int | None:
        """Clean stop (SIGTERM), escalating to SIGKILL; returns the exit code."""
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        return proc.returncode

    def kill9(self) -> None:
        """Crash the broker (SIGKILL) and reap it."""
        proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(10)

    def restart(self, *, same_port: bool = True, timeout_s: float = 60.0) -> BrokerProcess:
        """Clean stop (unless already dead), then start on the same log dir."""
        port = self.port if same_port else None
        self.stop()
        return self.start(port=port, timeout_s=timeout_s)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    # -- output ------------------------------------------------------------------------

    def output(self) -> str:
        """Everything the broker printed, over all starts."""
        try:
            return self.output_path.read_bytes().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def output_since_start(self) -> str:
        try:
            with open(self.output_path, "rb") as f:
                f.seek(self._out_offset)
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def tail(self, n_chars: int = 6000) -> str:
        return self.output()[-n_chars:]

    def rss_bytes(self) -> int:
        """Resident memory of the broker process (Linux)."""
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS line")

    def __enter__(self) -> BrokerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Always leaves no process behind."""
        with contextlib.suppress(Exception):
            self.stop(timeout_s=10)
        self.kill9()


@contextlib.contextmanager
def running_broker(
    work_dir: Path, overrides: Mapping[str, str] | None = None
) -> Iterator[BrokerProcess]:
    """Context manager for scripts: a started broker with ``work_dir/logs`` as its log dir."""
    broker = BrokerProcess(work_dir / "logs", work_dir / "broker-output.txt", overrides)
    try:
        yield broker.start()
    finally:
        broker.close()


BrokerFactory = Callable[..., BrokerProcess]


def _make_factory(base: Path) -> tuple[BrokerFactory, list[BrokerProcess]]:
    started: list[BrokerProcess] = []

    def factory(overrides: Mapping[str, str] | None = None, *, start: bool = True) -> BrokerProcess:
        n = len(started)
        broker = BrokerProcess(base / f"logs-{n}", base / f"broker-{n}-output.txt", overrides)
        started.append(broker)
        return broker.start() if start else broker

    return factory, started


def _teardown(started: list[BrokerProcess]) -> None:
    for broker in started:
        broker.close()
        print(f"----- broker output ({broker.output_path.name}) -----")
        print(broker.tail())


@pytest.fixture
def start_broker(tmp_path: Path) -> Iterator[BrokerFactory]:
    """Factory: ``start_broker({"num.partitions": "3"})`` starts a broker for this test."""
    factory, started = _make_factory(tmp_path)
    yield factory
    _teardown(started)


@pytest.fixture
def broker(start_broker: BrokerFactory) -> BrokerProcess:
    """A broker with default settings, for this test only."""
    return start_broker()


@pytest.fixture(scope="module")
def module_broker_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerFactory]:
    """Factory for brokers shared by the tests of one module (cheaper than one per test)."""
    factory, started = _make_factory(tmp_path_factory.mktemp("broker"))
    yield factory
    _teardown(started)
