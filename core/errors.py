"""Errors raised while building, compiling or running a topology.

Build-time errors (:class:`TopologyError`) name the step and say how to fix the flow module;
run-time errors (:class:`ProcessingError`) name the step, task, topic, partition and offset
where a record failed, so a user never has to read a fused closure's traceback.
"""

from __future__ import annotations


class FlowsError(Exception):
    """Base class of every error raised by ``core`` (and re-exported by ``flows``)."""


class TopologyError(FlowsError, ValueError):
    """The topology is invalid: a duplicate name, a missing serde, non-co-partitioned inputs..."""

    def __init__(self, message: str, *, step: str | None = None) -> None:
        self.step = step
        super().__init__(message)


class ProcessingError(FlowsError, RuntimeError):
    """A user function or a serde failed on a record while a task processed a batch."""

    def __init__(self, message: str, *, step: str | None = None, task: str | None = None) -> None:
        self.step = step
        self.task = task
        super().__init__(message)
