"""Serdes: how keys and values become bytes on topics and in stores.

Name one (``"bytes"``, ``"str"``, ``"int"``, ``"float"``, ``"json"``), pass a serde object (anything
with ``encode``/``decode``), or pass a dataclass or ``msgspec.Struct`` type, which is JSON on the
wire and decoded back into that type.

>>> resolve_serde("int").encode(1)
b'\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x01'
>>> resolve_serde("json").decode(b'{"a":1}')
{'a': 1}
"""

from __future__ import annotations

import dataclasses
import struct
from typing import Any

import msgspec

from core.errors import TopologyError
from core.plan import Serde as SerdeProtocol

_LONG = struct.Struct(">q")
_DOUBLE = struct.Struct(">d")


class Serde:
    """A named pair of functions; ``identity`` lets the compiler skip the call entirely."""

    identity = False

    def __init__(self, name: str, encode: Any, decode: Any) -> None:
        self.name = name
        self.encode = encode
        self.decode = decode

    def __repr__(self) -> str:
        return f"<serde {self.name}>"


class _BytesSerde(Serde):
    identity = True

    def __init__(self) -> None:
        super().__init__("bytes", _bytes_encode, bytes)


def _bytes_encode(obj: Any) -> bytes:
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return bytes(obj)
    raise TypeError(f"the 'bytes' serde needs bytes, got {type(obj).__name__}")


def _long_decode(data: bytes) -> int:
    if len(data) != 8:
        raise ValueError(f"the 'int' serde needs 8 bytes (big-endian long), got {len(data)}")
    return int(_LONG.unpack(data)[0])


_json_encoder = msgspec.json.Encoder()
_json_decoder = msgspec.json.Decoder()

BYTES: Serde = _BytesSerde()
# Unbound C methods: no Python frame per call on the hot path.
STR = Serde("str", str.encode, bytes.decode)
INT = Serde("int", _LONG.pack, _long_decode)
FLOAT = Serde("float", _DOUBLE.pack, lambda data: _DOUBLE.unpack(data)[0])
JSON = Serde("json", _json_encoder.encode, _json_decoder.decode)

NAMED: dict[str, Serde] = {"bytes": BYTES, "str": STR, "int": INT, "float": FLOAT, "json": JSON}


def typed_json(tp: type) -> Serde:
    """JSON on the wire, decoded into ``tp`` (a dataclass or ``msgspec.Struct``)."""
    decoder: msgspec.json.Decoder[Any] = msgspec.json.Decoder(tp)
    return Serde(f"json[{tp.__name__}]", _json_encoder.encode, decoder.decode)


def resolve_serde(spec: Any, *, where: str = "serde") -> SerdeProtocol:
    """Turn a serde name, object or type into a serde; raise a fixable error otherwise."""
    if isinstance(spec, str):
        try:
            return NAMED[spec]
        except KeyError:
            pass
    elif isinstance(spec, type) and (
        issubclass(spec, msgspec.Struct) or dataclasses.is_dataclass(spec)
    ):
        return typed_json(spec)
    elif callable(getattr(spec, "encode", None)) and callable(getattr(spec, "decode", None)):
        if not hasattr(spec, "identity"):
            return Serde(getattr(spec, "name", type(spec).__name__), spec.encode, spec.decode)
        return spec
    raise TopologyError(
        f"{where}: {spec!r} is not a serde; use one of {sorted(NAMED)}, an object with "
        f"encode()/decode(), or a dataclass / msgspec.Struct type"
    )


def optional_serde(spec: Any, *, where: str) -> SerdeProtocol | None:
    return None if spec is None else resolve_serde(spec, where=where)
