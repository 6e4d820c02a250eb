"""Compression codecs of RecordBatch v2 (attributes bits 0-2).

The broker stores batches exactly as received, so it decompresses only where it must
look inside records: the keyless check on compacted topics, compaction itself and
``offset_for_timestamp`` inside one batch. All codecs go through cramjam (C/Rust).

Snappy comes in two shapes: Java clients write xerial's framed stream (a 16-byte
header, then length-prefixed raw blocks); librdkafka and Python clients write raw
snappy. :func:`decompress` accepts both; :func:`compress` writes raw snappy, which
every client reads.

>>> decompress(GZIP, compress(GZIP, b"hello")) == b"hello"
True
"""

from __future__ import annotations

import struct

import cramjam

from broker.errors import ErrorCode, KafkaError

__all__ = ["CODEC_NAMES", "GZIP", "LZ4", "NONE", "SNAPPY", "ZSTD", "compress", "decompress"]

NONE = 0
GZIP = 1
SNAPPY = 2
LZ4 = 3
ZSTD = 4

CODEC_NAMES = {NONE: "none", GZIP: "gzip", SNAPPY: "snappy", LZ4: "lz4", ZSTD: "zstd"}

_XERIAL_MAGIC = b"\x82SNAPPY\x00"
_XERIAL_HEADER_LEN = 16


def _snappy_decompress(data: bytes | memoryview) -> bytes:
    raw = bytes(data)
    if raw[:8] != _XERIAL_MAGIC:
        return bytes(cramjam.snappy.decompress_raw(raw))
    out = bytearray()
    pos = _XERIAL_HEADER_LEN
    while pos < len(raw):
        if pos + 4 > len(raw):
            raise ValueError("truncated xerial snappy block header")
        (n,) = struct.unpack_from(">i", raw, pos)
        pos += 4
        if n < 0 or pos + n > len(raw):
            raise ValueError("truncated xerial snappy block")
        out += bytes(cramjam.snappy.decompress_raw(raw[pos : pos + n]))
        pos += n
    return bytes(out)


def decompress(codec: int, data: bytes | memoryview) -> bytes:
    """Decompress a batch's records section; a bad stream is ``CORRUPT_MESSAGE``."""
    try:
        if codec == NONE:
            return bytes(data)
        if codec == GZIP:
            return bytes(cramjam.gzip.decompress(bytes(data)))
        if codec == SNAPPY:
            return _snappy_decompress(data)
        if codec == LZ4:
            return bytes(cramjam.lz4.decompress(bytes(data)))
        if codec == ZSTD:
            return bytes(cramjam.zstd.decompress(bytes(data)))
    except Exception as exc:  # cramjam raises its own DecompressionError / ValueError
        raise KafkaError(
            ErrorCode.corrupt_message,
            f"cannot decompress {CODEC_NAMES[codec]} record batch: {exc}",
        ) from exc
    raise KafkaError(
        ErrorCode.unsupported_compression_type,
        f"unknown compression codec {codec} in record batch attributes (valid: 0-4)",
    )


def compress(codec: int, data: bytes) -> bytes:
    """Compress a records section the way Kafka clients read it."""
    if codec == NONE:
        return data
    if codec == GZIP:
        return bytes(cramjam.gzip.compress(data))
    if codec == SNAPPY:
        return bytes(cramjam.snappy.compress_raw(data))
    if codec == LZ4:
        return bytes(cramjam.lz4.compress(data))
    if codec == ZSTD:
        return bytes(cramjam.zstd.compress(data))
    raise KafkaError(ErrorCode.unsupported_compression_type, f"unknown compression codec {codec}")


def xerial_frame(raw_snappy_blocks: list[bytes]) -> bytes:
    """Wrap raw snappy blocks in xerial framing (what Java clients send); for tests."""
    out = bytearray(_XERIAL_MAGIC + struct.pack(">ii", 1, 1))
    for block in raw_snappy_blocks:
        out += struct.pack(">i", len(block)) + block
    return bytes(out)
