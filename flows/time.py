"""Event time and schedules for the DSL: timestamp extractors and ``@app.cron``."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from core.cron import CronJob
from core.errors import TopologyError

if TYPE_CHECKING:
    from flows.app import App


def _required_positional(fn: Callable[..., Any]) -> int | None:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return None
    return sum(
        1
        for p in sig.parameters.values()
        if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    )


def _to_ms(t: Any) -> int:
    if isinstance(t, datetime):
        return int(t.timestamp() * 1000)
    return int(t)


def extractor(fn: Any, *, where: str) -> Callable[[Any, Any, int], int] | None:
    """Normalise a timestamp extractor into ``fn(key, value, record_ts) -> ms``.

    ``fn(value)`` and ``fn(key, value, record_timestamp)`` are accepted; a ``datetime`` result
    is converted to ms.

    >>> extractor(lambda v: v["ts"], where="doc")(None, {"ts": 5}, 0)
    5
    """
    if fn is None:
        return None
    if not callable(fn):
        raise TopologyError(f"{where}: timestamp_extractor must be a function, got {fn!r}")
    n = _required_positional(fn)
    if n == 1:

        def of_value(key: Any, value: Any, ts: int) -> int:
            return _to_ms(fn(value))

        return of_value
    if n == 3:

        def of_record(key: Any, value: Any, ts: int) -> int:
            return _to_ms(fn(key, value, ts))

        return of_record
    raise TopologyError(
        f"{where}: timestamp_extractor must take (value) or (key, value, record_timestamp), "
        f"got {fn!r}"
    )


def cron_decorator(
    app: App, expr: str, tz: str | None, per: str, name: str | None
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    if not isinstance(expr, str) or not croniter.is_valid(expr):
        raise TopologyError(
            f"cron expression {expr!r} is not valid: use five fields, e.g. '*/5 * * * *'"
        )
    if tz is not None:
        try:
            ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise TopologyError(
                f"cron time zone {tz!r} is unknown: use an IANA name like 'Europe/Paris'"
            ) from exc
    if per not in ("application", "task"):
        raise TopologyError(f"cron per= must be 'application' or 'task', got {per!r}")

    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        if not callable(fn):
            raise TopologyError(f"@app.cron must decorate a function, got {fn!r}")
        job = CronJob(str(name or getattr(fn, "__name__", "cron")), expr, fn, tz, per)
        app._builder.crons.append(job)
        app._builder.version += 1
        return fn

    return register
