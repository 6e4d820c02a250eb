"""Errors users of ``flows`` may catch; they are raised by the compiler and runtime in ``core``."""

from __future__ import annotations

from core.errors import FlowsError, ProcessingError, TopologyError

__all__ = ["FlowsError", "ProcessingError", "TopologyError"]
