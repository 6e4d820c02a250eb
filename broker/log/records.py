"""RecordBatch v2 (magic 2): header parsing, validation, in-place patching, and a writer.

The produce path never decodes records: it parses the 61-byte batch header with one
``struct.unpack_from``, checks the CRC-32C (C code), patches the base offset in place and
writes the bytes. Record decoding (varints, keys, values, headers) exists for the few
places that must look inside: the keyless check on compacted topics, compaction, and
``offset_for_timestamp`` within one batch.

Batch layout (big-endian)::

    baseOffset int64 | batchLength int32 | partitionLeaderEpoch int32 | magic int8
    | crc uint32 (CRC-32C of everything from attributes to the end)
    | attributes int16 | lastOffsetDelta int32 | baseTimestamp int64 | maxTimestamp int64
    | producerId int64 | producerEpoch int16 | baseSequence int32 | recordCount int32
    | records...

>>> b = build_batch([Record(offset=0, timestamp=1000, key=b"k", value=b"v")], base_offset=0)
>>> h = parse_header(b)
>>> (h.base_offset, h.last_offset, h.record_count, h.max_timestamp)
(0, 0, 1, 1000)
>>> [(r.key, r.value) for r in decode_records(b)]
[(b'k', b'v')]
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import crc32c

from broker.errors import ErrorCode, KafkaError
from broker.log.compression import NONE, compress, decompress

__all__ = [
    "HEADER",
    "HEADER_SIZE",
    "LOG_OVERHEAD",
    "BatchHeader",
    "Record",
    "build_batch",
    "check_crc",
    "decode_records",
    "iter_batches",
    "iter_keys",
    "parse_header",
    "patch_base_offset",
    "set_log_append_time",
    "split_batches",
]

HEADER = struct.Struct(">qiibIhiqqqhii")
HEADER_SIZE = 61
LOG_OVERHEAD = 12
"""baseOffset + batchLength: the bytes not counted by batchLength."""
MAGIC_OFFSET = 16
CRC_OFFSET = 17
ATTRIBUTES_OFFSET = 21
MAX_TIMESTAMP_OFFSET = 35
PARTITION_LEADER_EPOCH_OFFSET = 12

COMPRESSION_MASK = 0x07
TIMESTAMP_TYPE_BIT = 0x08
TRANSACTIONAL_BIT = 0x10
CONTROL_BIT = 0x20

_Q = struct.Struct(">q")
_I = struct.Struct(">I")
_H = struct.Struct(">h")


RawHeader = tuple[int, int, int, int, int, int, int, int, int, int, int, int, int]


class BatchHeader(NamedTuple):
    """The 61-byte header of one batch, as stored."""

    base_offset: int
    batch_length: int
    partition_leader_epoch: int
    magic: int
    crc: int
    attributes: int
    last_offset_delta: int
    base_timestamp: int
    max_timestamp: int
    producer_id: int
    producer_epoch: int
    base_sequence: int
    record_count: int

    @property
    def size(self) -> int:
        """Bytes the whole batch occupies in the log."""
        return self.batch_length + LOG_OVERHEAD

    @property
    def last_offset(self) -> int:
        return self.base_offset + self.last_offset_delta

    @property
    def compression(self) -> int:
        return self.attributes & COMPRESSION_MASK

    @property
    def log_append_time(self) -> bool:
        return bool(self.attributes & TIMESTAMP_TYPE_BIT)

    @property
    def is_transactional(self) -> bool:
        return bool(self.attributes & TRANSACTIONAL_BIT)

    @property
    def is_control(self) -> bool:
        return bool(self.attributes & CONTROL_BIT)


def parse_header(buf: bytes | bytearray | memoryview, pos: int = 0) -> BatchHeader:
    """Unpack the header at ``pos`` (no validation)."""
    return BatchHeader._make(HEADER.unpack_from(buf, pos))


def split_batches(buf: bytes | bytearray | memoryview) -> list[tuple[int, RawHeader]]:
    """``(position, raw header tuple)`` of each batch in a produce payload, framing checked.

    The hot-path form of :func:`iter_batches`: plain tuples indexed like
    :class:`BatchHeader` (``[1]`` batchLength, ``[4]`` crc, ``[6]`` lastOffsetDelta,
    ``[8]`` maxTimestamp, ``[12]`` recordCount). Raises ``CORRUPT_MESSAGE`` for a truncated
    or inconsistent batch and ``UNSUPPORTED_FOR_MESSAGE_FORMAT`` for a magic other than 2.
    """
    n = len(buf)
    if n == 0:
        raise KafkaError(ErrorCode.corrupt_message, "empty record set")
    unpack = HEADER.unpack_from
    out: list[tuple[int, RawHeader]] = []
    pos = 0
    while pos < n:
        if n - pos < HEADER_SIZE:
            if n - pos > MAGIC_OFFSET and buf[pos + MAGIC_OFFSET] != 2:
                raise _bad_magic(buf[pos + MAGIC_OFFSET], pos)
            raise KafkaError(
                ErrorCode.corrupt_message,
                f"truncated record batch at byte {pos}: {n - pos} bytes left, "
                f"a batch header needs {HEADER_SIZE}",
            )
        h = unpack(buf, pos)
        if h[3] != 2:
            raise _bad_magic(h[3], pos)
        size = h[1] + LOG_OVERHEAD
        if size < HEADER_SIZE or pos + size > n:
            raise KafkaError(
                ErrorCode.corrupt_message,
                f"record batch at byte {pos} declares length {h[1]} "
                f"but {n - pos - LOG_OVERHEAD} bytes follow",
            )
        if h[6] < 0 or h[12] < 0:
            raise KafkaError(
                ErrorCode.corrupt_message,
                f"record batch at byte {pos} has lastOffsetDelta {h[6]} and recordCount {h[12]}",
            )
        out.append((pos, h))
        pos += size
    return out


def iter_batches(buf: bytes | bytearray | memoryview) -> Iterator[tuple[int, BatchHeader]]:
    """Yield ``(position, header)`` of each batch in a payload (see :func:`split_batches`)."""
    for pos, raw in split_batches(buf):
        yield pos, BatchHeader._make(raw)


def _bad_magic(magic: int, pos: int) -> KafkaError:
    return KafkaError(
        ErrorCode.unsupported_for_message_format,
        f"record batch at byte {pos} has magic {magic}; this broker stores only "
        "RecordBatch v2 (magic 2, Kafka 0.11+ clients)",
    )


def check_crc(buf: bytes | bytearray | memoryview, pos: int, h: BatchHeader) -> None:
    """Raise ``CORRUPT_MESSAGE`` unless the stored CRC-32C matches the batch."""
    mv = buf if isinstance(buf, memoryview) else memoryview(buf)
    actual = crc32c.crc32c(mv[pos + ATTRIBUTES_OFFSET : pos + h.batch_length + LOG_OVERHEAD])
    if actual != h.crc:
        raise KafkaError(
            ErrorCode.corrupt_message,
            f"record batch at byte {pos} (base offset {h.base_offset}) fails its CRC check: "
            f"stored {h.crc:#010x}, computed {actual:#010x}",
        )


def patch_base_offset(buf: bytearray | memoryview, pos: int, base_offset: int) -> None:
    """Write the assigned base offset in place (not covered by the CRC)."""
    _Q.pack_into(buf, pos, base_offset)


def patch_leader_epoch(buf: bytearray | memoryview, pos: int, epoch: int) -> None:
    """Write partitionLeaderEpoch in place (not covered by the CRC)."""
    struct.pack_into(">i", buf, pos + PARTITION_LEADER_EPOCH_OFFSET, epoch)


def set_log_append_time(buf: bytearray | memoryview, pos: int, h: BatchHeader, now_ms: int) -> None:
    """Mark the batch LogAppendTime with ``now_ms`` as its timestamp and recompute the CRC."""
    _H.pack_into(buf, pos + ATTRIBUTES_OFFSET, h.attributes | TIMESTAMP_TYPE_BIT)
    _Q.pack_into(buf, pos + MAX_TIMESTAMP_OFFSET, now_ms)
    mv = buf if isinstance(buf, memoryview) else memoryview(buf)
    crc = crc32c.crc32c(mv[pos + ATTRIBUTES_OFFSET : pos + h.batch_length + LOG_OVERHEAD])
    _I.pack_into(buf, pos + CRC_OFFSET, crc)


# --- records -------------------------------------------------------------------------


@dataclass(slots=True)
class Record:
    """One record with absolute offset and timestamp (CreateTime value as written)."""

    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...] = field(default=())
    attributes: int = 0


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    """Read a zigzag varint; return (value, new position)."""
    shift = 0
    raw = 0
    while True:
        try:
            b = buf[pos]
        except IndexError:
            raise KafkaError(ErrorCode.corrupt_message, "truncated varint in record") from None
        pos += 1
        raw |= (b & 0x7F) << shift
        if not b & 0x80:
            return (raw >> 1) ^ -(raw & 1), pos
        shift += 7
        if shift > 63:
            raise KafkaError(ErrorCode.corrupt_message, "varint too long in record")


def _put_varint(out: bytearray, value: int) -> None:
    raw = (value << 1) ^ (value >> 63)
    raw &= 0xFFFFFFFFFFFFFFFF
    while raw >= 0x80:
        out.append((raw & 0x7F) | 0x80)
        raw >>= 7
    out.append(raw)


def _records_section(batch: bytes | bytearray | memoryview) -> tuple[BatchHeader, bytes]:
    h = parse_header(batch)
    body = memoryview(batch)[HEADER_SIZE : h.batch_length + LOG_OVERHEAD]
    return h, decompress(h.compression, body)


def _bytes_field(data: bytes, pos: int) -> tuple[bytes | None, int]:
    n, pos = _varint(data, pos)
    if n < 0:
        return None, pos
    end = pos + n
    if end > len(data):
        raise KafkaError(ErrorCode.corrupt_message, "record field runs past the end of its batch")
    return data[pos:end], end


def decode_records(batch: bytes | bytearray | memoryview) -> list[Record]:
    """Decode every record of one whole batch (decompressing if needed)."""
    h, data = _records_section(batch)
    out: list[Record] = []
    pos = 0
    for _ in range(h.record_count):
        length, pos = _varint(data, pos)
        end = pos + length
        if end > len(data) or length < 0:
            raise KafkaError(ErrorCode.corrupt_message, "record runs past the end of its batch")
        attrs = data[pos]
        ts_delta, p = _varint(data, pos + 1)
        off_delta, p = _varint(data, p)
        key, p = _bytes_field(data, p)
        value, p = _bytes_field(data, p)
        nh, p = _varint(data, p)
        headers = []
        for _h in range(max(nh, 0)):
            hk, p = _bytes_field(data, p)
            hv, p = _bytes_field(data, p)
            headers.append(((hk or b"").decode("utf-8", "replace"), hv))
        out.append(
            Record(
                offset=h.base_offset + off_delta,
                timestamp=h.base_timestamp + ts_delta,
                key=key,
                value=value,
                headers=tuple(headers),
                attributes=attrs,
            )
        )
        pos = end
    return out


def iter_keys(batch: bytes | bytearray | memoryview) -> Iterator[bytes | None]:
    """Yield only the keys of one batch: the cheap path for the compacted-topic check."""
    h, data = _records_section(batch)
    pos = 0
    for _ in range(h.record_count):
        length, pos = _varint(data, pos)
        end = pos + length
        if end > len(data) or length < 0:
            raise KafkaError(ErrorCode.corrupt_message, "record runs past the end of its batch")
        _ts, p = _varint(data, pos + 1)
        _off, p = _varint(data, p)
        key, _p = _bytes_field(data, p)
        yield key
        pos = end


def build_batch(
    records: Sequence[Record],
    *,
    base_offset: int,
    compression: int = NONE,
    log_append_time: bool = False,
    is_transactional: bool = False,
    is_control: bool = False,
    producer_id: int = -1,
    producer_epoch: int = -1,
    base_sequence: int = -1,
    partition_leader_epoch: int = -1,
    last_offset_delta: int | None = None,
    base_timestamp: int | None = None,
    max_timestamp: int | None = None,
) -> bytes:
    """Build one batch; record offsets are kept as given (a compacted batch may be sparse).

    ``last_offset_delta`` defaults to the last record's delta; compaction passes the
    original one so the batch still spans its original offset range.
    """
    if not records and last_offset_delta is None:
        raise ValueError("an empty batch needs an explicit last_offset_delta")
    if base_timestamp is None:
        base_timestamp = min((r.timestamp for r in records), default=-1)
    if max_timestamp is None:
        max_timestamp = max((r.timestamp for r in records), default=-1)
    body = bytearray()
    for r in records:
        rec = bytearray()
        rec.append(r.attributes & 0xFF)
        _put_varint(rec, r.timestamp - base_timestamp)
        _put_varint(rec, r.offset - base_offset)
        for blob in (r.key, r.value):
            if blob is None:
                _put_varint(rec, -1)
            else:
                _put_varint(rec, len(blob))
                rec += blob
        _put_varint(rec, len(r.headers))
        for hk, hv in r.headers:
            kb = hk.encode()
            _put_varint(rec, len(kb))
            rec += kb
            if hv is None:
                _put_varint(rec, -1)
            else:
                _put_varint(rec, len(hv))
                rec += hv
        _put_varint(body, len(rec))
        body += rec
    payload = compress(compression, bytes(body))
    attrs = compression & COMPRESSION_MASK
    if log_append_time:
        attrs |= TIMESTAMP_TYPE_BIT
    if is_transactional:
        attrs |= TRANSACTIONAL_BIT
    if is_control:
        attrs |= CONTROL_BIT
    if last_offset_delta is None:
        last_offset_delta = records[-1].offset - base_offset
    batch_length = HEADER_SIZE - LOG_OVERHEAD + len(payload)
    out = bytearray(HEADER_SIZE) + payload
    HEADER.pack_into(
        out,
        0,
        base_offset,
        batch_length,
        partition_leader_epoch,
        2,
        0,
        attrs,
        last_offset_delta,
        base_timestamp,
        max_timestamp,
        producer_id,
        producer_epoch,
        base_sequence,
        len(records),
    )
    _I.pack_into(out, CRC_OFFSET, crc32c.crc32c(memoryview(out)[ATTRIBUTES_OFFSET:]))
    return bytes(out)
