"""Window definitions and window arithmetic, shared by the DSL and the windowed operators.

Times are ms since the epoch. Tumbling and hopping windows are ``[start, end)`` (end exclusive,
as in Kafka Streams); sliding windows and sessions are ``[start, end]`` (end inclusive). A window
*closes* when stream time reaches :meth:`WindowSpec.close_time`: after that it never changes
again, a record that would update it is late (dropped and counted), and a suppressed result
for it is final.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

_SE = struct.Struct(">qq")


@dataclass(slots=True, order=True, unsafe_hash=True)
class Windowed:
    """The key of a windowed table: the record key and its window's ``start`` and ``end`` (ms).

    Hashable and meant to be treated as immutable (not ``frozen``: a frozen dataclass costs
    several times more to create, and one is made per windowed update).

    >>> Windowed("a", 0, 60_000)
    Windowed(key='a', start=0, end=60000)
    """

    key: Any
    start: int
    end: int


@dataclass(frozen=True)
class WindowSpec:
    """A window definition; build one with :mod:`flows.windows`.

    ``size`` is the tumbling/hopping size, the sliding or join ``max_difference``, or the session
    ``inactivity_gap``; ``advance`` the hop (equal to ``size`` for tumbling windows).
    """

    kind: str
    size: int
    advance: int
    grace: int

    def windows_for(self, ts: int) -> list[tuple[int, int]]:
        """Tumbling/hopping windows ``(start, end)`` containing ``ts``, oldest first.

        >>> WindowSpec("hopping", 10, 5, 0).windows_for(12)
        [(5, 15), (10, 20)]
        """
        size, advance = self.size, self.advance
        if size == advance:
            start = ts - ts % size
            return [(start, start + size)]
        first = max(0, ts - size + advance) // advance * advance
        out = []
        start = first
        while start <= ts:
            if start + size > ts:
                out.append((start, start + size))
            start += advance
        return out

    def close_time(self, start: int, end: int) -> int:
        """Stream time at which window ``[start, end]`` is closed (grace included)."""
        if self.kind in ("tumbling", "hopping"):
            return end + self.grace
        if self.kind == "session":
            return end + self.size + self.grace + 1
        return end + self.grace + 1

    @property
    def retention(self) -> int:
        """How long (ms of stream time) a window store keeps a window after its start."""
        if self.kind in ("tumbling", "hopping"):
            return self.size + self.grace
        if self.kind == "sliding":
            return 2 * self.size + self.grace + 2
        if self.kind == "session":
            # a record may bridge a session ending up to two gaps before the one it extends
            return 2 * self.size + self.grace + 1
        return 2 * self.size + self.grace + 1  # join buffers

    def describe(self) -> str:
        if self.kind == "hopping":
            return f"hopping(size={self.size}ms, advance={self.advance}ms, grace={self.grace}ms)"
        what = {"tumbling": "size", "session": "gap"}.get(self.kind, "max_difference")
        return f"{self.kind}({what}={self.size}ms, grace={self.grace}ms)"


class WindowedSerde:
    """Bytes of a :class:`Windowed` key: inner key bytes, then start and end as 8-byte big-endian.

    >>> from flows.serdes import STR
    >>> s = WindowedSerde(STR)
    >>> s.decode(s.encode(Windowed("k", 0, 10)))
    Windowed(key='k', start=0, end=10)
    """

    identity = False

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name = f"windowed[{inner.name}]"
        self._ie = inner.encode
        self._id = inner.decode

    def encode(self, w: Windowed) -> bytes:
        if not isinstance(w, Windowed):
            raise TypeError(f"{self.name} serde needs a flows.Windowed key, got {type(w).__name__}")
        return self._ie(w.key) + _SE.pack(w.start, w.end)

    def decode(self, data: bytes) -> Windowed:
        start, end = _SE.unpack(data[-16:])
        return Windowed(self._id(data[:-16]), int(start), int(end))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, WindowedSerde) and other.inner is self.inner

    def __hash__(self) -> int:
        return hash(("windowed", id(self.inner)))

    def __repr__(self) -> str:
        return f"<serde {self.name}>"
