"""Cron jobs (``@app.cron("*/5 * * * *")``), run by tasks on their wall clock.

A job runs per task, or once per application: then only the task for partition 0 of the first
sub-topology runs it (exactly one task of a running application has that id). Each task checks
its jobs through a wall-clock punctuation, so the job runs on the worker's clock, or on the
test driver's ``advance_wall_clock``. When the clock jumps over several due times the job runs
once, for the latest of them (missed runs are not replayed, as with cron).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from croniter import croniter

if TYPE_CHECKING:
    from core.task import Task


@dataclass(frozen=True)
class CronJob:
    """A cron schedule; ``per`` is ``"application"`` or ``"task"``."""

    name: str
    expr: str
    fn: Callable[..., Any]
    tz: str | None = None
    per: str = "application"

    def next_after(self, ms: int) -> int:
        """The first due time strictly after ``ms`` (ms since the epoch).

        >>> CronJob("j", "*/5 * * * *", print).next_after(0)
        300000
        """
        zone = ZoneInfo(self.tz) if self.tz else UTC
        base = datetime.fromtimestamp(ms / 1000, tz=zone)
        nxt = croniter(self.expr, base).get_next(datetime)
        return int(nxt.timestamp() * 1000)


class CronContext:
    """What a cron job may use: its due ``timestamp`` (ms), the task, and ``send``."""

    def __init__(self, task: Task, timestamp: int) -> None:
        self.task_id = task.id
        self.partition = task.partition
        self.timestamp = timestamp
        self._task = task

    def send(self, topic: str, key: Any, value: Any) -> None:
        """Write one record to ``topic`` (declared with ``app.topic``) with its serdes."""
        spec = self._task.topology.topics.get(topic)
        if spec is None or spec.value_serde is None:
            raise ValueError(f"cron send: topic {topic!r} is not declared with a value serde")
        ks = spec.key_serde
        kb = None if key is None or ks is None else ks.encode(key)
        vb = None if value is None else spec.value_serde.encode(value)
        self._task.collector.send(topic, [(kb, vb, self.timestamp, None)], None)


def _wants_context(fn: Callable[..., Any]) -> bool:
    try:
        params = [
            p
            for p in inspect.signature(fn).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
    except (TypeError, ValueError):
        return True
    return len(params) >= 1


def install(task: Task, jobs: tuple[CronJob, ...], first_sub: int) -> None:
    """Schedule the jobs this task runs (all per-task jobs; per-application ones on 0_0)."""
    for job in jobs:
        if job.per == "application" and (task.sub.id != first_sub or task.partition != 0):
            continue
        due = [job.next_after(task.wall_clock)]
        with_ctx = _wants_context(job.fn)

        def check(
            now: int, job: CronJob = job, due: list[int] = due, with_ctx: bool = with_ctx
        ) -> None:
            if now < due[0]:
                return
            latest = due[0]
            nxt = job.next_after(latest)
            while nxt <= now:
                latest, nxt = nxt, job.next_after(nxt)
            due[0] = nxt
            if with_ctx:
                job.fn(CronContext(task, latest))
            else:
                job.fn()

        task.schedule(1000, "wall_clock", check, _noop, f"cron {job.name}")


def _noop() -> None:
    return None
