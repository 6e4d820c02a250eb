"""Session stores: values per ``(key, session start, session end)`` with retention.

Layout: key bytes, then the start and the end as 8 big-endian bytes each, so one range scan
gives the sessions of a key in start order. Sessions expire by their end: a session ending
before stream time minus the retention is deleted.

>>> from state.memory import InMemoryStore
>>> ss = SessionStore(InMemoryStore("s"), encode_key=str.encode, decode_key=bytes.decode,
...                   encode_value=str.encode, decode_value=bytes.decode, retention_ms=10_000)
>>> ss.put("a", (0, 1_000), "x"); ss.put("a", (9_000, 9_500), "y")
>>> ss.find("a", 500, 1_500)
[((0, 1000), 'x')]
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any, TypeVar

from state.api import KeyValueStore
from state.timed_cache import TimedCache

V = TypeVar("V")

_SE = struct.Struct(">QQ")


def _encode(sub: tuple[int, int]) -> bytes:
    return _SE.pack(max(sub[0], 0), max(sub[1], 0))


def _decode(b: bytes) -> tuple[int, int]:
    start, end = _SE.unpack(b)
    return int(start), int(end)


def _end(sub: tuple[int, int]) -> int:
    return sub[1]


class SessionStore(TimedCache[Any, V]):
    """Values per ``(key, (start, end))``; see the module docstring."""

    def __init__(
        self,
        store: KeyValueStore,
        *,
        encode_key: Callable[[Any], bytes],
        decode_key: Callable[[bytes], Any],
        encode_value: Callable[[V], bytes],
        decode_value: Callable[[bytes], V],
        retention_ms: int,
        max_entries: int = 100_000,
    ) -> None:
        super().__init__(
            store,
            encode_key=encode_key,
            decode_key=decode_key,
            encode_value=encode_value,
            decode_value=decode_value,
            encode_sub=_encode,
            decode_sub=_decode,
            sub_size=16,
            time_of=_end,
            retention_ms=retention_ms,
            max_entries=max_entries,
        )

    def find(
        self, key: Any, earliest_end: int, latest_start: int
    ) -> list[tuple[tuple[int, int], V]]:
        """Sessions of ``key`` with ``end >= earliest_end`` and ``start <= latest_start``."""
        d = self.entries(key)
        return sorted((s, v) for s, v in d.items() if s[1] >= earliest_end and s[0] <= latest_start)
