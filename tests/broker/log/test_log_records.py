"""RecordBatch v2 parsing, validation, patching, codecs and the writer."""

from __future__ import annotations

import struct

import cramjam
import crc32c
import pytest
from kafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder

from broker.errors import ErrorCode, KafkaError
from broker.log.compression import GZIP, LZ4, NONE, SNAPPY, ZSTD, decompress, xerial_frame
from broker.log.records import (
    HEADER_SIZE,
    Record,
    build_batch,
    check_crc,
    decode_records,
    iter_batches,
    iter_keys,
    parse_header,
    patch_base_offset,
    set_log_append_time,
)

CODECS = [NONE, GZIP, SNAPPY, LZ4, ZSTD]


def sample(n: int = 3) -> list[Record]:
    return [
        Record(
            offset=i, timestamp=1000 + i, key=b"k%d" % i, value=b"v" * 40, headers=(("h", b"x"),)
        )
        for i in range(n)
    ]


def test_header_fields() -> None:
    recs = [
        Record(offset=7 + r.offset, timestamp=r.timestamp, key=r.key, value=r.value)
        for r in sample()
    ]
    b = build_batch(recs, base_offset=7, producer_id=9, producer_epoch=2, base_sequence=5)
    h = parse_header(b)
    assert (h.base_offset, h.last_offset_delta, h.last_offset, h.record_count) == (7, 2, 9, 3)
    assert (h.base_timestamp, h.max_timestamp) == (1000, 1002)
    assert (h.producer_id, h.producer_epoch, h.base_sequence, h.magic) == (9, 2, 5, 2)
    assert h.size == len(b)
    assert not (h.is_control or h.is_transactional or h.log_append_time)
    check_crc(b, 0, h)


def test_iter_batches_over_several() -> None:
    a = build_batch(sample(2), base_offset=0)
    b = build_batch(sample(3), base_offset=0)
    got = [(pos, h.record_count) for pos, h in iter_batches(a + b)]
    assert got == [(0, 2), (len(a), 3)]


def test_crc_failure_is_corrupt_message() -> None:
    b = bytearray(build_batch(sample(), base_offset=0))
    b[-1] ^= 0xFF
    h = parse_header(b)
    with pytest.raises(KafkaError) as e:
        check_crc(b, 0, h)
    assert e.value.code == ErrorCode.corrupt_message


def test_patch_base_offset_keeps_crc_valid() -> None:
    b = bytearray(build_batch(sample(), base_offset=0))
    patch_base_offset(b, 0, 123456)
    h = parse_header(b)
    assert h.base_offset == 123456
    check_crc(b, 0, h)
    assert [r.offset for r in decode_records(b)] == [123456, 123457, 123458]


def test_log_append_time_recomputes_crc() -> None:
    b = bytearray(build_batch(sample(), base_offset=0))
    set_log_append_time(b, 0, parse_header(b), 99_000)
    h = parse_header(b)
    assert h.log_append_time and h.max_timestamp == 99_000
    check_crc(b, 0, h)
    assert h.crc == crc32c.crc32c(bytes(b[21:]))


@pytest.mark.parametrize("codec", CODECS)
def test_codec_round_trip_and_interop(codec: int) -> None:
    recs = [*sample(5), Record(offset=5, timestamp=2000, key=None, value=None)]
    b = build_batch(recs, base_offset=0, compression=codec)
    h = parse_header(b)
    assert h.compression == codec
    check_crc(b, 0, h)
    got = decode_records(b)
    assert [(r.offset, r.timestamp, r.key, r.value, r.headers) for r in got] == [
        (r.offset, r.timestamp, r.key, r.value, r.headers) for r in recs
    ]
    assert list(iter_keys(b)) == [r.key for r in recs]
    # a real client library reads what we wrote
    theirs = DefaultRecordBatch(b)
    assert theirs.validate_crc()
    assert [(m.offset, m.key, m.value) for m in theirs] == [
        (r.offset, r.key, r.value) for r in recs
    ]


@pytest.mark.parametrize("codec", CODECS)
def test_client_built_batches_decode(codec: int) -> None:
    builder = DefaultRecordBatchBuilder(
        magic=2,
        compression_type=codec,
        is_transactional=False,
        producer_id=-1,
        producer_epoch=-1,
        base_sequence=-1,
        batch_size=1 << 20,
    )
    for i in range(4):
        builder.append(i, timestamp=5000 + i, key=b"key%d" % i, value=b"x" * i, headers=[])
    data = bytes(builder.build())
    ((_pos, h),) = list(iter_batches(data))
    check_crc(data, 0, h)
    got = decode_records(data)
    assert [(r.offset, r.timestamp, r.key, r.value) for r in got] == [
        (i, 5000 + i, b"key%d" % i, b"x" * i) for i in range(4)
    ]


def test_xerial_snappy_framing() -> None:
    raw = b"hello xerial " * 100
    framed = xerial_frame(
        [
            bytes(cramjam.snappy.compress_raw(raw[:500])),
            bytes(cramjam.snappy.compress_raw(raw[500:])),
        ]
    )
    assert decompress(SNAPPY, framed) == raw


def test_bad_compressed_data_is_corrupt() -> None:
    with pytest.raises(KafkaError) as e:
        decompress(GZIP, b"not gzip at all")
    assert e.value.code == ErrorCode.corrupt_message


def test_unknown_codec() -> None:
    b = bytearray(build_batch(sample(), base_offset=0))
    struct.pack_into(">h", b, 21, 6)
    with pytest.raises(KafkaError) as e:
        decode_records(b)
    assert e.value.code == ErrorCode.unsupported_compression_type


def test_bad_magic() -> None:
    b = bytearray(build_batch(sample(), base_offset=0))
    b[16] = 1
    with pytest.raises(KafkaError) as e:
        list(iter_batches(b))
    assert e.value.code == ErrorCode.unsupported_for_message_format


@pytest.mark.parametrize("cut", [1, 30, HEADER_SIZE - 1, HEADER_SIZE + 3])
def test_truncated_payload(cut: int) -> None:
    b = build_batch(sample(), base_offset=0)
    with pytest.raises(KafkaError) as e:
        list(iter_batches(b + b[:cut]))
    assert e.value.code == ErrorCode.corrupt_message


def test_empty_payload() -> None:
    with pytest.raises(KafkaError) as e:
        list(iter_batches(b""))
    assert e.value.code == ErrorCode.corrupt_message


def test_negative_length_or_delta() -> None:
    b = bytearray(build_batch(sample(), base_offset=0))
    struct.pack_into(">i", b, 8, 10)
    with pytest.raises(KafkaError):
        list(iter_batches(b))
    b = bytearray(build_batch(sample(), base_offset=0))
    struct.pack_into(">i", b, 23, -1)
    with pytest.raises(KafkaError):
        list(iter_batches(b))


def test_truncated_record_inside_batch() -> None:
    b = bytearray(build_batch(sample(), base_offset=0))
    struct.pack_into(">i", b, 57, 10)  # claims 10 records, holds 3
    with pytest.raises(KafkaError) as e:
        decode_records(b)
    assert e.value.code == ErrorCode.corrupt_message


def test_sparse_batch_keeps_offsets() -> None:
    recs = [
        Record(offset=10, timestamp=1, key=b"a", value=b"1"),
        Record(offset=14, timestamp=2, key=b"b", value=b"2"),
    ]
    b = build_batch(recs, base_offset=10, last_offset_delta=9)
    h = parse_header(b)
    assert (h.base_offset, h.last_offset, h.record_count) == (10, 19, 2)
    assert [r.offset for r in decode_records(b)] == [10, 14]
