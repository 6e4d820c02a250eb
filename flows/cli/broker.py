"""``flows broker``: run the included broker, or manage the embedded one.

``flows broker [options]`` runs a broker in the foreground (Ctrl-C stops it);
``flows broker start|stop|status`` manage the embedded broker in ``.flows/`` that
commands use when neither ``--broker`` nor ``FLOWS_BROKER`` is given.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from flows.cli import app

broker_app = typer.Typer(
    help="Run the included Kafka-compatible broker, or manage the embedded one.",
    add_completion=False,
)
app.add_typer(broker_app, name="broker")


@broker_app.callback(invoke_without_command=True)
def broker(
    ctx: typer.Context,
    config: Annotated[
        Path | None, typer.Option("--config", help="A Kafka server.properties file.")
    ] = None,
    override: Annotated[
        list[str] | None,
        typer.Option("--override", help="key=value, repeatable (e.g. num.partitions=3)."),
    ] = None,
    listeners: Annotated[
        str | None,
        typer.Option(
            "--listeners", help="e.g. PLAINTEXT://127.0.0.1:9092 (port 0 = any free port)."
        ),
    ] = None,
    advertised_listeners: Annotated[
        str | None,
        typer.Option("--advertised-listeners", help="e.g. PLAINTEXT://myhost:9092."),
    ] = None,
    log_dirs: Annotated[
        str | None, typer.Option("--log-dirs", help="Comma-separated data dirs.")
    ] = None,
    metrics_port: Annotated[
        int | None, typer.Option("--metrics-port", help="Serve Prometheus /metrics here.")
    ] = None,
) -> None:
    """Run a broker in the foreground until Ctrl-C or SIGTERM."""
    if ctx.invoked_subcommand is not None:
        return
    from broker.config import BrokerConfig, ConfigError
    from broker.node import run_broker

    try:
        cfg = BrokerConfig.from_sources(
            config,
            override or [],
            listeners=listeners,
            advertised_listeners=advertised_listeners,
            log_dirs=log_dirs,
        )
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    raise typer.Exit(run_broker(cfg, metrics_port=metrics_port))


DirOption = Annotated[Path, typer.Option("--dir", help="Where the embedded broker lives.")]


@broker_app.command("start")
def start(data_dir: DirOption = Path(".flows")) -> None:
    """Start the embedded broker in the background (or report the running one)."""
    from broker.embedded import EmbeddedBrokerError, ensure_embedded_broker

    try:
        bootstrap = ensure_embedded_broker(data_dir)
    except (EmbeddedBrokerError, OSError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"embedded broker running at kafka://{bootstrap} (log: {data_dir}/broker.log)")


@broker_app.command("stop")
def stop(data_dir: DirOption = Path(".flows")) -> None:
    """Stop the embedded broker."""
    from broker.embedded import EmbeddedBrokerError, stop_embedded_broker

    try:
        stopped = stop_embedded_broker(data_dir)
    except (EmbeddedBrokerError, OSError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo("embedded broker stopped" if stopped else "no embedded broker was running")


@broker_app.command("status")
def status(data_dir: DirOption = Path(".flows")) -> None:
    """Say whether the embedded broker runs, and where."""
    from broker.embedded import embedded_status

    info = embedded_status(data_dir)
    if info["running"]:
        typer.echo(
            f"embedded broker running at kafka://{info['bootstrap']} "
            f"(pid {info['pid']}, log: {info['log']})"
        )
    else:
        typer.echo("embedded broker is not running")
        raise typer.Exit(1)
