"""Step kinds that run as batch functions outside the fused loops, and their factories.

A one-input factory returns ``push(batch)``; a two-input factory (joins) returns one
``push`` per parent step, so the operator knows which side a batch came from.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from core.operators.fk_join import make_fk_resolve, make_fk_right, make_fk_subscribe
from core.operators.joins import (
    make_global_join,
    make_stream_join,
    make_stream_table_join,
    make_table_join,
)
from core.operators.session import make_session_aggregate
from core.operators.suppress import make_suppress
from core.operators.windowed import make_sliding_aggregate, make_window_aggregate

ONE_INPUT: dict[str, Callable[..., Any]] = {
    "window_aggregate": make_window_aggregate,
    "sliding_aggregate": make_sliding_aggregate,
    "session_aggregate": make_session_aggregate,
    "suppress": make_suppress,
    "stream_table_join": make_stream_table_join,
    "global_join": make_global_join,
    "fk_subscribe": make_fk_subscribe,
}
TWO_INPUT: dict[str, Callable[..., Any]] = {
    "table_join": make_table_join,
    "stream_join": make_stream_join,
    "fk_right": make_fk_right,
    "fk_resolve": make_fk_resolve,
}
