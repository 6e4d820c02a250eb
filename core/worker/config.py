"""Worker settings: processing guarantee, commit interval, standbys, error handlers.

Error handlers are chosen per kind of failure, as in Kafka Streams' exception handlers:

* ``on_deserialization_error`` -- a source record's key or value does not decode;
* ``on_processing_error`` -- a user function (or a sink's encoder) raised;
* ``on_production_error`` -- the broker refused records the worker produced.

Each is ``"fail"`` (stop the worker with a message naming step, topic, partition and offset),
``"log_and_skip"`` (log one line and go on), or ``"dead_letter"`` (write the record, with
``flows.error.*`` headers, to the dead-letter topic -- ``<app-id>-dlq`` unless
``dead_letter_topic`` names another -- and go on).

>>> ErrorHandling(on_deserialization_error="dead_letter").dlq_topic("pageviews")
'pageviews-dlq'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import TopologyError

HANDLERS = ("fail", "log_and_skip", "dead_letter")
GUARANTEES = ("at_least_once", "exactly_once")


@dataclass(frozen=True)
class ErrorHandling:
    """Which handler runs for each kind of failure; see the module docstring."""

    on_deserialization_error: str = "fail"
    on_processing_error: str = "fail"
    on_production_error: str = "fail"
    dead_letter_topic: str | None = None

    def __post_init__(self) -> None:
        for what in ("on_deserialization_error", "on_processing_error", "on_production_error"):
            value = getattr(self, what)
            if value not in HANDLERS:
                raise TopologyError(
                    f"{what}={value!r} is not a handler: use one of {', '.join(HANDLERS)}"
                )
        if self.on_production_error == "dead_letter":
            raise TopologyError(
                "on_production_error='dead_letter' is not supported (the dead-letter topic is "
                "produced to by the same producer): use 'fail' or 'log_and_skip'"
            )

    def dlq_topic(self, app_id: str) -> str:
        return self.dead_letter_topic or f"{app_id}-dlq"

    @property
    def uses_dead_letter(self) -> bool:
        return "dead_letter" in (self.on_deserialization_error, self.on_processing_error)

    @classmethod
    def of(cls, app: Any) -> ErrorHandling:
        """The handlers configured on ``app``: an ``errors`` attribute, else ``on_*`` ones."""
        found = getattr(app, "errors", None)
        if isinstance(found, ErrorHandling):
            return found
        return cls(
            on_deserialization_error=getattr(app, "on_deserialization_error", None) or "fail",
            on_processing_error=getattr(app, "on_processing_error", None) or "fail",
            on_production_error=getattr(app, "on_production_error", None) or "fail",
            dead_letter_topic=getattr(app, "dead_letter_topic", None),
        )


@dataclass(frozen=True)
class WorkerConfig:
    """How one worker runs; the CLI flags map one to one onto these fields."""

    bootstrap: str
    state_dir: Path = Path(".flows/state")
    processing_guarantee: str = "at_least_once"
    num_standby_replicas: int = 0
    metrics_port: int | None = None
    commit_interval_ms: int | None = None
    """``None``: 30 s under at-least-once, 100 ms under exactly-once (as Kafka Streams)."""
    max_poll_records: int = 2000
    restore_batch_records: int = 10_000
    """Changelog records restored per loop turn: restoring never holds back running tasks."""
    errors: ErrorHandling = field(default_factory=ErrorHandling)
    client_id: str = "flows-worker"
    max_task_idle_ms: int = 0
    """Kafka's ``max.task.idle.ms`` for tasks with several inputs (joins, merges): such a task
    always waits for an input with unread records on the broker; it also waits this long for
    an input that is caught up but has nothing buffered. ``-1`` never waits."""

    def __post_init__(self) -> None:
        if self.processing_guarantee not in GUARANTEES:
            raise TopologyError(
                f"processing guarantee {self.processing_guarantee!r} is unknown: use "
                f"{' or '.join(GUARANTEES)}"
            )
        if self.num_standby_replicas < 0:
            raise TopologyError(
                f"--num-standby-replicas must be >= 0, got {self.num_standby_replicas}"
            )
        if self.max_task_idle_ms < -1:
            raise TopologyError(
                f"--max-task-idle-ms must be >= 0, or -1 to never wait, got {self.max_task_idle_ms}"
            )
        if self.max_poll_records < 1:
            raise TopologyError(f"--max-poll-records must be >= 1, got {self.max_poll_records}")

    @property
    def exactly_once(self) -> bool:
        return self.processing_guarantee == "exactly_once"

    @property
    def commit_interval_s(self) -> float:
        if self.commit_interval_ms is not None:
            return self.commit_interval_ms / 1000
        return 0.1 if self.exactly_once else 30.0
