"""``flows topology -A module[:attr]`` -- print an app's compiled topology.

Text like Kafka Streams' ``Topology.describe()`` by default; ``--format dot`` or
``--format mermaid`` for a drawing. Building the topology validates it, so this is also the
quickest way to check a flow module without a broker.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer

from core.errors import FlowsError
from flows.app import load_app
from flows.cli import app


class Format(StrEnum):
    text = "text"
    dot = "dot"
    mermaid = "mermaid"


@app.command("topology")
def topology(
    app_spec: Annotated[
        str,
        typer.Option("-A", "--app", help="Flow module, as module[:attr] (attr defaults to app)."),
    ],
    format: Annotated[
        Format, typer.Option("--format", help="text (like Kafka Streams), dot or mermaid.")
    ] = Format.text,
) -> None:
    """Print the sub-topologies, sources, processors, stores and sinks of an app."""
    try:
        compiled = load_app(app_spec).topology
    except FlowsError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    if format is Format.dot:
        typer.echo(compiled.to_dot(), nl=False)
    elif format is Format.mermaid:
        typer.echo(compiled.to_mermaid(), nl=False)
    else:
        typer.echo(compiled.describe(), nl=False)
