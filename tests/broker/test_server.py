"""Error responses built from a request: every item the client asked about gets the code."""

from __future__ import annotations

import datetime
from typing import Any

from kio.schema.create_topics.v7.request import CreatableTopic, CreateTopicsRequest
from kio.schema.fetch.v4.request import FetchPartition, FetchRequest, FetchTopic
from kio.schema.metadata.v1.request import MetadataRequest, MetadataRequestTopic
from kio.schema.produce.v9.request import PartitionProduceData, ProduceRequest, TopicProduceData

from broker.context import RequestContext
from broker.errors import ErrorCode
from broker.server import error_response


def _ctx(api_key: int, version: int) -> RequestContext:
    return RequestContext(
        node=None,  # type: ignore[arg-type]
        api_key=api_key,
        api_version=version,
        correlation_id=1,
        client_id=None,
        listener="PLAINTEXT",
        peer="test",
    )


def test_produce_error_covers_every_partition() -> None:
    request: Any = ProduceRequest(
        transactional_id=None,
        acks=-1,  # type: ignore[arg-type]
        timeout=datetime.timedelta(seconds=1),  # type: ignore[arg-type]
        topic_data=(
            TopicProduceData(
                name="t",  # type: ignore[arg-type]
                partition_data=(
                    PartitionProduceData(index=0, records=b""),  # type: ignore[arg-type]
                    PartitionProduceData(index=3, records=b""),  # type: ignore[arg-type]
                ),
            ),
        ),
    )
    response: Any = error_response(_ctx(0, 9), request, ErrorCode.not_leader_or_follower, "x")
    (topic,) = response.responses
    assert topic.name == "t"
    assert [(p.index, p.error_code) for p in topic.partition_responses] == [
        (0, ErrorCode.not_leader_or_follower),
        (3, ErrorCode.not_leader_or_follower),
    ]


def test_fetch_error_covers_every_partition() -> None:
    request: Any = FetchRequest(
        replica_id=-1,  # type: ignore[arg-type]
        max_wait=datetime.timedelta(milliseconds=1),  # type: ignore[arg-type]
        min_bytes=1,  # type: ignore[arg-type]
        max_bytes=1,  # type: ignore[arg-type]
        isolation_level=0,  # type: ignore[arg-type]
        topics=(
            FetchTopic(
                topic="t",  # type: ignore[arg-type]
                partitions=(
                    FetchPartition(partition=2, fetch_offset=0, partition_max_bytes=1),  # type: ignore[arg-type]
                ),
            ),
        ),
    )
    response: Any = error_response(_ctx(1, 4), request, ErrorCode.unknown_server_error, None)
    (topic,) = response.responses
    assert topic.topic == "t"
    assert [(p.partition_index, p.error_code) for p in topic.partitions] == [
        (2, ErrorCode.unknown_server_error)
    ]


def test_metadata_and_create_topics_errors() -> None:
    request: Any = MetadataRequest(topics=(MetadataRequestTopic(name="a"),))  # type: ignore[arg-type]
    response: Any = error_response(_ctx(3, 1), request, ErrorCode.unknown_server_error, None)
    assert [(t.name, t.error_code) for t in response.topics] == [
        ("a", ErrorCode.unknown_server_error)
    ]
    create: Any = CreateTopicsRequest(
        topics=(
            CreatableTopic(
                name="n",  # type: ignore[arg-type]
                num_partitions=1,  # type: ignore[arg-type]
                replication_factor=1,  # type: ignore[arg-type]
                assignments=(),
                configs=(),
            ),
        ),
        timeout=datetime.timedelta(seconds=1),  # type: ignore[arg-type]
        validate_only=False,
    )
    response = error_response(_ctx(19, 7), create, ErrorCode.invalid_request, "why")
    (topic,) = response.topics
    assert (topic.name, topic.error_code, topic.error_message) == (
        "n",
        ErrorCode.invalid_request,
        "why",
    )
