"""``flows doctor`` -- check that this machine can use the cluster, and say how to fix it.

The checks themselves live in :mod:`flows.doctor`; this module only prints the report.
Exit code 0 when everything works, 1 when a problem was found.
"""

from __future__ import annotations

from typing import Annotated

import typer

from flows.cli import app
from flows.cli._common import BrokerOption, CliError, handle_errors, resolve_bootstrap, run
from flows.doctor import SCRATCH_TOPIC, Report, Severity, diagnose

_MARK = {Severity.OK: "ok  ", Severity.WARN: "warn", Severity.FAIL: "FAIL"}


def _split(bootstrap: str) -> list[tuple[str, int]]:
    out = []
    for part in bootstrap.split(","):
        host, _, port = part.rpartition(":")
        out.append((host.strip("[]"), int(port)))
    return out


def render(report: Report) -> list[str]:
    """The report as lines: one per finding (with its fix indented), then a summary."""
    lines = []
    for f in report.findings:
        lines.append(f"{_MARK[f.severity]}  {f.message}")
        if f.fix and f.severity is not Severity.OK:
            lines.append(f"      fix: {f.fix}")
    problems = sum(f.severity is Severity.FAIL for f in report.findings)
    if problems:
        lines.append(f"{problems} problem{'s' if problems != 1 else ''} found")
    elif report.round_trip_ms is not None:
        lines.append(f"all checks passed; produce/consume round trip {report.round_trip_ms:.1f} ms")
    else:
        lines.append("all checks passed")
    return lines


@app.command("doctor")
@handle_errors
def doctor(
    broker: BrokerOption = None,
    topic: Annotated[
        str | None, typer.Option("--topic", help="Also check that this topic exists.")
    ] = None,
    scratch_topic: Annotated[
        str, typer.Option("--scratch-topic", help="Topic used for the round-trip test.")
    ] = SCRATCH_TOPIC,
    no_round_trip: Annotated[
        bool, typer.Option("--no-round-trip", help="Skip the produce/consume round trip.")
    ] = False,
    timeout: Annotated[
        float, typer.Option("--timeout", help="Seconds to wait for each connection/answer.")
    ] = 5.0,
) -> None:
    """Diagnose connectivity: bootstrap, advertised listeners, coordinator, round trip."""
    if timeout <= 0:
        raise CliError(f"invalid --timeout {timeout}: must be more than 0 seconds")
    bootstrap = resolve_bootstrap(broker)
    report = run(
        diagnose(
            _split(bootstrap),
            topic=topic,
            scratch_topic=scratch_topic,
            timeout_s=timeout,
            round_trip=not no_round_trip,
        )
    )
    for line in render(report):
        typer.echo(line)
    if not report.ok:
        raise typer.Exit(1)
