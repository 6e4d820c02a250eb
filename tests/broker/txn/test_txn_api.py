"""The producer-id and transaction APIs on the wire, against a real broker process."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from kio.index import load_request_schema
from kio.schema.errors import ErrorCode

from broker.log.records import Record, build_batch
from broker.protocol import build
from tests.broker.conftest import BrokerProcess, WireClient

Connect = Callable[[str], WireClient]


@pytest.fixture
def client(shared_broker: BrokerProcess, wire: Connect) -> WireClient:
    return wire(shared_broker.bootstrap)


def call(client: WireClient, api_key: int, version: int, **fields: Any) -> Any:
    return client.call(build(load_request_schema(api_key, version), fields))


def init_pid(client: WireClient, txn_id: str | None, version: int = 4, timeout: int = 60000) -> Any:
    return call(
        client,
        22,
        version,
        transactional_id=txn_id,
        transaction_timeout_ms=timeout,
        producer_id=-1,
        producer_epoch=-1,
    )


def create_topic(client: WireClient, name: str) -> None:
    resp = call(
        client,
        19,
        5,
        topics=[{"name": name, "num_partitions": 1, "replication_factor": 1}],
        timeout_ms=10000,
    )
    assert resp.topics[0].error_code == ErrorCode.none


def produce(client: WireClient, topic: str, batch: bytes) -> Any:
    resp = call(
        client,
        0,
        8,
        acks=-1,
        timeout_ms=10000,
        topic_data=[{"name": topic, "partition_data": [{"index": 0, "records": batch}]}],
    )
    return resp.responses[0].partition_responses[0]


def batch(pid: int, epoch: int, seq: int, n: int = 2, txn: bool = False) -> bytes:
    recs = [Record(offset=i, timestamp=1000, key=None, value=b"v") for i in range(n)]
    return build_batch(
        recs,
        base_offset=0,
        producer_id=pid,
        producer_epoch=epoch,
        base_sequence=seq,
        is_transactional=txn,
    )


@pytest.mark.parametrize("version", [0, 2, 4])
def test_idempotent_init_producer_id(client: WireClient, version: int) -> None:
    resp = init_pid(client, None, version)
    assert resp.error_code == ErrorCode.none
    assert resp.producer_id >= 0 and resp.producer_epoch == 0


def test_transaction_timeout_above_the_maximum(client: WireClient) -> None:
    resp = init_pid(client, "tx-too-long", timeout=900001)
    assert resp.error_code == ErrorCode.invalid_transaction_timeout


def test_idempotent_produce_dedupes_and_checks_sequences(client: WireClient) -> None:
    topic = f"idem-{uuid.uuid4().hex[:8]}"
    create_topic(client, topic)
    pid = init_pid(client, None).producer_id
    assert produce(client, topic, batch(pid, 0, 0)).base_offset == 0
    assert produce(client, topic, batch(pid, 0, 2)).base_offset == 2
    retry = produce(client, topic, batch(pid, 0, 0))
    assert (retry.error_code, retry.base_offset) == (ErrorCode.none, 0)
    gap = produce(client, topic, batch(pid, 0, 9))
    assert gap.error_code == ErrorCode.out_of_order_sequence_number
    unknown = produce(client, topic, batch(pid + 100, 0, 5))
    assert unknown.error_code == ErrorCode.unknown_producer_id


@pytest.mark.parametrize(("version", "code"), [(1, 47), (3, 90)])
def test_fenced_producer_code_depends_on_version(
    client: WireClient, version: int, code: int
) -> None:
    txn_id = f"tx-fence-{version}"
    old = init_pid(client, txn_id)
    new = init_pid(client, txn_id)
    assert new.producer_epoch == old.producer_epoch + 1
    resp = call(
        client,
        26,
        version,
        transactional_id=txn_id,
        producer_id=old.producer_id,
        producer_epoch=old.producer_epoch,
        committed=True,
    )
    assert resp.error_code == code


def test_add_partitions_errors(client: WireClient) -> None:
    first = init_pid(client, "tx-add")
    fields = {
        "v3_and_below_transactional_id": "tx-add",
        "v3_and_below_producer_id": first.producer_id,
        "v3_and_below_producer_epoch": first.producer_epoch,
        "v3_and_below_topics": [{"name": "no-such-topic", "partitions": [0]}],
    }
    resp = call(client, 24, 3, **fields)
    result = resp.results_by_topic_v3_and_below[0].results_by_partition[0]
    assert result.partition_error_code == ErrorCode.unknown_topic_or_partition
    fields["v3_and_below_transactional_id"] = "tx-never-initialized"
    resp = call(client, 24, 0, **fields)
    result = resp.results_by_topic_v3_and_below[0].results_by_partition[0]
    assert result.partition_error_code == ErrorCode.invalid_producer_id_mapping


def test_offsets_need_add_offsets_first(client: WireClient) -> None:
    first = init_pid(client, "tx-offsets")
    resp = call(
        client,
        28,
        3,
        transactional_id="tx-offsets",
        group_id="g-tx-offsets",
        producer_id=first.producer_id,
        producer_epoch=first.producer_epoch,
        generation_id=-1,
        member_id="",
        topics=[{"name": "x", "partitions": [{"partition_index": 0, "committed_offset": 1}]}],
    )
    assert resp.topics[0].partitions[0].error_code == ErrorCode.invalid_txn_state


def test_read_committed_fetch_lists_aborted_transactions(client: WireClient) -> None:
    topic = f"txn-{uuid.uuid4().hex[:8]}"
    create_topic(client, topic)
    first = init_pid(client, "tx-fetch")
    pid, epoch = first.producer_id, first.producer_epoch
    common = {"producer_id": pid, "producer_epoch": epoch, "transactional_id": "tx-fetch"}
    resp = call(
        client,
        24,
        3,
        v3_and_below_transactional_id="tx-fetch",
        v3_and_below_producer_id=pid,
        v3_and_below_producer_epoch=epoch,
        v3_and_below_topics=[{"name": topic, "partitions": [0]}],
    )
    assert resp.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code == 0
    assert produce(client, topic, batch(pid, epoch, 0, txn=True)).error_code == ErrorCode.none

    def fetch(isolation: int) -> Any:
        resp = call(
            client,
            1,
            11,
            max_wait_ms=0,
            min_bytes=0,
            max_bytes=1 << 20,
            isolation_level=isolation,
            topics=[
                {
                    "topic": topic,
                    "partitions": [
                        {"partition": 0, "fetch_offset": 0, "partition_max_bytes": 1 << 20}
                    ],
                }
            ],
        )
        return resp.responses[0].partitions[0]

    open_txn = fetch(1)
    assert open_txn.last_stable_offset == 0 and not open_txn.records
    list_offsets = call(
        client,
        2,
        4,
        replica_id=-1,
        isolation_level=1,
        topics=[{"name": topic, "partitions": [{"partition_index": 0, "timestamp": -1}]}],
    )
    assert list_offsets.topics[0].partitions[0].offset == 0
    assert call(client, 26, 3, **common, committed=False).error_code == ErrorCode.none
    done = fetch(1)
    assert done.last_stable_offset == done.high_watermark == 3
    assert [(a.producer_id, a.first_offset) for a in done.aborted_transactions] == [(pid, 0)]
    assert fetch(0).aborted_transactions is None


def test_describe_and_list_transactions(client: WireClient) -> None:
    first = init_pid(client, "tx-admin")
    resp = call(client, 65, 0, transactional_ids=["tx-admin", "tx-admin-missing"])
    found, missing = resp.transaction_states
    assert (found.error_code, found.transaction_state) == (ErrorCode.none, "Empty")
    assert found.producer_id == first.producer_id
    assert missing.error_code == ErrorCode.transactional_id_not_found
    listed = call(client, 66, 0, state_filters=["Empty", "Bogus"], producer_id_filters=[])
    assert "tx-admin" in {t.transactional_id for t in listed.transaction_states}
    assert list(listed.unknown_state_filters) == ["Bogus"]
