"""Diagnose why a Kafka-compatible cluster is (not) usable from this machine.

:func:`diagnose` returns a :class:`Report` of plain-word :class:`Finding`\\ s; it never prints
(``flows doctor`` does). The steps follow the path a client takes, so the first failure is
the one to fix:

1. every bootstrap address: resolve, TCP connect, ApiVersions;
2. Metadata from the first that answered, then the same probe for every *advertised* broker
   address -- the classic misconfiguration is a listener that advertises a name or port
   clients cannot reach (``advertised.listeners``);
3. optionally, that a topic exists and every partition has a leader;
4. FindCoordinator for a test group, and a probe of the coordinator's address;
5. a produce/consume round trip on a scratch topic, timed in milliseconds.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
import uuid
from dataclasses import dataclass, field
from enum import StrEnum

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, for_code

from flows import _kafka_probe as wire
from flows._kafka_probe import Probe, ProbeStatus

SCRATCH_TOPIC = "flows-doctor"
TEST_GROUP = "flows-doctor"
COORDINATOR_NOT_AVAILABLE = 15


class Severity(StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"


@dataclass(frozen=True)
class Finding:
    """One check: what was checked, what happened, and (if not fine) how to fix it."""

    check: str
    severity: Severity
    message: str
    fix: str = ""


@dataclass
class Report:
    findings: list[Finding] = field(default_factory=list)
    round_trip_ms: float | None = None

    @property
    def ok(self) -> bool:
        return all(f.severity is not Severity.FAIL for f in self.findings)

    def add(self, check: str, severity: Severity, message: str, fix: str = "") -> None:
        self.findings.append(Finding(check, severity, message, fix))


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _error_name(code: int) -> str:
    cls = for_code(code)
    return str(getattr(cls, "message", cls.__name__))


def explain_bootstrap(p: Probe) -> tuple[str, str]:
    """(message, fix) for a bootstrap address that did not answer."""
    where = f"bootstrap {p.address}"
    if p.status is ProbeStatus.UNRESOLVABLE:
        return (
            f"{where} does not resolve from here ({p.detail})",
            "check the host name in --broker / FLOWS_BROKER (typo? DNS? /etc/hosts?)",
        )
    if p.status is ProbeStatus.REFUSED:
        return (
            f"{where} resolves to {', '.join(p.addresses)} but refuses connections",
            "is the broker running and listening on that port? start one with "
            "`flows broker start`, or fix the port in --broker / FLOWS_BROKER",
        )
    if p.status is ProbeStatus.TIMEOUT:
        return (
            f"{where} resolves to {', '.join(p.addresses)} but times out ({p.detail})",
            "a firewall or network route drops the connection; check that the port is open "
            "from this machine",
        )
    if p.status is ProbeStatus.NOT_KAFKA:
        return (
            f"{where} accepts connections but did not answer a Kafka ApiVersions request "
            f"({p.detail})",
            "point --broker at a PLAINTEXT Kafka listener (not a controller, TLS or SASL port)",
        )
    return (
        f"{where} is unreachable ({p.detail})",
        "check the network route to the broker from this machine",
    )


def explain_advertised(bootstrap: str, node_id: int, p: Probe, role: str = "broker") -> str:
    """One plain sentence about an advertised address that did not answer, with the fix."""
    head = f"bootstrap {bootstrap} answered, but it advertises {role} {node_id} as {p.address}"
    advice = (
        "set advertised.listeners for this listener to an address clients can reach "
        f"(from here the listener answers as {bootstrap})"
    )
    if p.status is ProbeStatus.UNRESOLVABLE:
        return f"{head}, which does not resolve from here: {advice}"
    if p.status is ProbeStatus.REFUSED:
        return (
            f"{head}, which resolves to {', '.join(p.addresses)} but refuses connections "
            f"(wrong port, a port mapping, or another machine): {advice}"
        )
    if p.status is ProbeStatus.TIMEOUT:
        return (
            f"{head}, which resolves to {', '.join(p.addresses)} but times out "
            f"(a private or container-internal address?): {advice}"
        )
    if p.status is ProbeStatus.NOT_KAFKA:
        return f"{head}, which accepts connections but does not speak Kafka there: {advice}"
    return f"{head}, which is unreachable ({p.detail}): {advice}"


async def diagnose(
    bootstrap: list[tuple[str, int]],
    *,
    topic: str | None = None,
    scratch_topic: str = SCRATCH_TOPIC,
    timeout_s: float = 5.0,
    round_trip: bool = True,
) -> Report:
    """Run every check against ``bootstrap`` addresses and return the findings."""
    report = Report()
    answered: tuple[Probe, wire.Connection] | None = None
    for host, port in bootstrap:
        p, conn = await wire.probe(host, port, timeout_s)
        if p.ok and conn is not None:
            report.add(
                "bootstrap", Severity.OK, f"bootstrap {p.address} answers ({p.elapsed_ms:.1f} ms)"
            )
            if answered is None:
                answered = (p, conn)
            else:
                await conn.close()
        else:
            message, fix = explain_bootstrap(p)
            report.add("bootstrap", Severity.FAIL, message, fix)
    if answered is None:
        return report
    first, conn = answered
    try:
        healthy = await _check_cluster(report, first, conn, topic, timeout_s)
    finally:
        await conn.close()
    if healthy and round_trip:
        await _round_trip(
            report, ",".join(f"{h}:{p}" for h, p in bootstrap), scratch_topic, timeout_s
        )
    return report


async def _check_cluster(
    report: Report, first: Probe, conn: wire.Connection, topic: str | None, timeout_s: float
) -> bool:
    """Metadata, advertised addresses, topic and coordinator; True when clients can work."""
    version = wire.pick_version(first.api_versions, wire.API_METADATA, range(0, 6))
    if version is None:
        report.add(
            "metadata",
            Severity.FAIL,
            f"bootstrap {first.address} does not support a Metadata version we know",
            "use a Kafka-compatible broker speaking Metadata v0..v5",
        )
        return False
    try:
        meta = await wire.metadata(conn, version, [topic] if topic else [], timeout_s)
    except (wire.ProtocolError, OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
        report.add(
            "metadata",
            Severity.FAIL,
            f"bootstrap {first.address} did not answer a Metadata request ({exc})",
            "check the broker's log",
        )
        return False
    if not meta.brokers:
        report.add(
            "metadata",
            Severity.FAIL,
            f"bootstrap {first.address} reports no brokers",
            "the cluster has no live broker; check the brokers' logs",
        )
        return False
    healthy = True
    probes: dict[tuple[str, int], Probe] = {}
    for b in sorted(meta.brokers, key=lambda b: b.node_id):
        p, bconn = await wire.probe(b.host, b.port, timeout_s)
        probes[(b.host, b.port)] = p
        if bconn is not None:
            await bconn.close()
        if not p.ok:
            healthy = False
            report.add("advertised", Severity.FAIL, explain_advertised(first.address, b.node_id, p))
        elif _is_loopback(b.host) and not _is_loopback(first.host):
            report.add(
                "advertised",
                Severity.WARN,
                f"broker {b.node_id} is advertised as {p.address}, a loopback address: "
                "it answers here, but clients on other machines cannot use it",
                "set advertised.listeners to a name or IP other machines can reach",
            )
        else:
            report.add(
                "advertised",
                Severity.OK,
                f"broker {b.node_id} advertised as {p.address} answers ({p.elapsed_ms:.1f} ms)",
            )
    if topic:
        healthy = _check_topic(report, meta, topic) and healthy
    healthy = await _check_coordinator(report, first, conn, probes, timeout_s) and healthy
    return healthy


def _check_topic(report: Report, meta: wire.Metadata, topic: str) -> bool:
    info = next((t for t in meta.topics if t.name == topic), None)
    if info is None or info.error_code == 3:
        report.add(
            "topic",
            Severity.FAIL,
            f"topic {topic!r} does not exist",
            f"create it with `flows topics create {topic}` (or check the name)",
        )
        return False
    if info.error_code:
        report.add(
            "topic",
            Severity.FAIL,
            f"topic {topic!r} cannot be used: {_error_name(info.error_code)}",
            "check the broker's log",
        )
        return False
    leaderless = [p.partition for p in info.partitions if p.leader < 0]
    if leaderless:
        report.add(
            "topic",
            Severity.FAIL,
            f"topic {topic!r} partitions {leaderless} have no leader",
            "a broker holding them is down; bring it back or reassign the partitions",
        )
        return False
    under = [p.partition for p in info.partitions if len(p.isr) < len(p.replicas)]
    if under:
        report.add(
            "topic",
            Severity.WARN,
            f"topic {topic!r} partitions {under} are under-replicated",
            "a replica is behind or down; check the brokers",
        )
    report.add(
        "topic", Severity.OK, f"topic {topic!r} exists with {len(info.partitions)} partitions"
    )
    return True


async def _check_coordinator(
    report: Report,
    first: Probe,
    conn: wire.Connection,
    probes: dict[tuple[str, int], Probe],
    timeout_s: float,
) -> bool:
    version = wire.pick_version(first.api_versions, wire.API_FIND_COORDINATOR, range(0, 3))
    if version is None:
        report.add(
            "coordinator",
            Severity.FAIL,
            f"bootstrap {first.address} does not support FindCoordinator v0..v2",
            "consumer groups (and flows workers) need a broker with a group coordinator",
        )
        return False
    deadline = time.monotonic() + max(timeout_s, 5.0)
    try:
        while True:
            found = await wire.find_coordinator(conn, version, TEST_GROUP, timeout_s)
            if found.error_code != COORDINATOR_NOT_AVAILABLE or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)  # the offsets topic is being created
    except (wire.ProtocolError, OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
        report.add(
            "coordinator",
            Severity.FAIL,
            f"FindCoordinator for group {TEST_GROUP!r} got no answer ({exc})",
            "check the broker's log",
        )
        return False
    if found.error_code:
        report.add(
            "coordinator",
            Severity.FAIL,
            f"FindCoordinator for group {TEST_GROUP!r} failed: {_error_name(found.error_code)}",
            "check that the offsets topic (__consumer_offsets) can be created: enough "
            "brokers for offsets.topic.replication.factor",
        )
        return False
    p = probes.get((found.host, found.port))
    if p is None:
        p, cconn = await wire.probe(found.host, found.port, timeout_s)
        if cconn is not None:
            await cconn.close()
    if not p.ok:
        report.add(
            "coordinator",
            Severity.FAIL,
            explain_advertised(first.address, found.node_id, p, role="group coordinator"),
        )
        return False
    report.add(
        "coordinator",
        Severity.OK,
        f"group coordinator for {TEST_GROUP!r} is broker {found.node_id} at {p.address}",
    )
    return True


async def _round_trip(report: Report, bootstrap: str, topic: str, timeout_s: float) -> None:
    """Produce one record to ``topic`` and read it back; record the time in ms."""
    marker = uuid.uuid4().hex.encode()
    timeout_ms = int(max(timeout_s, 5.0) * 1000)
    common = {
        "bootstrap_servers": bootstrap,
        "client_id": "flows-doctor",
        "request_timeout_ms": timeout_ms,
    }
    admin = AIOKafkaAdminClient(**common)
    producer = AIOKafkaProducer(acks="all", **common)
    consumer = AIOKafkaConsumer(enable_auto_commit=False, **common)
    step = f"creating the scratch topic {topic!r}"
    try:
        await admin.start()
        brokers = (await admin.describe_cluster())["brokers"]
        rf = max(1, min(3, len(brokers)))
        response = await admin.create_topics([NewTopic(topic, 1, rf)])
        for entry in response.to_object()["topic_errors"]:
            if entry["error_code"] not in (0, 36):  # 36: TOPIC_ALREADY_EXISTS
                raise for_code(entry["error_code"])(entry.get("error_message") or "")
        step = f"producing to {topic!r}"
        await producer.start()
        await consumer.start()
        tp = TopicPartition(topic, 0)
        started = time.perf_counter()
        sent = await producer.send_and_wait(topic, marker, partition=0)
        step = f"reading back offset {sent.offset} of {topic!r} partition 0"
        consumer.assign([tp])
        consumer.seek(tp, sent.offset)
        async with asyncio.timeout(timeout_ms / 1000):
            while True:
                batch = await consumer.getmany(tp, timeout_ms=200)
                if any(r.value == marker for r in batch.get(tp, [])):
                    break
        elapsed = (time.perf_counter() - started) * 1000
    except (KafkaError, OSError, TimeoutError) as exc:
        detail = str(exc) or type(exc).__name__
        if isinstance(exc, TimeoutError):
            detail = f"no answer within {timeout_ms / 1000:g}s"
        report.add(
            "round-trip",
            Severity.FAIL,
            f"round trip failed while {step}: {detail}",
            "check the broker's log; the checks above passed, so the addresses are fine",
        )
        return
    finally:
        for client in (consumer, producer):
            await client.stop()
        await admin.close()
    report.round_trip_ms = elapsed
    report.add(
        "round-trip",
        Severity.OK,
        f"produced and consumed one record on {topic!r} in {elapsed:.1f} ms",
    )
