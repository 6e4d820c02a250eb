"""Kafka wire framing and request/response (de)serialization, without any I/O.

Like h11, the codec is a state machine fed bytes: :meth:`KafkaCodec.feed` appends what
the socket delivered (or, without a copy, the server receives into
:meth:`KafkaCodec.get_buffer` and reports :meth:`KafkaCodec.buffer_updated`),
:meth:`KafkaCodec.events` yields each complete request (or an
answer the codec can give by itself), and :meth:`KafkaCodec.encode_response` turns a
response entity into the bytes to write. The asyncio server only moves bytes.

Faults are split by who made them. Bytes from the peer that cannot be framed or parsed
(negative or oversized length prefix, unknown API key, unsupported version, a body kio
cannot read) raise :class:`~broker.errors.PeerProtocolError`; the server closes that
connection and logs the reason. Failing to *encode* a response is our bug and surfaces
as whatever exception the encoder raised.

One Kafka special case lives here: an ApiVersions request of a version above what we
support is still answered, with a v0 body carrying UNSUPPORTED_VERSION (35) and the full
list of supported APIs, so that the client can retry with a version we speak.

>>> from kio.schema.metadata.v1.request import MetadataRequest
>>> codec = KafkaCodec({3: (0, 12), 18: (0, 3)})
>>> codec.feed(encode_request(MetadataRequest(topics=None), correlation_id=7, client_id="doc"))
>>> [(r.api_key, r.api_version, r.correlation_id, r.body.topics) for r in codec.events()]
[(3, 1, 7, None)]
"""

from __future__ import annotations

import io
import struct
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, cast

from kio.index import load_request_schema, load_response_schema
from kio.schema.index import api_key_map
from kio.serial import entity_reader, entity_writer

from broker.errors import ErrorCode, PeerProtocolError
from broker.protocol import build

__all__ = [
    "DEFAULT_MAX_FRAME_BYTES",
    "READ_CHUNK_BYTES",
    "ImmediateResponse",
    "KafkaCodec",
    "Request",
    "api_name",
    "encode_request",
]

DEFAULT_MAX_FRAME_BYTES = 104_857_600
READ_CHUNK_BYTES = 1 << 18
"""Size of a connection's reusable receive buffer; larger frames get their own."""
API_VERSIONS = 18
_INT32 = struct.Struct(">i")
_HEADER_START = struct.Struct(">hhih")  # api key, api version, correlation id, client id len
_SMALL = 16_384  # writes below this are gathered; larger ones are passed through uncopied


@dataclass(slots=True)
class Request:
    """One decoded request: header fields plus the kio request entity."""

    api_key: int
    api_version: int
    correlation_id: int
    client_id: str | None
    body: Any
    size: int
    """Frame size in bytes (without the length prefix)."""


@dataclass(slots=True)
class ImmediateResponse:
    """An answer the codec produced itself (the ApiVersions version fallback)."""

    api_key: int
    correlation_id: int
    data: bytes
    """Complete framed response bytes, ready to write."""


def api_name(api_key: int) -> str:
    """Kafka's snake-case name of an API key (``produce``, ``metadata``, ...)."""
    name = api_key_map.get(api_key)
    return str(name) if name is not None else f"api_{api_key}"


class _Sink:
    """A write target for kio's writers: small writes gather in one buffer, large
    payloads (record batches) are kept as they are, uncopied.

    The first ``reserve`` bytes are a placeholder for the size prefix and response
    header, patched in once the body's size is known.
    """

    __slots__ = ("buf", "parts")

    def __init__(self, reserve: int) -> None:
        self.parts: list[bytes | bytearray] = []
        self.buf = bytearray(reserve)

    def write(self, data: bytes) -> int:
        if len(data) >= _SMALL:
            if self.buf:
                self.parts.append(self.buf)
                self.buf = bytearray()
            self.parts.append(data)
        else:
            self.buf += data
        return len(data)

    def finish(self, head: bytes) -> list[bytes | bytearray]:
        if self.buf:
            self.parts.append(self.buf)
        first = self.parts[0]
        assert isinstance(first, bytearray)
        first[: len(head)] = head
        return self.parts


class KafkaCodec:
    """Frames and parses requests of one connection; see the module docstring.

    ``supported`` maps API key to the inclusive version range this broker implements.
    """

    def __init__(
        self,
        supported: Mapping[int, tuple[int, int]],
        max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
        chunk_bytes: int = READ_CHUNK_BYTES,
    ) -> None:
        self._supported = dict(supported)
        self._max_frame = max_frame_bytes
        self._failed: PeerProtocolError | None = None
        # Small frames are parsed in place from one reusable receive buffer; a frame that
        # cannot fit there gets a buffer of its own, filled straight from the socket.
        self._buf = bytearray(chunk_bytes)
        self._start = 0
        self._end = 0
        self._need = 0
        """Bytes (from ``_start``) the next frame needs, when its size is known."""
        self._big: bytearray | None = None
        self._big_filled = 0
        self._into_big = False

    @property
    def buffered(self) -> int:
        """Bytes received but not yet part of a complete frame."""
        return self._end - self._start + self._big_filled

    def get_buffer(self) -> memoryview:
        """Where the next bytes from the socket should go (``recv_into`` target).

        Call :meth:`buffer_updated` with the number of bytes written, then drop the view
        before the next call. A large frame is received straight into its own buffer, so
        its bytes are copied once (kernel to frame) however many reads it takes.
        """
        big = self._big
        self._into_big = big is not None and self._big_filled < len(big)
        if self._into_big:
            assert big is not None
            return memoryview(big)[self._big_filled :]
        buf = self._buf
        start, end = self._start, self._end
        if start and (end == len(buf) or start + self._need > len(buf)):
            # Move the partial frame to the front (same-length slice assignment: the
            # buffer keeps its size, so a view still held elsewhere stays valid).
            buf[: end - start] = buf[start:end]
            self._start, self._end = 0, end - start
            end -= start
        if end == len(buf):  # full of complete frames nobody parsed yet (feed() only)
            grown = bytearray(2 * len(buf))
            grown[:end] = buf
            self._buf = buf = grown
        return memoryview(buf)[end:]

    def buffer_updated(self, nbytes: int) -> None:
        """Record that ``nbytes`` were written into the last :meth:`get_buffer` view."""
        if self._into_big:
            self._big_filled += nbytes
        else:
            self._end += nbytes

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Append bytes read from the connection (copying; servers use get_buffer)."""
        src = memoryview(data)
        pos = 0
        while pos < len(src):
            with self.get_buffer() as target:
                n = min(len(target), len(src) - pos)
                target[:n] = src[pos : pos + n]
            self.buffer_updated(n)
            pos += n
            if self._big is None and pos < len(src):
                self._promote()

    def events(self) -> Iterator[Request | ImmediateResponse]:
        """Yield every complete request in the buffer, in order.

        Raises :class:`PeerProtocolError` at the first frame that is malformed; the
        requests before it have been yielded already. After that the codec stays failed.
        """
        if self._failed is not None:
            raise self._failed
        big = self._big
        if big is not None:
            if self._big_filled < len(big):
                return
            self._big = None
            self._big_filled = 0
            with memoryview(big) as view, view.toreadonly() as frame:
                request = self._parse(frame)
            yield request
        buf = self._buf
        while self._end - self._start >= 4:
            start = self._start
            (size,) = _INT32.unpack_from(buf, start)
            if size < 0 or size > self._max_frame:
                self._fail(
                    f"frame size {size} is outside 0..{self._max_frame} "
                    "(socket.request.max.bytes); is this a Kafka client?"
                )
            stop = start + 4 + size
            if stop > self._end:
                self._need = 4 + size
                self._promote()
                return
            self._start = stop
            with memoryview(buf) as view, view[start + 4 : stop].toreadonly() as frame:
                request = self._parse(frame)
            yield request
        self._need = 0
        if self._start == self._end:
            self._start = self._end = 0

    def _promote(self) -> None:
        """Give the incomplete frame at ``_start`` its own buffer if it cannot fit here."""
        start, end = self._start, self._end
        if end - start < 4:
            return
        (size,) = _INT32.unpack_from(self._buf, start)
        if size < 0 or size > self._max_frame or 4 + size <= len(self._buf):
            return  # events() refuses bad sizes; small frames wait in place
        big = bytearray(size)
        have = end - start - 4
        with memoryview(self._buf) as view:
            big[:have] = view[start + 4 : end]
        self._big, self._big_filled = big, have
        self._start = self._end = self._need = 0

    def _fail(self, reason: str) -> None:
        self._start = self._end = self._need = 0
        self._big = None
        self._big_filled = 0
        self._failed = PeerProtocolError(reason)
        raise self._failed

    def _parse(self, frame: bytes | memoryview) -> Request | ImmediateResponse:
        if len(frame) < _HEADER_START.size:
            self._fail(f"request of {len(frame)} bytes is too short for a request header")
        api_key, version, correlation_id, client_len = _HEADER_START.unpack_from(frame, 0)
        span = self._supported.get(api_key)
        if span is None:
            self._fail(
                f"unsupported API key {api_key} (correlation id {correlation_id}); "
                "this broker does not implement that API"
            )
        assert span is not None
        lo, hi = span
        if not lo <= version <= hi:
            if api_key == API_VERSIONS:
                return ImmediateResponse(
                    api_key, correlation_id, self.unsupported_api_versions(correlation_id)
                )
            self._fail(
                f"unsupported version {version} of {api_name(api_key)} (this broker "
                f"speaks v{lo}..v{hi}; correlation id {correlation_id})"
            )
        reader, flexible = _reader(api_key, version)
        pos = _HEADER_START.size
        client_id: str | None = None
        if client_len >= 0:
            end = pos + client_len
            if end > len(frame):
                self._fail(f"request header client id runs past the frame ({api_name(api_key)})")
            try:
                client_id = str(frame[pos:end], "utf-8")
            except UnicodeDecodeError:
                self._fail(f"request header client id is not UTF-8 ({api_name(api_key)})")
            pos = end
        try:
            if flexible:
                pos = _skip_tagged_fields(frame, pos)
            body, _used = reader(frame, pos)
        except PeerProtocolError:
            raise
        except Exception as exc:
            self._fail(
                f"cannot parse {api_name(api_key)} v{version} request body "
                f"(correlation id {correlation_id}): {type(exc).__name__}: {exc}"
            )
        return Request(api_key, version, correlation_id, client_id, body, len(frame))

    # -- responses ---------------------------------------------------------------------

    def encode_response(self, correlation_id: int, body: Any) -> list[bytes | bytearray]:
        """Serialize ``body`` (a kio response entity) with its header and size prefix.

        Returns pieces to write in order: small parts joined into one buffer, large
        record payloads passed through without copying. Header v1 for flexible
        versions, v0 otherwise and always for ApiVersions (kio's ``__header_schema__``
        encodes that rule).
        """
        flexible_header = type(body).__header_schema__.__flexible__
        reserve = 9 if flexible_header else 8
        sink = _Sink(reserve)
        entity_writer(type(body))(cast(Any, sink), body)
        total = sum(map(len, sink.parts)) + len(sink.buf) - 4
        head = _INT32.pack(total) + _INT32.pack(correlation_id)
        if flexible_header:
            head += b"\x00"
        return sink.finish(head)

    def unsupported_api_versions(self, correlation_id: int) -> bytes:
        """The ApiVersions v0 answer with UNSUPPORTED_VERSION and every supported API."""
        body = build(
            load_response_schema(API_VERSIONS, 0),
            {
                "error_code": ErrorCode.unsupported_version,
                "api_keys": [
                    {"api_key": k, "min_version": lo, "max_version": hi}
                    for k, (lo, hi) in sorted(self._supported.items())
                ],
            },
        )
        return b"".join(self.encode_response(correlation_id, body))


_readers: dict[tuple[int, int], tuple[Any, bool]] = {}


def _reader(api_key: int, version: int) -> tuple[Any, bool]:
    """kio's body reader of one request version and whether its header is flexible.

    Cached: kio resolves the schema module by name on every lookup, which costs more
    than parsing a small request.
    """
    entry = _readers.get((api_key, version))
    if entry is None:
        schema = load_request_schema(api_key, version)
        entry = _readers[(api_key, version)] = (entity_reader(schema), schema.__flexible__)
    return entry


def _read_uvarint(data: bytes | memoryview, pos: int) -> tuple[int, int]:
    result = 0
    shift = 0
    while True:
        if pos >= len(data):
            raise PeerProtocolError("truncated varint in request header")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 28:
            raise PeerProtocolError("varint in request header is too long")


def _skip_tagged_fields(data: bytes | memoryview, pos: int) -> int:
    count, pos = _read_uvarint(data, pos)
    for _ in range(count):
        _tag, pos = _read_uvarint(data, pos)
        size, pos = _read_uvarint(data, pos)
        pos += size
        if pos > len(data):
            raise PeerProtocolError("tagged field in request header runs past the frame")
    return pos


def encode_request(body: Any, *, correlation_id: int, client_id: str | None = None) -> bytes:
    """Frame a kio request entity as a client would (for tests and tools)."""
    api_key = type(body).__api_key__
    header_cls = type(body).__header_schema__
    header = header_cls(
        request_api_key=api_key,
        request_api_version=type(body).__version__,
        correlation_id=correlation_id,
        client_id=client_id,
    )
    buf = io.BytesIO()
    entity_writer(header_cls)(buf, header)
    entity_writer(type(body))(buf, body)
    payload = buf.getvalue()
    return _INT32.pack(len(payload)) + payload


def warm_up(supported: Mapping[int, tuple[int, int]], api_keys: tuple[int, ...]) -> None:
    """Load the request readers and response schemas of ``api_keys`` ahead of traffic.

    kio imports a module per API version on first use (tens of ms for the big ones);
    doing that at start keeps it off the first Produce/Fetch a client sends.
    """
    for api_key in api_keys:
        span = supported.get(api_key)
        if span is None:
            continue
        for version in range(span[0], span[1] + 1):
            _reader(api_key, version)
            load_response_schema(api_key, version)
