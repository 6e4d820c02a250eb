"""The group handlers at every advertised version: requests in, responses that encode.

Each response is written with kio's serializer, so a field the version lacks or a value
of the wrong type fails here rather than on a client's socket.
"""

from __future__ import annotations

import io
from typing import Any

import pytest
from group_fakes import MemoryLogs
from kio.index import load_request_schema
from kio.serial import entity_writer

from broker.config import BrokerConfig
from broker.context import RequestContext
from broker.group import GroupCoordinator
from broker.handlers import REGISTRY, load_all
from broker.protocol import build, field_names

load_all()


class FakeNode:
    def __init__(self, groups: GroupCoordinator | None) -> None:
        self.groups = groups
        self.config = BrokerConfig({"node.id": "7"})

    def advertised(self, listener: str) -> tuple[str, int]:
        return "broker.example", 19092


@pytest.fixture
async def node(logs: MemoryLogs) -> Any:
    config = BrokerConfig(
        {"group.initial.rebalance.delay.ms": "0", "offsets.topic.num.partitions": "1"}
    )
    groups = GroupCoordinator(logs, config)
    await groups.start()
    yield FakeNode(groups)
    await groups.stop()


async def call(node: Any, api_key: int, version: int, values: dict[str, Any]) -> Any:
    request = build(load_request_schema(api_key, version), values)
    ctx = RequestContext(node, api_key, version, 1, "client-1", "PLAINTEXT", "127.0.0.1:5555")
    response = await REGISTRY[api_key].handler(ctx, request)
    entity_writer(type(response))(io.BytesIO(), response)  # must encode
    return response


def versions(api_key: int) -> range:
    spec = REGISTRY[api_key]
    return range(spec.min_version, spec.max_version + 1)


async def test_advertised_ranges() -> None:
    assert {
        k: (REGISTRY[k].min_version, REGISTRY[k].max_version)
        for k in (8, 9, 10, 11, 12, 13, 14, 15, 16, 42)
    } == {
        8: (2, 8),
        9: (1, 8),
        10: (0, 4),
        11: (0, 9),
        12: (0, 4),
        13: (0, 5),
        14: (0, 5),
        15: (0, 5),
        16: (0, 4),
        42: (0, 2),
    }


@pytest.mark.parametrize("version", range(0, 5))
async def test_find_coordinator(node: Any, version: int) -> None:
    if version >= 4:
        resp = await call(node, 10, version, {"key_type": 1, "coordinator_keys": ["a", "b"]})
        assert [(c.key, c.node_id, c.host, c.port) for c in resp.coordinators] == [
            ("a", 7, "broker.example", 19092),
            ("b", 7, "broker.example", 19092),
        ]
        return
    resp = await call(node, 10, version, {"key": "g", "key_type": 0})
    assert (resp.error_code, resp.node_id, resp.host, resp.port) == (0, 7, "broker.example", 19092)
    if version >= 1:
        bad = await call(node, 10, version, {"key": "g", "key_type": 9})
        assert bad.error_code.name == "invalid_request"


async def test_find_coordinator_without_coordinator() -> None:
    resp = await call(FakeNode(None), 10, 3, {"key": "g", "key_type": 0})
    assert resp.error_code.name == "coordinator_not_available"


@pytest.mark.parametrize("version", range(0, 10))
async def test_join_sync_heartbeat_leave_every_version(node: Any, version: int) -> None:
    group = f"g{version}"
    join = {
        "group_id": group,
        "session_timeout_ms": 10_000,
        "rebalance_timeout_ms": 10_000,
        "member_id": "",
        "protocol_type": "consumer",
        "protocols": [{"name": "range", "metadata": b"m"}],
    }
    resp = await call(node, 11, version, join)
    if version >= 4:
        assert resp.error_code.name == "member_id_required"
        resp = await call(node, 11, version, {**join, "member_id": resp.member_id})
    assert resp.error_code == 0 and resp.leader == resp.member_id and resp.generation_id == 1
    assert [bytes(m.metadata) for m in resp.members] == [b"m"]
    member = resp.member_id
    sync_version = min(version, 5)
    sync = await call(
        node,
        14,
        sync_version,
        {
            "group_id": group,
            "generation_id": 1,
            "member_id": member,
            "protocol_type": "consumer",
            "protocol_name": "range",
            "assignments": [{"member_id": member, "assignment": b"A"}],
        },
    )
    assert sync.error_code == 0 and bytes(sync.assignment) == b"A"
    hb = await call(
        node, 12, min(version, 4), {"group_id": group, "generation_id": 1, "member_id": member}
    )
    assert hb.error_code == 0
    stale = await call(
        node, 12, min(version, 4), {"group_id": group, "generation_id": 0, "member_id": member}
    )
    assert stale.error_code.name == "illegal_generation"
    leave_version = min(version, 5)
    if leave_version >= 3:
        left = await call(
            node,
            13,
            leave_version,
            {"group_id": group, "members": [{"member_id": member}, {"member_id": "ghost"}]},
        )
        assert [m.error_code.name for m in left.members] == ["none", "unknown_member_id"]
    else:
        left = await call(node, 13, leave_version, {"group_id": group, "member_id": member})
        assert left.error_code == 0


@pytest.mark.parametrize("version", range(2, 9))
async def test_offset_commit_and_fetch_every_version(node: Any, version: int) -> None:
    commit = await call(
        node,
        8,
        version,
        {
            "group_id": "og",
            "generation_id_or_member_epoch": -1,
            "member_id": "",
            "topics": [
                {
                    "name": "t",
                    "partitions": [
                        {"partition_index": 0, "committed_offset": 11, "committed_metadata": "x"},
                        {"partition_index": 9, "committed_offset": 1},
                    ],
                }
            ],
        },
    )
    codes = [p.error_code.name for p in commit.topics[0].partitions]
    assert codes == ["none", "unknown_topic_or_partition"]
    for fetch_version in (1, version, 8):
        if fetch_version >= 8:
            resp = await call(
                node,
                9,
                8,
                {
                    "groups": [
                        {"group_id": "og", "topics": [{"name": "t", "partition_indexes": [0, 1]}]}
                    ]
                },
            )
            partitions = resp.groups[0].topics[0].partitions
        else:
            resp = await call(
                node,
                9,
                fetch_version,
                {"group_id": "og", "topics": [{"name": "t", "partition_indexes": [0, 1]}]},
            )
            partitions = resp.topics[0].partitions
        assert [(p.committed_offset, p.metadata) for p in partitions] == [(11, "x"), (-1, "")]


@pytest.mark.parametrize("version", range(0, 6))
async def test_describe_list_delete_every_version(node: Any, version: int) -> None:
    await call(
        node,
        8,
        2,
        {
            "group_id": "dg",
            "generation_id_or_member_epoch": -1,
            "member_id": "",
            "topics": [
                {"name": "t", "partitions": [{"partition_index": 0, "committed_offset": 1}]}
            ],
        },
    )
    described = await call(node, 15, version, {"groups": ["dg", ""]})
    states = [(g.group_id, g.error_code.name, g.group_state) for g in described.groups]
    assert states == [("dg", "none", "Empty"), ("", "invalid_group_id", "")]
    listed = await call(node, 16, min(version, 4), {})
    assert listed.error_code == 0
    if "states_filter" in field_names(load_request_schema(16, min(version, 4))):
        filtered = await call(node, 16, 4, {"states_filter": ["Stable"]})
        assert filtered.groups == ()
    deleted = await call(node, 42, min(version, 2), {"groups_names": ["nope"]})
    assert deleted.results[0].error_code.name == "group_id_not_found"
