"""Regressions found by running kafkajs 2.x against the broker, pinned at the wire level.

- DeleteRecords (API 21) was not implemented, so kafkajs' ``admin.deleteTopicRecords``
  failed with "The Kafka server does not support the requested API version". kafkajs
  sends v1; v2 is the flexible version.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic
from kio.schema.api_versions.v2.request import ApiVersionsRequest
from kio.schema.delete_records.v1 import request as dr1
from kio.schema.delete_records.v2 import request as dr2
from kio.schema.list_offsets.v1.request import (
    ListOffsetsPartition,
    ListOffsetsRequest,
    ListOffsetsTopic,
)

from broker.errors import ErrorCode
from tests.broker.conftest import BrokerProcess, WireClient

Connect = Callable[[str], WireClient]
N = 10


def _topic_with_records(broker: BrokerProcess, topic: str) -> None:
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=15000)
    try:
        admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    finally:
        admin.close()
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=0)
    try:
        for i in range(N):
            producer.send(topic, key=b"k", value=str(i).encode(), partition=0)
        producer.flush(15)
    finally:
        producer.close()


def _delete_v1(client: WireClient, topic: str, offset: int) -> Any:
    response: Any = client.call(
        dr1.DeleteRecordsRequest(
            topics=(
                dr1.DeleteRecordsTopic(
                    name=topic,  # type: ignore[arg-type]
                    partitions=(dr1.DeleteRecordsPartition(partition_index=0, offset=offset),),  # type: ignore[arg-type]
                ),
            ),
            timeout=timedelta(seconds=5),  # type: ignore[arg-type]
        )
    )
    assert response.topics[0].name == topic
    return response.topics[0].partitions[0]


def _earliest(client: WireClient, topic: str) -> int:
    response: Any = client.call(
        ListOffsetsRequest(
            replica_id=-1,  # type: ignore[arg-type]
            topics=(
                ListOffsetsTopic(
                    name=topic,  # type: ignore[arg-type]
                    partitions=(ListOffsetsPartition(partition_index=0, timestamp=-2),),  # type: ignore[arg-type]
                ),
            ),
        )
    )
    return int(response.topics[0].partitions[0].offset)


def test_delete_records_is_advertised(shared_broker: BrokerProcess, wire: Connect) -> None:
    response: Any = wire(shared_broker.bootstrap).call(ApiVersionsRequest())
    ranges = {k.api_key: (k.min_version, k.max_version) for k in response.api_keys}
    assert ranges[21] == (0, 2)


def test_delete_records_v1_advances_log_start(shared_broker: BrokerProcess, wire: Connect) -> None:
    topic = "kafkajs-delete-records"
    _topic_with_records(shared_broker, topic)
    client = wire(shared_broker.bootstrap)
    got = _delete_v1(client, topic, 4)
    assert (got.error_code, got.low_watermark) == (ErrorCode.none, 4)
    assert _earliest(client, topic) == 4
    # Deleting below the current start is a no-op that reports the start.
    got = _delete_v1(client, topic, 2)
    assert (got.error_code, got.low_watermark) == (ErrorCode.none, 4)
    # -1 means "up to the high watermark".
    got = _delete_v1(client, topic, -1)
    assert (got.error_code, got.low_watermark) == (ErrorCode.none, N)
    assert _earliest(client, topic) == N


@pytest.mark.parametrize(
    ("topic_suffix", "offset", "code"),
    [
        ("", N + 1, ErrorCode.offset_out_of_range),
        ("-missing", 1, ErrorCode.unknown_topic_or_partition),
    ],
)
def test_delete_records_refusals(
    shared_broker: BrokerProcess, wire: Connect, topic_suffix: str, offset: int, code: int
) -> None:
    topic = "kafkajs-delete-refused"
    if topic_suffix == "":
        _topic_with_records(shared_broker, topic)
    got = _delete_v1(wire(shared_broker.bootstrap), topic + topic_suffix, offset)
    assert (got.error_code, got.low_watermark) == (code, -1)


def test_delete_records_v2_flexible(shared_broker: BrokerProcess, wire: Connect) -> None:
    topic = "kafkajs-delete-records-v2"
    _topic_with_records(shared_broker, topic)
    client = wire(shared_broker.bootstrap)
    response: Any = client.call(
        dr2.DeleteRecordsRequest(
            topics=(
                dr2.DeleteRecordsTopic(
                    name=topic,  # type: ignore[arg-type]
                    partitions=(dr2.DeleteRecordsPartition(partition_index=0, offset=3),),  # type: ignore[arg-type]
                ),
            ),
            timeout=timedelta(seconds=5),  # type: ignore[arg-type]
        )
    )
    part = response.topics[0].partitions[0]
    assert (part.error_code, part.low_watermark) == (ErrorCode.none, 3)
    assert _earliest(client, topic) == 3
