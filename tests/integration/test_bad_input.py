"""Hostile and broken input on raw sockets: the broker refuses it and keeps serving.

Each case sends bytes no well-behaved client would send, expects an error code or a
closed connection, and then checks that a normal client still produces and consumes
and that the broker's log names the reason.
"""

from __future__ import annotations

import datetime
import io
import re
import socket
import struct
import time
import uuid
from typing import Any

import crc32c
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from kio.schema.errors import ErrorCode
from kio.schema.produce.v3.request import PartitionProduceData, ProduceRequest, TopicProduceData
from kio.schema.produce.v3.response import ProduceResponse
from kio.schema.request_header.v1.header import RequestHeader
from kio.schema.types import TopicName
from kio.serial import entity_reader, entity_writer
from kio.static.primitive import Records, i16, i32, i32Timedelta

MAX_REQUEST = 20_000
"""socket.request.max.bytes for this module's broker: small, yet roomy for normal clients."""


@pytest.fixture(scope="module")
def bad_broker(module_broker_factory: Any) -> Any:
    return module_broker_factory({"socket.request.max.bytes": str(MAX_REQUEST)})


# --------------------------------------------------------------------------- wire helpers


def connect(broker: Any) -> socket.socket:
    sock = socket.create_connection((broker.host, broker.port), timeout=10)
    sock.settimeout(10)
    return sock


def frame(payload: bytes) -> bytes:
    return struct.pack(">i", len(payload)) + payload


def header_v1(
    api_key: int, version: int, correlation_id: int, client_id: str = "bad-input"
) -> bytes:
    cid = client_id.encode()
    return struct.pack(">hhih", api_key, version, correlation_id, len(cid)) + cid


def recv_exact(sock: socket.socket, n: int) -> bytes | None:
    """``n`` bytes, or None when the peer closed the connection first."""
    buf = b""
    while len(buf) < n:
        try:
            chunk = sock.recv(n - len(buf))
        except ConnectionResetError:
            return None
        if not chunk:
            return None
        buf += chunk
    return buf


def recv_frame(sock: socket.socket) -> bytes | None:
    """One response frame, or None when the broker closed the connection."""
    size = recv_exact(sock, 4)
    if size is None:
        return None
    (n,) = struct.unpack(">i", size)
    return recv_exact(sock, n)


def is_closed(sock: socket.socket, timeout_s: float = 10.0) -> bool:
    """True when the broker closes the connection (EOF or reset) within ``timeout_s``."""
    sock.settimeout(timeout_s)
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False


def varint(n: int) -> bytes:
    z = (n << 1) ^ (n >> 63)
    out = bytearray()
    while True:
        b = z & 0x7F
        z >>= 7
        if z:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def record_batch(
    records: list[tuple[bytes, bytes]], *, timestamp_ms: int, corrupt_crc: bool
) -> bytes:
    """A RecordBatch v2 (magic 2), uncompressed, written from the Kafka protocol docs."""
    body_records = b""
    for i, (key, value) in enumerate(records):
        rec = (
            b"\x00"  # attributes
            + varint(0)  # timestamp delta
            + varint(i)  # offset delta
            + varint(len(key))
            + key
            + varint(len(value))
            + value
            + varint(0)  # headers
        )
        body_records += varint(len(rec)) + rec
    after_crc = (
        struct.pack(
            ">hiqqqhii", 0, len(records) - 1, timestamp_ms, timestamp_ms, -1, -1, -1, len(records)
        )
        + body_records
    )
    crc = crc32c.crc32c(after_crc)
    if corrupt_crc:
        crc ^= 0xDEADBEEF
    after_length = struct.pack(">ibI", 0, 2, crc) + after_crc
    return struct.pack(">qi", 0, len(after_length)) + after_length


def produce_v3(topic: str, batch: bytes, correlation_id: int) -> bytes:
    request = ProduceRequest(
        transactional_id=None,
        acks=i16(1),
        timeout=i32Timedelta.parse(datetime.timedelta(seconds=10)),
        topic_data=(
            TopicProduceData(
                name=TopicName(topic),
                partition_data=(PartitionProduceData(index=i32(0), records=Records(batch)),),
            ),
        ),
    )
    header = RequestHeader(
        request_api_key=i16(0),
        request_api_version=i16(3),
        correlation_id=i32(correlation_id),
        client_id="raw",
    )
    buf = io.BytesIO()
    entity_writer(RequestHeader)(buf, header)
    entity_writer(ProduceRequest)(buf, request)
    return frame(buf.getvalue())


def parse_produce_v3(payload: bytes, correlation_id: int) -> ErrorCode:
    (cid,) = struct.unpack(">i", payload[:4])
    assert cid == correlation_id
    response, _ = entity_reader(ProduceResponse)(memoryview(payload[4:]), 0)
    return response.responses[0].partition_responses[0].error_code


# --------------------------------------------------------------------------- checks


def assert_still_serves(broker: Any, topic: str) -> None:
    """A normal client can produce and read back after the bad input."""
    producer = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all"})
    tag = uuid.uuid4().hex[:8]
    values = [f"{topic}-{tag}-{i}".encode() for i in range(5)]
    for v in values:
        producer.produce(topic, value=v, partition=0)
    assert producer.flush(30) == 0
    consumer = Consumer(
        {
            "bootstrap.servers": broker.bootstrap,
            "group.id": "bad-input-check",
            "enable.auto.commit": False,
        }
    )
    got: list[bytes | None] = []
    try:
        consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        deadline = time.monotonic() + 30
        while values[-1] not in got and time.monotonic() < deadline:
            for m in consumer.consume(100, timeout=1.0):
                assert not m.error(), m.error()
                got.append(m.value())
    finally:
        consumer.close()
    assert [v for v in got if v is not None and tag.encode() in v] == values
    assert broker.running


def assert_logged(broker: Any, before: int, pattern: str) -> None:
    """The broker's output since ``before`` names the reason (case-insensitive regex)."""

    def new_text() -> str:
        return broker.output()[before:]

    deadline = time.monotonic() + 10
    while not re.search(pattern, new_text(), re.IGNORECASE):
        if time.monotonic() > deadline:
            raise AssertionError(
                f"broker log does not match /{pattern}/ after the bad input; it said:\n"
                + new_text()[-3000:]
            )
        time.sleep(0.1)


# --------------------------------------------------------------------------- cases


def test_garbage_frame_closes_connection(bad_broker: Any) -> None:
    before = len(bad_broker.output())
    with connect(bad_broker) as sock:
        # Metadata v1 whose topic array claims a million entries but carries none.
        payload = header_v1(3, 1, 7) + struct.pack(">i", 1_000_000) + b"\xff\xfe\xfd"
        sock.sendall(frame(payload))
        response = recv_frame(sock)
        assert response is None or is_closed(sock), "expected the broker to drop the connection"
    assert_logged(
        bad_broker, before, r"malformed|invalid|pars|decod|corrupt|unexpected|truncat|short"
    )
    assert_still_serves(bad_broker, "after-garbage")


def test_negative_size_prefix_closes_connection(bad_broker: Any) -> None:
    before = len(bad_broker.output())
    with connect(bad_broker) as sock:
        sock.sendall(struct.pack(">i", -5) + b"\x00" * 8)
        assert is_closed(sock)
    assert_logged(bad_broker, before, r"size|length|frame|malformed|invalid")
    assert_still_serves(bad_broker, "after-negative-size")


def test_oversized_frame_closed_before_payload(bad_broker: Any) -> None:
    before = len(bad_broker.output())
    rss_before = bad_broker.rss_bytes()
    with connect(bad_broker) as sock:
        # Claim 2 GiB - 1 and send only a few bytes: a broker that buffered the claimed
        # size would wait forever; a correct one closes at once.
        sock.sendall(struct.pack(">i", 0x7FFFFFFF) + b"\x00\x12\x00\x00")
        assert is_closed(sock), "oversized frame: connection still open (waiting for payload?)"
    with connect(bad_broker) as sock:
        sock.sendall(struct.pack(">i", MAX_REQUEST + 1) + b"\x00\x03\x00\x01")
        assert is_closed(sock), "frame just above socket.request.max.bytes was not refused"
    assert bad_broker.rss_bytes() - rss_before < 64 * 1024 * 1024
    assert_logged(
        bad_broker, before, r"socket\.request\.max\.bytes|too large|exceed|oversize|limit"
    )
    assert_still_serves(bad_broker, "after-oversized")


def test_corrupt_crc_produce_gets_corrupt_message(bad_broker: Any) -> None:
    topic = "raw-crc"
    assert_still_serves(bad_broker, topic)  # creates the topic; offsets 0..4
    ts = int(time.time() * 1000)
    with connect(bad_broker) as sock:
        # Control: the same hand-built batch with a correct CRC is accepted.
        good = record_batch([(b"k", b"good")], timestamp_ms=ts, corrupt_crc=False)
        sock.sendall(produce_v3(topic, good, 41))
        payload = recv_frame(sock)
        assert payload is not None
        assert parse_produce_v3(payload, 41) == ErrorCode.none

        before = len(bad_broker.output())
        bad = record_batch([(b"k", b"bad")], timestamp_ms=ts, corrupt_crc=True)
        sock.sendall(produce_v3(topic, bad, 42))
        payload = recv_frame(sock)
        assert payload is not None, "corrupt CRC: connection closed instead of CORRUPT_MESSAGE"
        assert parse_produce_v3(payload, 42) == ErrorCode.corrupt_message
    assert_logged(bad_broker, before, r"crc|corrupt")
    assert_still_serves(bad_broker, topic)


def test_unknown_api_key(bad_broker: Any) -> None:
    before = len(bad_broker.output())
    with connect(bad_broker) as sock:
        sock.sendall(frame(header_v1(999, 0, 9) + b"\x00\x00\x00\x00"))
        response = recv_frame(sock)
        if response is not None:  # answered rather than closed: it must be our request's answer
            assert struct.unpack(">i", response[:4])[0] == 9
    assert_logged(bad_broker, before, r"api.?key|unknown api|unsupported|999")
    assert_still_serves(bad_broker, "after-unknown-api")


def test_unsupported_produce_version(bad_broker: Any) -> None:
    before = len(bad_broker.output())
    with connect(bad_broker) as sock:
        sock.sendall(frame(header_v1(0, 99, 11) + b"\x00" * 16))
        response = recv_frame(sock)
        if response is not None:
            assert struct.unpack(">i", response[:4])[0] == 11
    assert_logged(bad_broker, before, r"version|supported|v99")
    assert_still_serves(bad_broker, "after-produce-v99")


def test_api_versions_v99_answered_with_v0_and_full_list(bad_broker: Any) -> None:
    with connect(bad_broker) as sock:
        # A client newer than the broker sends a flexible header (v2: tagged fields after
        # the client id) and a flexible body; the broker answers in v0.
        body = b"\x05flows" + b"\x040.1" + b"\x00"
        sock.sendall(frame(header_v1(18, 99, 13) + b"\x00" + body))
        payload = recv_frame(sock)
        assert payload is not None, "ApiVersions v99 must be answered, not closed"
    correlation_id, error_code, count = struct.unpack(">ihi", payload[:10])
    assert correlation_id == 13
    assert error_code == ErrorCode.unsupported_version.value == 35
    ranges = {}
    for i in range(count):
        key, lo, hi = struct.unpack(">hhh", payload[10 + 6 * i : 16 + 6 * i])
        ranges[key] = (lo, hi)
    assert len(payload) == 10 + 6 * count, "v0 body: nothing may follow the api_keys array"
    for key in (0, 1, 2, 3, 18):  # Produce, Fetch, ListOffsets, Metadata, ApiVersions
        assert key in ranges, f"api key {key} missing from ApiVersions answer {ranges}"
        lo, hi = ranges[key]
        assert 0 <= lo <= hi
    assert_still_serves(bad_broker, "after-apiversions-v99")
