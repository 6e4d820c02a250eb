"""One broker node: configuration, log, partition watch, metrics, listeners, upkeep.

Handlers reach everything through ``ctx.node``. The node owns the start/stop order:
logs open before listeners bind, listeners close before logs flush, so no request is
half-served against a closed log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import sys
import time
from typing import Any

from broker.config import BrokerConfig, Listener
from broker.errors import KafkaError
from broker.log.manager import LogManager
from broker.metrics import BrokerMetrics
from broker.server import BrokerServer
from broker.watch import PartitionWatch

__all__ = ["BrokerNode", "run_broker"]

log = logging.getLogger(__name__)

_MAINTAIN_MAX_INTERVAL_S = 1.0


class BrokerNode:
    """The state of a running broker: what handlers reach as ``ctx.node``."""

    def __init__(self, config: BrokerConfig, *, metrics_port: int | None = None) -> None:
        from broker.group import GroupCoordinator

        self.config = config
        config.load_or_create_cluster_id()
        self.metrics = BrokerMetrics()
        self.logs = LogManager(config.log_dirs, config.topic_defaults())
        self.watch = PartitionWatch()
        self.logs.on_append = self.watch.notify
        # Produce shares one fsync among concurrent durable appends (off the event loop).
        self.logs.group_commit = True
        self.metrics.attach_logs(self.logs)
        self.groups: Any = GroupCoordinator(self.logs, config)
        from broker.txn import TransactionCoordinator

        self.txns: Any = TransactionCoordinator(self.logs, config, self.groups)
        self.server = BrokerServer(self)
        self.metrics_port = metrics_port
        self._maintain_task: asyncio.Task[None] | None = None
        self._maintain_round: asyncio.Future[None] | None = None
        self._stop_event: asyncio.Event | None = None

    def advertised(self, listener_name: str) -> tuple[str, int]:
        """Host and port clients of ``listener_name`` are told to connect to."""
        listener = self._listener(listener_name)
        return listener.advertised_host, listener.advertised_port

    def _listener(self, name: str) -> Listener:
        for listener in self.config.listeners:
            if listener.name == name:
                return listener
        return self.config.listeners[0]

    async def start(self) -> None:
        """Bind listeners, start upkeep and metrics; print one line per listener."""
        if self._stop_event is None:
            self._stop_event = asyncio.Event()
        await self.groups.start()
        await self.txns.start()
        await self.server.start()
        if self.metrics_port is not None:
            port = self.metrics.serve(self.metrics_port)
            print(f"flows broker metrics on http://0.0.0.0:{port}/metrics", flush=True)
        self._maintain_task = asyncio.create_task(self._maintain_loop(), name="log-maintenance")
        # Warnings first: whoever waits for the listening lines has seen them by then.
        for listener in self.config.listeners:
            _warn_advertised(listener)
        for listener in self.config.listeners:
            print(
                f"flows broker listening on {listener.name}://{_fmt_host(listener.host)}:"
                f"{listener.port} (advertised as {_fmt_host(listener.advertised_host)}:"
                f"{listener.advertised_port})",
                flush=True,
            )
        log.info(
            "broker %d started (cluster id %s, log dirs %s)",
            self.config.node_id,
            self.config.cluster_id,
            ", ".join(str(d) for d in self.config.log_dirs),
        )

    async def stop(self) -> None:
        """Close listeners, stop upkeep, flush and close the logs."""
        await self.server.stop()
        if self._maintain_task is not None:
            self._maintain_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._maintain_task
            self._maintain_task = None
        if self._maintain_round is not None:
            with contextlib.suppress(Exception):
                await self._maintain_round
            self._maintain_round = None
        if self.txns is not None:
            await self.txns.close()
        if self.groups is not None and hasattr(self.groups, "close"):
            result = self.groups.close()
            if asyncio.iscoroutine(result):
                await result
        try:
            self.logs.flush_all()
        finally:
            self.logs.close()
            self.metrics.close()
        log.info("broker %d stopped", self.config.node_id)

    def request_stop(self) -> None:
        if self._stop_event is not None:
            self._stop_event.set()

    async def run(self) -> None:
        """Start, serve until SIGTERM/SIGINT (or :meth:`request_stop`), then stop."""
        stop_event = asyncio.Event()
        loop = asyncio.get_running_loop()
        # Handlers go in before the listening lines are printed: whoever starts us may
        # send SIGTERM as soon as it has read them.
        for sig in (signal.SIGTERM, signal.SIGINT):
            # Not available off the main thread; then the embedding code stops the node.
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop_event.set)
        self._stop_event = stop_event
        await self.start()
        try:
            await stop_event.wait()
        finally:
            await self.stop()

    async def _maintain_loop(self) -> None:
        interval = min(
            self.config.get_int("log.retention.check.interval.ms") / 1000.0,
            _MAINTAIN_MAX_INTERVAL_S,
        )
        interval = max(interval, 0.05)
        while True:
            await asyncio.sleep(interval)
            # In a thread: compaction and retention touch files and may take a while;
            # the log's partitions carry their own locks. Shielded so that stop() can
            # wait for a round in progress before closing the log under it.
            self._maintain_round = asyncio.ensure_future(
                asyncio.to_thread(self.logs.maintain, int(time.time() * 1000))
            )
            try:
                await asyncio.shield(self._maintain_round)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("bug: log maintenance failed; retrying next round")


def _fmt_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _warn_advertised(listener: Listener) -> None:
    host = listener.advertised_host
    if host in ("", "0.0.0.0", "::"):
        print(
            f"warning: listener {listener.name} advertises {host or 'an empty host'!s}, which "
            "clients cannot connect to; set advertised.listeners to a reachable host",
            file=sys.stderr,
            flush=True,
        )
        return
    try:
        socket.getaddrinfo(host, listener.advertised_port)
    except (OSError, UnicodeError):
        print(
            f"warning: advertised host {host!r} of listener {listener.name} does not resolve "
            "here; clients will fail to connect unless it resolves for them",
            file=sys.stderr,
            flush=True,
        )


def run_broker(config: BrokerConfig, *, metrics_port: int | None = None) -> int:
    """Run a broker in the foreground until SIGTERM/SIGINT; returns the exit status.

    Startup faults a user can fix (a port in use, an unwritable log dir) are one line on
    stderr and exit status 1, never a traceback.
    """
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        node = BrokerNode(config, metrics_port=metrics_port)
    except OSError as exc:
        print(f"error: cannot open the log dirs: {exc}", file=sys.stderr)
        return 1
    except KafkaError as exc:  # a broker-level log default the log refuses
        print(f"error: broker log default: {exc.message}", file=sys.stderr)
        return 2

    async def main() -> None:
        await node.run()

    try:
        asyncio.run(main())
    except OSError as exc:
        print(f"error: cannot start the broker: {exc}", file=sys.stderr)
        try:
            node.logs.close()
        except Exception:
            log.debug("closing logs after a failed start", exc_info=True)
        return 1
    except KeyboardInterrupt:
        return 0
    return 0
