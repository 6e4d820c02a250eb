"""Sans-IO tests of the wire codec: framing, headers, refusals, response encoding."""

from __future__ import annotations

import datetime
import io
import random
import struct

import pytest
from kio.index import load_response_schema
from kio.schema.api_versions.v0.response import ApiVersionsResponse as ApiVersionsV0
from kio.schema.api_versions.v3.request import ApiVersionsRequest as ApiVersionsV3
from kio.schema.create_topics.v5.request import CreatableTopic, CreateTopicsRequest
from kio.schema.metadata.v1.request import MetadataRequest as MetadataV1
from kio.schema.metadata.v1.request import MetadataRequestTopic
from kio.serial import entity_reader, entity_writer

from broker.codec import ImmediateResponse, KafkaCodec, Request, encode_request
from broker.errors import ErrorCode, PeerProtocolError
from broker.protocol import build

SUPPORTED = {3: (0, 12), 18: (0, 3), 19: (2, 7)}


def _requests() -> list[bytes]:
    return [
        encode_request(
            MetadataV1(topics=(MetadataRequestTopic(name="a"),)), correlation_id=1, client_id="c"
        ),
        encode_request(
            ApiVersionsV3(client_software_name="t", client_software_version="1"),
            correlation_id=2,
            client_id=None,
        ),
        encode_request(
            CreateTopicsRequest(
                topics=(
                    CreatableTopic(
                        name="t", num_partitions=3, replication_factor=1, assignments=(), configs=()
                    ),
                ),
                timeout=datetime.timedelta(seconds=1),
                validate_only=False,
            ),
            correlation_id=3,
            client_id="x" * 300,
        ),
    ]


def _check(events: list[Request | ImmediateResponse]) -> None:
    assert [type(e) for e in events] == [Request, Request, Request]
    reqs = [e for e in events if isinstance(e, Request)]
    assert [(r.api_key, r.api_version, r.correlation_id) for r in reqs] == [
        (3, 1, 1),
        (18, 3, 2),
        (19, 5, 3),
    ]
    assert reqs[0].client_id == "c" and reqs[1].client_id is None
    assert reqs[0].body.topics[0].name == "a"
    assert reqs[1].body.client_software_name == "t"
    assert reqs[2].body.topics[0].num_partitions == 3 and reqs[2].client_id == "x" * 300


def test_framing_byte_by_byte() -> None:
    data = b"".join(_requests())
    codec = KafkaCodec(SUPPORTED)
    events: list[Request | ImmediateResponse] = []
    for i in range(len(data)):
        codec.feed(data[i : i + 1])
        events.extend(codec.events())
    _check(events)
    assert codec.buffered == 0


@pytest.mark.parametrize("seed", range(5))
def test_framing_random_chunks(seed: int) -> None:
    rng = random.Random(seed)
    data = b"".join(_requests())
    codec = KafkaCodec(SUPPORTED)
    events: list[Request | ImmediateResponse] = []
    pos = 0
    while pos < len(data):
        step = rng.randint(1, 60)
        codec.feed(data[pos : pos + step])
        pos += step
        events.extend(codec.events())
    _check(events)


def test_all_at_once() -> None:
    codec = KafkaCodec(SUPPORTED)
    codec.feed(b"".join(_requests()))
    _check(list(codec.events()))


def test_header_v2_tagged_fields_are_skipped() -> None:
    frame = encode_request(
        ApiVersionsV3(client_software_name="t", client_software_version="1"),
        correlation_id=9,
        client_id="id",
    )
    payload = frame[4:]
    # header: key(2) version(2) corr(4) client id len(2) + "id"(2), then tagged fields count
    head_len = 2 + 2 + 4 + 2 + 2
    assert payload[head_len] == 0
    tagged = b"\x01" + b"\x05" + b"\x03" + b"abc"  # one field, tag 5, 3 bytes
    new_payload = payload[:head_len] + tagged + payload[head_len + 1 :]
    codec = KafkaCodec(SUPPORTED)
    codec.feed(struct.pack(">i", len(new_payload)) + new_payload)
    (req,) = list(codec.events())
    assert isinstance(req, Request)
    assert req.correlation_id == 9 and req.body.client_software_version == "1"


def test_oversize_frame_refused_without_buffering() -> None:
    codec = KafkaCodec(SUPPORTED, max_frame_bytes=1024)
    codec.feed(struct.pack(">i", 1025))
    with pytest.raises(PeerProtocolError, match="frame size 1025"):
        list(codec.events())
    assert codec.buffered == 0
    codec.feed(b"more")
    with pytest.raises(PeerProtocolError):  # stays failed
        list(codec.events())


def test_negative_size_refused() -> None:
    codec = KafkaCodec(SUPPORTED)
    codec.feed(struct.pack(">i", -5))
    with pytest.raises(PeerProtocolError, match="frame size -5"):
        list(codec.events())


def test_http_request_is_refused() -> None:
    codec = KafkaCodec(SUPPORTED)
    codec.feed(b"GET / HTTP/1.1\r\n\r\n")
    with pytest.raises(PeerProtocolError, match="frame size"):
        list(codec.events())


def test_too_short_frame() -> None:
    codec = KafkaCodec(SUPPORTED)
    codec.feed(struct.pack(">i", 3) + b"\x00\x03\x00")
    with pytest.raises(PeerProtocolError, match="too short"):
        list(codec.events())


def test_requests_before_a_bad_frame_are_yielded() -> None:
    codec = KafkaCodec(SUPPORTED)
    codec.feed(_requests()[0] + struct.pack(">i", -1))
    events = codec.events()
    assert isinstance(next(events), Request)
    with pytest.raises(PeerProtocolError):
        next(events)


def test_unknown_api_key() -> None:
    codec = KafkaCodec(SUPPORTED)
    payload = struct.pack(">hhih", 999, 0, 5, -1)
    codec.feed(struct.pack(">i", len(payload)) + payload)
    with pytest.raises(PeerProtocolError, match="unsupported API key 999"):
        list(codec.events())


def test_unsupported_version_closes() -> None:
    codec = KafkaCodec({3: (0, 0), 18: (0, 3)})
    codec.feed(_requests()[0])  # Metadata v1
    with pytest.raises(PeerProtocolError, match=r"unsupported version 1 of metadata.*v0\.\.v0"):
        list(codec.events())


def test_api_versions_too_new_gets_v0_error_answer() -> None:
    codec = KafkaCodec(SUPPORTED)
    # ApiVersions v7 from the future: header v2 with tagged fields, unknown body.
    payload = struct.pack(">hhih", 18, 7, 42, 3) + b"cli" + b"\x00" + b"\x99\x98"
    codec.feed(struct.pack(">i", len(payload)) + payload)
    (event,) = list(codec.events())
    assert isinstance(event, ImmediateResponse)
    data = event.data
    (size,) = struct.unpack_from(">i", data, 0)
    assert size == len(data) - 4
    (corr,) = struct.unpack_from(">i", data, 4)
    assert corr == 42
    body, _ = entity_reader(ApiVersionsV0)(data, 8)
    assert body.error_code == ErrorCode.unsupported_version
    assert {(k.api_key, k.min_version, k.max_version) for k in body.api_keys} == {
        (3, 0, 12),
        (18, 0, 3),
        (19, 2, 7),
    }


def test_garbage_body() -> None:
    codec = KafkaCodec(SUPPORTED)
    # Metadata v1 header, then an array length of 5 with no elements.
    payload = struct.pack(">hhih", 3, 1, 1, -1) + struct.pack(">i", 5)
    codec.feed(struct.pack(">i", len(payload)) + payload)
    with pytest.raises(PeerProtocolError, match="cannot parse metadata v1 request body"):
        list(codec.events())


def test_client_id_past_frame() -> None:
    codec = KafkaCodec(SUPPORTED)
    payload = struct.pack(">hhih", 3, 1, 1, 50) + b"ab"
    codec.feed(struct.pack(">i", len(payload)) + payload)
    with pytest.raises(PeerProtocolError, match="client id"):
        list(codec.events())


def _decode_frame(pieces: list[bytes]) -> bytes:
    data = b"".join(pieces)
    (size,) = struct.unpack_from(">i", data, 0)
    assert size == len(data) - 4
    return data[4:]


def test_response_header_v0_for_api_versions_v3() -> None:
    codec = KafkaCodec(SUPPORTED)
    cls = load_response_schema(18, 3)
    body = build(cls, {"api_keys": [{"api_key": 3, "min_version": 0, "max_version": 12}]})
    frame = _decode_frame(codec.encode_response(77, body))
    assert struct.unpack_from(">i", frame, 0)[0] == 77
    decoded, used = entity_reader(cls)(frame, 4)  # no tagged-field byte after the id
    assert decoded == body and used == len(frame) - 4


def test_response_header_v1_for_flexible_metadata() -> None:
    codec = KafkaCodec(SUPPORTED)
    cls = load_response_schema(3, 9)
    body = build(cls, {"brokers": [{"node_id": 1, "host": "h", "port": 1}], "topics": []})
    frame = _decode_frame(codec.encode_response(5, body))
    assert frame[4] == 0  # empty tagged fields of response header v1
    decoded, _ = entity_reader(cls)(frame, 5)
    assert decoded == body


def test_large_records_pass_through_uncopied() -> None:
    codec = KafkaCodec(SUPPORTED)
    cls = load_response_schema(1, 4)
    records = bytes(200_000)
    body = build(
        cls,
        {
            "responses": [
                {
                    "topic": "t",
                    "partitions": [{"partition_index": 0, "high_watermark": 1, "records": records}],
                }
            ]
        },
    )
    pieces = codec.encode_response(1, body)
    assert any(p is records for p in pieces)
    frame = _decode_frame(pieces)
    buf = io.BytesIO()
    entity_writer(cls)(buf, body)
    assert frame[4:] == buf.getvalue()
