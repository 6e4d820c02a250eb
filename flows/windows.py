"""Window definitions for windowed aggregations and stream-stream joins.

Durations are seconds (int or float) or :class:`datetime.timedelta`; record times are ms since
the epoch. ``grace`` is how long after a window ends out-of-order records are still accepted;
later records are dropped and counted in the task's ``dropped_late_records`` (or handed to the
aggregation's ``on_late`` callback).

>>> import flows
>>> from flows import windows
>>> from flows.testing import TopologyTestDriver
>>> app = flows.App("doc-windows")
>>> clicks = app.topic("clicks", key_serde="str", value_serde="str")
>>> out = app.topic("per-minute", key_serde=windows.windowed_serde("str"), value_serde="int")
>>> (app.stream(clicks).group_by_key().window(windows.tumbling(60)).count(name="n")
...     .to_stream().to(out))
>>> with TopologyTestDriver(app) as driver:
...     for ts in (1_000, 30_000, 61_000):
...         driver.input_topic("clicks").pipe_input("u1", "x", timestamp=ts)
...     [(w.start, n) for w, n in driver.output_topic("per-minute").read_key_values_to_list()]
[(0, 1), (0, 2), (60000, 1)]
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from core.errors import TopologyError
from core.windowing import Windowed, WindowedSerde, WindowSpec
from flows.serdes import resolve_serde

__all__ = [
    "WindowSpec",
    "Windowed",
    "hopping",
    "join_window",
    "session",
    "sliding",
    "tumbling",
    "windowed_serde",
]


def to_ms(duration: Any, what: str, *, allow_zero: bool = False) -> int:
    """Seconds (int/float) or a ``timedelta`` as whole ms; negative or wrong types are errors."""
    if isinstance(duration, timedelta):
        ms = int(duration.total_seconds() * 1000)
    elif isinstance(duration, (int, float)) and not isinstance(duration, bool):
        ms = int(duration * 1000)
    else:
        raise TopologyError(
            f"{what} must be a number of seconds or a datetime.timedelta, got {duration!r}"
        )
    if ms < 0 or (ms == 0 and not allow_zero):
        need = "zero or more" if allow_zero else "positive"
        raise TopologyError(f"{what} must be {need} (at least 1 ms), got {duration!r}")
    return ms


def tumbling(size: Any, grace: Any = 0) -> WindowSpec:
    """Fixed-size, non-overlapping windows ``[start, start + size)``.

    >>> tumbling(60).describe()
    'tumbling(size=60000ms, grace=0ms)'
    """
    ms = to_ms(size, "tumbling window size")
    return WindowSpec("tumbling", ms, ms, to_ms(grace, "grace", allow_zero=True))


def hopping(size: Any, advance: Any, grace: Any = 0) -> WindowSpec:
    """Fixed-size windows starting every ``advance``; a record falls in ``size/advance`` windows.

    >>> hopping(60, 30).windows_for(45_000)
    [(0, 60000), (30000, 90000)]
    """
    ms = to_ms(size, "hopping window size")
    adv = to_ms(advance, "hopping window advance")
    if adv > ms:
        raise TopologyError(
            f"hopping window advance ({adv} ms) must not exceed its size ({ms} ms): use a "
            f"smaller advance, or tumbling(size) for non-overlapping windows"
        )
    return WindowSpec(
        "hopping" if adv != ms else "tumbling", ms, adv, to_ms(grace, "grace", allow_zero=True)
    )


def sliding(max_difference: Any, grace: Any = 0) -> WindowSpec:
    """Windows of every set of records at most ``max_difference`` apart (``[start, end]``).

    >>> sliding(10).describe()
    'sliding(max_difference=10000ms, grace=0ms)'
    """
    ms = to_ms(max_difference, "sliding window max_difference")
    return WindowSpec("sliding", ms, ms, to_ms(grace, "grace", allow_zero=True))


def session(inactivity_gap: Any, grace: Any = 0) -> WindowSpec:
    """Sessions per key: records less than ``inactivity_gap`` apart share a session.

    >>> session(300).describe()
    'session(gap=300000ms, grace=0ms)'
    """
    ms = to_ms(inactivity_gap, "session inactivity_gap")
    return WindowSpec("session", ms, ms, to_ms(grace, "grace", allow_zero=True))


def join_window(max_difference: Any, grace: Any = 0) -> WindowSpec:
    """For stream-stream joins: records join if their times differ by ``max_difference`` or less.

    >>> join_window(5).describe()
    'join(max_difference=5000ms, grace=0ms)'
    """
    ms = to_ms(max_difference, "join window max_difference", allow_zero=True)
    return WindowSpec("join", ms, ms, to_ms(grace, "grace", allow_zero=True))


def windowed_serde(inner: Any) -> WindowedSerde:
    """A serde for :class:`Windowed` keys (inner key bytes + 8-byte start + 8-byte end).

    >>> s = windowed_serde("str")
    >>> s.decode(s.encode(Windowed("k", 0, 5)))
    Windowed(key='k', start=0, end=5)
    """
    if isinstance(inner, WindowedSerde):
        return inner
    return WindowedSerde(resolve_serde(inner, where="windowed_serde"))
