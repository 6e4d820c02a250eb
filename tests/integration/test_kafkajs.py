"""kafkajs 2.x, unmodified, against the included broker.

The Node scripts in ``kafkajs/`` do the client work and print a JSON summary; this module
installs their pinned dependency when needed (``npm ci``), runs them against a broker
started by the fixture, and checks the results exactly:

- ``produce_consume.js``: admin creates 3-partition topics; 10,000 keyed records with
  headers and explicit timestamps per codec (none, gzip; kafkajs has no built-in
  snappy/lz4/zstd) come back through a consumer group byte-exact, in per-partition
  order at offsets 0..n-1, with the group's committed offsets at the log end.
- ``group.js``: two members split the partitions (each partition owned by exactly one
  member, and every record read once, by its owner); after one leaves, the other owns
  every partition and continues at the right offsets.

The record generator below mirrors ``makeRecord`` in ``kafkajs/common.js``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import BrokerFactory

KAFKAJS_DIR = Path(__file__).resolve().parent / "kafkajs"
N_RECORDS = 10_000
N_GROUP = 3_000
N_KEYS = 500
PARTITIONS = 3
NPM_TIMEOUT_S = 300
SCRIPT_TIMEOUT_S = 240

pytestmark = pytest.mark.skipif(
    shutil.which("node") is None, reason="node is not installed; the kafkajs checks need Node.js"
)


@pytest.fixture(scope="module")
def kafkajs_ready() -> Path:
    """The script directory with ``node_modules`` installed from the lock file."""
    if (KAFKAJS_DIR / "node_modules" / "kafkajs").is_dir():
        return KAFKAJS_DIR
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("npm is not installed, so kafkajs cannot be installed for these checks")
    try:
        done = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"],
            cwd=KAFKAJS_DIR,
            capture_output=True,
            text=True,
            timeout=NPM_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"'npm ci' in {KAFKAJS_DIR.name}/ did not finish in {NPM_TIMEOUT_S}s")
    if done.returncode != 0:
        pytest.fail(f"'npm ci' failed with code {done.returncode}:\n{done.stderr[-4000:]}")
    return KAFKAJS_DIR


def run_script(directory: Path, *args: str) -> dict[str, Any]:
    """Run one script; its last stdout line is the JSON summary."""
    node = shutil.which("node")
    assert node is not None
    done = subprocess.run(
        [node, *args],
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=SCRIPT_TIMEOUT_S,
        env={
            "PATH": str(Path(node).parent),
            "KAFKAJS_NO_PARTITIONER_WARNING": "1",
            "KAFKAJS_LOG_LEVEL": "WARN",
        },
    )
    lines = done.stdout.strip().splitlines()
    summary = json.loads(lines[-1]) if lines else {"ok": False, "error": "no output"}
    assert done.returncode == 0 and summary.get("ok"), (
        f"{args[0]} failed (code {done.returncode}): {summary.get('error')}\n"
        f"stderr tail:\n{done.stderr[-4000:]}"
    )
    return summary


def expected_record(i: int, base_timestamp: int) -> dict[str, Any]:
    """Record ``i`` as ``dumpMessage`` prints it (bytes as hex)."""
    value: bytes | None
    if i % 1000 == 999:
        value = None
    elif i % 1000 == 500:
        value = b""
    else:
        value = f"value-{i:06d}-".encode() + bytes([i % 256, 0, 255, 10]) + b"y" * (i % 41)
    headers = {"seq": [str(i).encode().hex()], "bin": [bytes([0, i % 256, 255]).hex()]}
    if i % 3 == 0:
        headers["multi"] = [b"a".hex(), bytes([0xFE, i % 256]).hex()]
    return {
        "key": f"key-{i % N_KEYS:04d}".encode().hex(),
        "value": None if value is None else value.hex(),
        "headers": headers,
        "timestamp": base_timestamp + i,
    }


def seq_of(record: dict[str, Any]) -> int:
    return int(bytes.fromhex(record["headers"]["seq"][0]))


def check_partition_order(by_partition: dict[int, list[tuple[int, int]]], first: dict[int, int]):
    """Per partition: offsets contiguous from ``first[p]``, produce order (seq) kept."""
    for p, rows in by_partition.items():
        offsets = [o for o, _ in rows]
        seqs = [s for _, s in rows]
        start = first.get(p, 0)
        assert offsets == list(range(start, start + len(rows))), f"partition {p} offsets"
        assert seqs == sorted(seqs), f"partition {p} lost produce order"


def test_kafkajs_produce_consume_byte_exact(
    kafkajs_ready: Path, start_broker: BrokerFactory, tmp_path: Path
) -> None:
    broker = start_broker()
    summary = run_script(
        kafkajs_ready, "produce_consume.js", broker.bootstrap, str(tmp_path), str(N_RECORDS)
    )
    assert summary["created"] is True
    assert summary["metadataPartitions"] == {"kafkajs-none": PARTITIONS, "kafkajs-gzip": PARTITIONS}
    assert "kafkajs-produce-consume" in summary["groups"]
    base = summary["baseTimestamp"]
    for codec in ("none", "gzip"):
        topic = f"kafkajs-{codec}"
        records = json.loads((tmp_path / f"{codec}.json").read_text())
        assert len(records) == N_RECORDS, codec
        seen: set[int] = set()
        by_partition: dict[int, list[tuple[int, int]]] = defaultdict(list)
        partition_of_key: dict[str, set[int]] = defaultdict(set)
        for rec in records:
            i = seq_of(rec)
            assert i not in seen, f"{codec}: record {i} read twice"
            seen.add(i)
            got = {k: rec[k] for k in ("key", "value", "headers", "timestamp")}
            assert got == expected_record(i, base), f"{codec}: record {i} differs"
            by_partition[rec["partition"]].append((rec["offset"], i))
            partition_of_key[rec["key"]].add(rec["partition"])
        assert seen == set(range(N_RECORDS))
        assert all(len(ps) == 1 for ps in partition_of_key.values()), "a key in two partitions"
        check_partition_order(by_partition, {})
        counts = {str(p): len(rows) for p, rows in by_partition.items()}
        assert summary["endOffsets"][topic] == counts
        assert summary["committed"][topic] == counts


def test_kafkajs_group_members_split_partitions(
    kafkajs_ready: Path, start_broker: BrokerFactory
) -> None:
    broker = start_broker()
    summary = run_script(kafkajs_ready, "group.js", broker.bootstrap, str(N_GROUP))

    phase1 = summary["phase1"]
    owned = phase1["assignment"]
    assert owned["a"] and owned["b"], "each member should own at least one partition"
    assert sorted(owned["a"] + owned["b"]) == list(range(PARTITIONS))
    by_partition: dict[int, list[tuple[int, int]]] = defaultdict(list)
    seqs: list[int] = []
    for member, rows in phase1["consumed"].items():
        for partition, offset, seq in rows:
            assert partition in owned[member], (
                f"{member} read partition {partition} it does not own"
            )
            by_partition[partition].append((offset, seq))
            seqs.append(seq)
    assert sorted(seqs) == list(range(N_GROUP)), "phase 1: each record read exactly once"
    check_partition_order(by_partition, {})
    phase1_end = {p: len(rows) for p, rows in by_partition.items()}

    phase2 = summary["phase2"]
    assert phase2["assignment"]["a"] == list(range(PARTITIONS))
    assert phase2["consumed"]["b"] == [], "b read after leaving the group"
    by_partition = defaultdict(list)
    for partition, offset, seq in phase2["consumed"]["a"]:
        by_partition[partition].append((offset, seq))
    assert sorted(s for rows in by_partition.values() for _, s in rows) == list(
        range(N_GROUP, 2 * N_GROUP)
    ), "phase 2: each new record read exactly once, nothing re-read"
    check_partition_order(by_partition, phase1_end)


def test_kafkajs_admin_idempotence_and_transactions(
    kafkajs_ready: Path, start_broker: BrokerFactory
) -> None:
    broker = start_broker()
    s = run_script(kafkajs_ready, "admin_txn.js", broker.bootstrap)
    assert s["cluster"]["brokers"] == [{"nodeId": 1, "host": broker.host, "port": broker.port}]
    assert s["cluster"]["controller"] == 1
    assert (s["created"], s["createdAgain"]) == (True, False)
    assert s["partitionsAfterGrow"] == 4
    assert s["configsBefore"] == {"cleanup.policy": "compact", "retention.ms": "604800000"}
    # AlterConfigs replaces a topic's whole config: unnamed keys return to their defaults.
    assert s["configsAfter"] == {"cleanup.policy": "delete", "retention.ms": "86400000"}
    assert s["idempotentBaseOffsets"] == [0, 3, 6]
    assert s["offsetForTimestamp"] == 4
    assert s["txnCommittedOffset"] == 5
    assert s["describedGroup"] == {
        "state": "Stable",
        "members": 1,
        "protocol": "RoundRobinAssigner",
    }
    assert s["readCommitted"] == [*range(9), 100], "aborted record visible, or records lost"
    assert s["endOffset"] == 13  # 9 records, 2 transactional records, 2 control markers
    assert s["offsetAfterSet"] == 2
    assert s["groupsBeforeDelete"] == ["adm-reader", "adm-txn-group"]
    assert s["deletedGroups"] == [["adm-reader", 0]]
    assert s["groupsAfterDelete"] == ["adm-txn-group"]
    assert s["lowAfterDeleteRecords"] == 4
    assert s["topicsAfterDelete"] == []
