"""``flows worker -A module[:attr]`` -- run an app's tasks on a Kafka cluster.

The app id is the consumer group: start the same command several times (on one machine or
many) and the workers share the tasks; stop one and the others take its tasks over, restoring
their state from the changelogs. SIGTERM or Ctrl-C stops a worker cleanly (finish the batch,
commit, write checkpoints, leave the group).
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from core.errors import FlowsError
from flows.cli import app
from flows.cli._common import BrokerOption, CliError, handle_errors, resolve_bootstrap


def load_app_spec(spec: str) -> Any:
    """``module[:attr]`` (from the current directory) or ``path/to/file.py[:attr]``."""
    from flows.app import App, load_app

    target, _, attr = spec.partition(":")
    if target.endswith(".py") or os.sep in target:
        path = Path(target)
        if not path.is_file():
            raise CliError(f"flow module file {target!r} does not exist")
        if str(path.parent.resolve()) not in sys.path:
            sys.path.insert(0, str(path.parent.resolve()))
        name = path.stem
        loader_spec = importlib.util.spec_from_file_location(name, path)
        if loader_spec is None or loader_spec.loader is None:
            raise CliError(f"cannot import flow module file {target!r}")
        module = importlib.util.module_from_spec(loader_spec)
        sys.modules[name] = module
        loader_spec.loader.exec_module(module)
        obj = getattr(module, attr or "app", None)
        if not isinstance(obj, App):
            raise CliError(
                f"{target!r} has no flows.App named {attr or 'app'!r}: define "
                f"app = flows.App(...) at module level or pass -A {target}:<attr>"
            )
        return obj
    try:
        return load_app(spec)
    except FlowsError as exc:
        raise CliError(str(exc)) from None


@app.command("worker")
@handle_errors
def worker(
    app_spec: Annotated[
        str,
        typer.Option(
            "-A", "--app", help="Flow module: module[:attr] or path/to/file.py (attr: app)."
        ),
    ],
    broker: BrokerOption = None,
    state_dir: Annotated[
        Path, typer.Option("--state-dir", help="Where task state (RocksDB) is kept.")
    ] = Path(".flows/state"),
    processing_guarantee: Annotated[
        str,
        typer.Option("--processing-guarantee", help="at_least_once (default) or exactly_once."),
    ] = "at_least_once",
    num_standby_replicas: Annotated[
        int, typer.Option("--num-standby-replicas", help="Warm copies of each task's state.")
    ] = 0,
    metrics_port: Annotated[
        int | None,
        typer.Option("--metrics-port", help="Serve Prometheus /metrics on this port."),
    ] = None,
    commit_interval_ms: Annotated[
        int | None,
        typer.Option(
            "--commit-interval-ms",
            help="Default: 30000 (at_least_once) or 100 (exactly_once), as Kafka Streams.",
        ),
    ] = None,
    max_task_idle_ms: Annotated[
        int,
        typer.Option(
            "--max-task-idle-ms",
            help="How long a join waits for an input with nothing buffered that is caught up "
            "(one with unread records is always waited for); -1 never waits. As Kafka's "
            "max.task.idle.ms.",
        ),
    ] = 0,
    max_poll_records: Annotated[
        int, typer.Option("--max-poll-records", help="Most records fetched per loop turn.")
    ] = 2000,
    log_level: Annotated[str, typer.Option("--log-level", help="DEBUG, INFO, WARNING...")] = "INFO",
) -> None:
    """Run the app's tasks, sharing them with every other worker of the same app."""
    from core.worker.config import ErrorHandling, WorkerConfig
    from core.worker.worker import run_worker

    logging.basicConfig(
        level=getattr(logging, log_level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    flow = load_app_spec(app_spec)
    try:
        topology = flow.topology
        errors = ErrorHandling.of(flow)
        bootstrap = resolve_bootstrap(broker or flow.broker)
        config = WorkerConfig(
            bootstrap=bootstrap,
            state_dir=state_dir,
            processing_guarantee=processing_guarantee,
            num_standby_replicas=num_standby_replicas,
            metrics_port=metrics_port,
            commit_interval_ms=commit_interval_ms,
            errors=errors,
            max_task_idle_ms=max_task_idle_ms,
            max_poll_records=max_poll_records,
        )
    except FlowsError as exc:
        raise CliError(str(exc)) from None
    try:
        asyncio.run(run_worker(topology, config))
    except FlowsError as exc:
        raise CliError(str(exc)) from None
