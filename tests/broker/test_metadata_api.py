"""Metadata, ApiVersions and the server's wire behaviour against a real broker process."""

from __future__ import annotations

import datetime
import struct
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kio.schema.api_versions.v0.response import ApiVersionsResponse as ApiVersionsV0Response
from kio.schema.api_versions.v3.request import ApiVersionsRequest as ApiVersionsV3
from kio.schema.create_topics.v4.request import CreatableTopic, CreateTopicsRequest
from kio.schema.metadata.v0.request import MetadataRequest as MetadataV0
from kio.schema.metadata.v0.request import MetadataRequestTopic as TopicV0
from kio.schema.metadata.v1.request import MetadataRequest as MetadataV1
from kio.schema.metadata.v4.request import MetadataRequest as MetadataV4
from kio.schema.metadata.v4.request import MetadataRequestTopic as TopicV4
from kio.schema.metadata.v12.request import MetadataRequest as MetadataV12
from kio.schema.metadata.v12.request import MetadataRequestTopic as TopicV12
from kio.schema.metadata.v12.response import MetadataResponse as MetadataV12Response

from broker.errors import ErrorCode
from tests.broker.conftest import BrokerProcess, WireClient

Start = Callable[..., BrokerProcess]
Connect = Callable[[str], WireClient]


def _create(client: WireClient, name: str, partitions: int) -> None:
    response: Any = client.call(
        CreateTopicsRequest(
            topics=(
                CreatableTopic(
                    name=name,  # type: ignore[arg-type]
                    num_partitions=partitions,  # type: ignore[arg-type]
                    replication_factor=1,  # type: ignore[arg-type]
                    assignments=(),
                    configs=(),
                ),
            ),
            timeout=datetime.timedelta(seconds=5),  # type: ignore[arg-type]
            validate_only=False,
        )
    )
    assert response.topics[0].error_code == ErrorCode.none


def test_api_versions_v3_lists_what_is_registered(
    shared_broker: BrokerProcess, wire: Connect
) -> None:
    broker = shared_broker
    client = wire(broker.bootstrap)
    response: Any = client.call(
        ApiVersionsV3(client_software_name="tests", client_software_version="1")
    )
    assert response.error_code == ErrorCode.none
    keys = {k.api_key: (k.min_version, k.max_version) for k in response.api_keys}
    assert keys[18] == (0, 3)
    assert keys[3] == (0, 12)
    assert {19, 20, 32, 33, 37, 44} <= set(keys)


def test_api_versions_from_the_future_gets_v0_error(
    shared_broker: BrokerProcess, wire: Connect
) -> None:
    broker = shared_broker
    client = wire(broker.bootstrap)
    payload = struct.pack(">hhih", 18, 99, 1234, 2) + b"cl" + b"\x00" + b"\x02xy"
    client.send_raw(struct.pack(">i", len(payload)) + payload)
    corr, body = client.recv(ApiVersionsV0Response)
    assert corr == 1234
    assert body.error_code == ErrorCode.unsupported_version  # type: ignore[attr-defined]
    assert any(k.api_key == 3 for k in body.api_keys)  # type: ignore[attr-defined]
    # The connection stays usable.
    response: Any = client.call(MetadataV1(topics=None))
    assert response.brokers[0].node_id == 1


def test_metadata_v12_brokers_and_ids(shared_broker: BrokerProcess, wire: Connect) -> None:
    broker = shared_broker
    client = wire(broker.bootstrap)
    _create(client, "orders", 3)
    response: Any = client.call(
        MetadataV12(
            topics=None, allow_auto_topic_creation=False, include_topic_authorized_operations=False
        )
    )
    host, port = broker.bootstrap.split(":")
    assert [(b.node_id, b.host, b.port) for b in response.brokers] == [(1, host, int(port))]
    assert response.controller_id == 1 and response.cluster_id
    (topic,) = [t for t in response.topics if t.name == "orders"]
    assert topic.error_code == ErrorCode.none
    assert [p.partition_index for p in topic.partitions] == [0, 1, 2]
    assert all(p.leader_id == 1 and p.replica_nodes == (1,) for p in topic.partitions)
    assert topic.topic_id is not None and topic.topic_id.int != 0

    # By topic id (v10+), and an unknown id.
    by_id: Any = client.call(
        MetadataV12(
            topics=(
                TopicV12(topic_id=topic.topic_id, name=None),
                TopicV12(topic_id=uuid.uuid4(), name=None),
            ),
            allow_auto_topic_creation=False,
            include_topic_authorized_operations=True,
        )
    )
    assert by_id.topics[0].name == "orders"
    assert by_id.topics[0].topic_authorized_operations > 0
    assert by_id.topics[1].error_code == ErrorCode.unknown_topic_id


def test_metadata_auto_create(broker_process: Start, tmp_path: Path, wire: Connect) -> None:
    broker = broker_process(tmp_path, overrides={"num.partitions": "3"})
    client = wire(broker.bootstrap)
    response: Any = client.call(
        MetadataV4(
            topics=(TopicV4(name="no-auto"), TopicV4(name="bad name!")),  # type: ignore[arg-type]
            allow_auto_topic_creation=False,
        )
    )
    assert [t.error_code for t in response.topics] == [
        ErrorCode.unknown_topic_or_partition,
        ErrorCode.invalid_topic_exception,
    ]
    response = client.call(
        MetadataV4(topics=(TopicV4(name="auto"),), allow_auto_topic_creation=True)  # type: ignore[arg-type]
    )
    (topic,) = response.topics
    assert topic.error_code == ErrorCode.none and len(topic.partitions) == 3
    # v0 always allows auto-creation; an empty list means all topics.
    response = client.call(MetadataV0(topics=(TopicV0(name="auto-v0"),)))  # type: ignore[arg-type]
    assert response.topics[0].error_code == ErrorCode.none
    response = client.call(MetadataV0(topics=()))
    assert {t.name for t in response.topics} >= {"auto", "auto-v0"}
    # v1+: an empty list means no topics.
    response = client.call(MetadataV1(topics=()))
    assert response.topics == ()


def test_auto_create_disabled(broker_process: Start, tmp_path: Path, wire: Connect) -> None:
    broker = broker_process(tmp_path, overrides={"auto.create.topics.enable": "false"})
    client = wire(broker.bootstrap)
    response: Any = client.call(MetadataV0(topics=(TopicV0(name="x"),)))  # type: ignore[arg-type]
    assert response.topics[0].error_code == ErrorCode.unknown_topic_or_partition


def test_two_listeners_each_advertise_their_own_address(
    broker_process: Start, tmp_path: Path, wire: Connect
) -> None:
    broker = broker_process(
        tmp_path,
        listeners="A://127.0.0.1:0,B://127.0.0.1:0",
        advertised_listeners="A://localhost:0,B://127.0.0.1:0",
        overrides={"listener.security.protocol.map": "A:PLAINTEXT,B:PLAINTEXT"},
    )
    _a_host, a_port, a_adv_host, a_adv_port = broker.listeners["A"]
    _b_host, b_port, b_adv_host, b_adv_port = broker.listeners["B"]
    assert (a_adv_host, a_adv_port) == ("localhost", a_port)
    assert (b_adv_host, b_adv_port) == ("127.0.0.1", b_port)
    for name, expected in (("A", ("localhost", a_port)), ("B", ("127.0.0.1", b_port))):
        response: Any = wire(broker.address(name)).call(MetadataV1(topics=None))
        assert [(b.host, b.port) for b in response.brokers] == [expected]


def test_real_clients_see_the_broker(shared_broker: BrokerProcess) -> None:
    broker = shared_broker
    from confluent_kafka.admin import AdminClient
    from kafka import KafkaAdminClient

    md = AdminClient({"bootstrap.servers": broker.bootstrap}).list_topics(timeout=10)
    assert list(md.brokers) == [1]
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=10000)
    try:
        assert admin.describe_cluster()["controller_id"] == 1
    finally:
        admin.close()


def test_pipelined_requests_are_answered_in_order(
    shared_broker: BrokerProcess, wire: Connect
) -> None:
    broker = shared_broker
    client = wire(broker.bootstrap)
    sent = []
    batch = b""
    from broker.codec import encode_request

    for i in range(30):
        body: Any = (
            MetadataV1(topics=None)
            if i % 2
            else ApiVersionsV3(client_software_name="t", client_software_version="1")
        )
        batch += encode_request(body, correlation_id=1000 + i, client_id="p")
        sent.append(1000 + i)
    client.send_raw(batch)
    got = [int.from_bytes(client.recv_frame()[:4], "big") for _ in sent]
    assert got == sent


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "frame size"),
        (struct.pack(">i", -1), "frame size -1"),
        (struct.pack(">i", 10) + struct.pack(">hhih", 777, 0, 1, -1), "unsupported API key 777"),
        (
            struct.pack(">i", 10) + struct.pack(">hhih", 3, 99, 1, -1),
            "unsupported version 99 of metadata",
        ),
        (
            struct.pack(">i", 14) + struct.pack(">hhih", 3, 1, 1, -1) + struct.pack(">i", 7),
            "cannot parse metadata v1 request body",
        ),
    ],
)
def test_peer_faults_close_the_connection_with_a_logged_reason(
    shared_broker: BrokerProcess, wire: Connect, data: bytes, reason: str
) -> None:
    broker = shared_broker
    client = wire(broker.bootstrap)
    client.send_raw(data)
    assert client.closed_by_peer()
    # The broker itself carries on.
    response: Any = wire(broker.bootstrap).call(MetadataV1(topics=None))
    assert response.brokers[0].node_id == 1
    log = broker.log_text()
    assert "peer protocol fault" in log and reason in log
    assert "Traceback" not in log


def test_oversize_frame_is_refused(broker_process: Start, tmp_path: Path, wire: Connect) -> None:
    broker = broker_process(tmp_path, overrides={"socket.request.max.bytes": "2048"})
    client = wire(broker.bootstrap)
    client.send_raw(struct.pack(">i", 4096) + b"\x00" * 100)
    assert client.closed_by_peer()
    assert "frame size 4096 is outside 0..2048" in broker.log_text()


def test_metrics_endpoint_and_graceful_stop(
    broker_process: Start, tmp_path: Path, wire: Connect
) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    broker = broker_process(tmp_path, extra_args=["--metrics-port", str(port)])
    client = wire(broker.bootstrap)
    _create(client, "m", 2)
    client.call(MetadataV1(topics=None))
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    assert 'flows_broker_requests_total{api="metadata"} 1.0' in text
    assert 'flows_broker_request_latency_seconds_count{api="create_topics"} 1.0' in text
    assert 'flows_broker_log_end_offset{partition="1",topic="m"} 0.0' in text
    assert broker.stop() == 0
    assert "stopped" in broker.log_text()


def test_response_to_metadata_decodes_with_kio(shared_broker: BrokerProcess, wire: Connect) -> None:
    broker = shared_broker
    client = wire(broker.bootstrap)
    corr = client.send(
        MetadataV12(
            topics=None, allow_auto_topic_creation=False, include_topic_authorized_operations=False
        )
    )
    got, body = client.recv(MetadataV12Response)
    assert got == corr and isinstance(body, MetadataV12Response)


def test_unusable_advertised_hosts_are_warned_about(broker_process: Start, tmp_path: Path) -> None:
    broker = broker_process(
        tmp_path,
        listeners="A://127.0.0.1:0,B://127.0.0.1:0",
        advertised_listeners="A://0.0.0.0:0,B://no-such-host.invalid:0",
        overrides={"listener.security.protocol.map": "A:PLAINTEXT,B:PLAINTEXT"},
    )
    log = broker.log_text()
    assert "warning: listener A advertises 0.0.0.0" in log
    assert "warning: advertised host 'no-such-host.invalid' of listener B does not resolve" in log
