"""The codec's receive buffers and the server's gathered, copy-free writes.

The server reads straight into the codec (``get_buffer``/``buffer_updated``): small
frames are parsed in place, a frame larger than the receive buffer gets a buffer of its
own. These tests check that any split of the byte stream gives the same requests, and,
against a real broker process, that pipelined large requests and a large response read
slowly by the client arrive whole and in order.
"""

from __future__ import annotations

import datetime
import random
import socket
import struct
import time
import uuid

import pytest
from kio.index import load_response_schema
from kio.schema.produce.v7.request import PartitionProduceData, ProduceRequest, TopicProduceData
from kio.serial import entity_reader
from kio.static.primitive import i16, i32

from broker.codec import KafkaCodec, encode_request
from broker.errors import PeerProtocolError
from broker.protocol import build
from tests.broker.conftest import BrokerProcess
from tests.broker.test_data_api import _create_topic, make_batch

SUPPORTED = {0: (3, 9)}


def _produce_frame(size: int, correlation_id: int, topic: str = "t") -> bytes:
    request = ProduceRequest(
        transactional_id=None,
        acks=i16(1),
        timeout=datetime.timedelta(seconds=5),
        topic_data=(
            TopicProduceData(
                name=topic,
                partition_data=(
                    PartitionProduceData(index=i32(0), records=bytes([size % 251]) * size),
                ),
            ),
        ),
    )
    return encode_request(request, correlation_id=correlation_id, client_id="c")


def _check(requests: list[object], sizes: list[int]) -> None:
    assert [r.correlation_id for r in requests] == list(range(len(sizes)))  # type: ignore[attr-defined]
    for request, size in zip(requests, sizes, strict=True):
        records = request.body.topic_data[0].partition_data[0].records  # type: ignore[attr-defined]
        assert records == bytes([size % 251]) * size


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_any_split_of_the_stream_gives_the_same_requests(seed: int) -> None:
    rng = random.Random(seed)
    sizes = [rng.choice([0, 10, 5_000, 70_000, 300_000, 1_500_000]) for _ in range(40)]
    stream = b"".join(_produce_frame(n, i) for i, n in enumerate(sizes))
    codec = KafkaCodec(SUPPORTED, chunk_bytes=1 << 17)
    got: list[object] = []
    pos = 0
    while pos < len(stream):
        with codec.get_buffer() as view:
            n = min(len(view), rng.choice([1, 3, 4, 100, 65_536, 1 << 20]), len(stream) - pos)
            view[:n] = stream[pos : pos + n]
        codec.buffer_updated(n)
        pos += n
        got.extend(codec.events())
    _check(got, sizes)
    assert codec.buffered == 0


def test_feed_of_many_frames_at_once_without_reading_events() -> None:
    sizes = [100_000] * 12  # more than the receive buffer holds, fed before any events()
    codec = KafkaCodec(SUPPORTED, chunk_bytes=1 << 16)
    codec.feed(b"".join(_produce_frame(n, i) for i, n in enumerate(sizes)))
    _check(list(codec.events()), sizes)


def test_a_large_frame_is_received_into_its_own_buffer() -> None:
    frame = _produce_frame(1_000_000, 0)
    codec = KafkaCodec(SUPPORTED, chunk_bytes=1 << 16)
    codec.feed(frame[:100])
    assert list(codec.events()) == []
    with codec.get_buffer() as view:
        # One read can complete the frame: the view spans exactly the missing bytes.
        assert len(view) == len(frame) - 100
        view[:] = frame[100:]
    codec.buffer_updated(len(frame) - 100)
    _check(list(codec.events()), [1_000_000])


def test_oversize_frame_is_refused_before_any_buffer_is_allocated() -> None:
    codec = KafkaCodec(SUPPORTED, max_frame_bytes=1 << 20, chunk_bytes=1 << 16)
    with codec.get_buffer() as view:
        view[:4] = struct.pack(">i", (1 << 20) + 1)
    codec.buffer_updated(4)
    with pytest.raises(PeerProtocolError, match=r"socket\.request\.max\.bytes"):
        list(codec.events())
    assert codec.buffered == 0


# --------------------------------------------------------------------------- real broker


def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(min(n - len(buf), 1 << 20))
        if not chunk:
            raise ConnectionError("broker closed the connection")
        buf += chunk
    return bytes(buf)


def _read_response(sock: socket.socket, api_key: int, version: int) -> tuple[int, object]:
    (size,) = struct.unpack(">i", _recv_exactly(sock, 4))
    payload = _recv_exactly(sock, size)
    (correlation_id,) = struct.unpack_from(">i", payload, 0)
    body, _ = entity_reader(load_response_schema(api_key, version))(payload, 4)
    return correlation_id, body


def _batch_of(size: int, fill: int) -> bytes:
    return make_batch([(None, bytes([fill]) * size)])


def test_pipelined_large_produces_and_a_slowly_read_large_fetch(
    shared_broker: BrokerProcess,
) -> None:
    topic = f"recv-{uuid.uuid4().hex[:10]}"
    _create_topic(shared_broker.bootstrap, topic)
    host, port = shared_broker.bootstrap.rsplit(":", 1)
    value_sizes = [900_000, 50, 700_000, 10, 10, 950_000, 300_000, 5]
    batches = [_batch_of(n, i + 1) for i, n in enumerate(value_sizes)]
    frames = []
    for i, batch in enumerate(batches):
        request = build(
            ProduceRequest,
            {
                "acks": 1,
                "timeout_ms": 5000,
                "topic_data": [{"name": topic, "partition_data": [{"index": 0, "records": batch}]}],
            },
        )
        frames.append(encode_request(request, correlation_id=i, client_id="pipeline"))
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(b"".join(frames))  # all pipelined: responses must come back in order
        for i in range(len(frames)):
            correlation_id, body = _read_response(sock, 0, 7)
            assert correlation_id == i
            part = body.responses[0].partition_responses[0]  # type: ignore[attr-defined]
            assert (int(part.error_code), part.base_offset) == (0, i)

        from kio.schema.fetch.v11.request import FetchRequest

        fetch = build(
            FetchRequest,
            {
                "replica_id": -1,
                "max_wait_ms": 0,
                "min_bytes": 1,
                "max_bytes": 50 << 20,
                "isolation_level": 0,
                "topics": [
                    {
                        "topic": topic,
                        "partitions": [
                            {"partition": 0, "fetch_offset": 0, "partition_max_bytes": 50 << 20}
                        ],
                    }
                ],
            },
        )
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 14)
        sock.sendall(encode_request(fetch, correlation_id=99, client_id="slow"))
        time.sleep(0.3)  # let the broker fill the socket and wait for it to drain
        correlation_id, body = _read_response(sock, 1, 11)
    assert correlation_id == 99
    part = body.responses[0].partitions[0]  # type: ignore[attr-defined]
    assert int(part.error_code) == 0
    assert part.high_watermark == len(batches)
    assert len(part.records) == sum(map(len, batches))
