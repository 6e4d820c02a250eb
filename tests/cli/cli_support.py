"""Helpers for the command-line tests: a real broker subprocess and a CLI runner.

The broker is started the way a user starts it (``python -m broker``) on a loopback port;
its real port is read from the ``flows broker listening on ...`` line. A launcher of our own
(rather than the integration fixture) is needed because the doctor tests start brokers whose
*advertised* address is deliberately unreachable, so readiness is checked on the bound address.
"""

from __future__ import annotations

import importlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from typer.testing import CliRunner

import flows.cli

REPO_ROOT = Path(__file__).resolve().parents[2]
READY = re.compile(r"flows broker listening on PLAINTEXT://(?P<host>[^\s:]+):(?P<port>\d+)")


@dataclass
class RunningBroker:
    proc: subprocess.Popen[bytes]
    host: str
    port: int
    output: Path

    @property
    def url(self) -> str:
        return f"kafka://{self.host}:{self.port}"

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def free_port() -> int:
    """A loopback port nobody listens on (right now)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def launch_broker(
    work_dir: Path,
    *,
    port: int = 0,
    advertised: str | None = None,
    overrides: Sequence[str] = (),
    timeout_s: float = 60.0,
) -> RunningBroker:
    """Start ``python -m broker`` and return once its bound address accepts connections."""
    work_dir.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable, "-m", "broker",
        "--listeners", f"PLAINTEXT://127.0.0.1:{port}",
        "--log-dirs", str(work_dir / "logs"),
    ]  # fmt: skip
    if advertised:
        cmd += ["--advertised-listeners", advertised]
    for item in overrides:
        cmd += ["--override", item]
    output = work_dir / "broker-output.txt"
    with open(output, "wb") as out:
        proc = subprocess.Popen(
            cmd,
            cwd=REPO_ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
        )
    deadline = time.monotonic() + timeout_s
    while True:
        match = READY.search(output.read_text(errors="replace"))
        if match:
            break
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            proc.wait(10)
            raise RuntimeError(f"broker did not start:\n{output.read_text(errors='replace')}")
        time.sleep(0.05)
    broker = RunningBroker(proc, match["host"], int(match["port"]), output)
    while True:
        try:
            with socket.create_connection((broker.host, broker.port), timeout=1.0):
                return broker
        except OSError:
            if time.monotonic() > deadline:
                broker.stop()
                raise RuntimeError("broker printed its port but refuses connections") from None
            time.sleep(0.05)


BrokerLauncher = Callable[..., RunningBroker]


@dataclass
class Result:
    exit_code: int
    stdout: str
    stderr: str


class Flows:
    """Runs ``flows ...`` in-process (fast) with the right ``--broker``."""

    def __init__(self) -> None:
        # Only the command modules under test: a broken sibling module must not fail these.
        for name in ("topics", "produce", "consume", "doctor"):
            importlib.import_module(f"flows.cli.{name}")
        self.runner = CliRunner()

    def __call__(self, *args: str, input: str | bytes | None = None) -> Result:
        result = self.runner.invoke(flows.cli.app, list(args), input=input)
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        return Result(result.exit_code, result.stdout, result.stderr)


def run_flows_process(*args: str, input: bytes | None = None) -> subprocess.CompletedProcess[str]:
    """``flows ...`` as a real process through the console-script entry point."""
    return subprocess.run(
        [sys.executable, "-c", "from flows.cli import main; main()", *args],
        cwd=REPO_ROOT,
        input=input.decode() if input is not None else None,
        capture_output=True,
        text=True,
        timeout=120,
    )
