"""Window stores: values per ``(key, window start)`` on the byte store, with retention.

Layout: the raw key is the key's bytes followed by the window start as 8 big-endian bytes, so
the windows of one key are contiguous and sorted by start: one range scan gives "every window
of this key", and a bounded scan gives a time range. Windows whose start is older than stream
time minus the retention are deleted (see :class:`state.timed_cache.TimedCache`).

>>> from state.memory import InMemoryStore
>>> ws = WindowStore(InMemoryStore("w"), encode_key=str.encode, decode_key=bytes.decode,
...                  encode_value=str.encode, decode_value=bytes.decode, retention_ms=10_000)
>>> ws.put("a", 0, "x"); ws.put("a", 5_000, "y"); ws.put("ab", 0, "z")
>>> ws.fetch("a", 0, 5_000)
[(0, 'x'), (5000, 'y')]
>>> changes = ws.flush(); ws.commit(changes, 0)
>>> sorted(ws.store.items())[0][0]
b'a\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00'
>>> _ = ws.expire(3_000)
>>> ws.fetch("a", 0, 10_000)
[(5000, 'y')]
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any, TypeVar

from state.api import KeyValueStore
from state.timed_cache import TimedCache

V = TypeVar("V")

_TS = struct.Struct(">Q")


def encode_time(t: int) -> bytes:
    """Big-endian unsigned ms: byte order equals time order (times before 0 are clamped)."""
    return _TS.pack(t if t > 0 else 0)


def decode_time(b: bytes) -> int:
    return int(_TS.unpack(b)[0])


def _identity(t: int) -> int:
    return t


def list_codec(
    encode: Callable[[Any], bytes], decode: Callable[[bytes], Any]
) -> tuple[Callable[[list[Any]], bytes], Callable[[bytes], list[Any]]]:
    """Encode a list of values as length-prefixed items (join buffers keep duplicates).

    >>> enc, dec = list_codec(str.encode, bytes.decode)
    >>> dec(enc(["a", "", "bc"]))
    ['a', '', 'bc']
    """

    def enc(items: list[Any]) -> bytes:
        out = bytearray()
        for item in items:
            b = encode(item)
            out += len(b).to_bytes(4, "big")
            out += b
        return bytes(out)

    def dec(data: bytes) -> list[Any]:
        items, i, n = [], 0, len(data)
        while i < n:
            size = int.from_bytes(data[i : i + 4], "big")
            items.append(decode(data[i + 4 : i + 4 + size]))
            i += 4 + size
        return items

    return enc, dec


class WindowStore(TimedCache[Any, V]):
    """Values per ``(key, window start)``; see the module docstring."""

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
            encode_sub=encode_time,
            decode_sub=decode_time,
            sub_size=8,
            time_of=_identity,
            retention_ms=retention_ms,
            max_entries=max_entries,
        )

    def fetch(self, key: Any, t_from: int, t_to: int) -> list[tuple[int, V]]:
        """Windows of ``key`` whose start is in ``[t_from, t_to]``, oldest first."""
        d = self.entries(key)
        return sorted((s, v) for s, v in d.items() if t_from <= s <= t_to)
