"""``flows doctor`` against real brokers: healthy, misadvertised, absent, not Kafka."""

from __future__ import annotations

import asyncio
import re

from cli_support import BrokerLauncher, Flows, RunningBroker, free_port

from flows._kafka_probe import Probe, ProbeStatus
from flows.doctor import Severity, diagnose, explain_advertised, explain_bootstrap


def test_healthy_broker_reports_round_trip(flows_cli: Flows, broker: RunningBroker) -> None:
    r = flows_cli("doctor", "--broker", broker.url)
    assert r.exit_code == 0, r.stdout
    lines = r.stdout.splitlines()
    assert lines[0].startswith(f"ok    bootstrap {broker.address} answers (")
    assert any(
        line.startswith(f"ok    broker 1 advertised as {broker.address} answers") for line in lines
    )
    assert any(
        line.startswith("ok    group coordinator for 'flows-doctor' is broker 1") for line in lines
    )
    assert re.fullmatch(r"all checks passed; produce/consume round trip \d+\.\d ms", lines[-1])
    assert "FAIL" not in r.stdout


def test_missing_topic_is_a_problem(flows_cli: Flows, broker: RunningBroker) -> None:
    r = flows_cli("doctor", "--broker", broker.url, "--topic", "nope", "--no-round-trip")
    assert r.exit_code == 1
    assert "FAIL  topic 'nope' does not exist\n" in r.stdout
    assert "      fix: create it with `flows topics create nope`" in r.stdout
    assert r.stdout.splitlines()[-1] == "1 problem found"


def test_existing_topic_is_fine(flows_cli: Flows, broker: RunningBroker) -> None:
    flows_cli("topics", "create", "present", "--partitions", "2", "--broker", broker.url)
    r = flows_cli("doctor", "--broker", broker.url, "--topic", "present", "--no-round-trip")
    assert r.exit_code == 0, r.stdout
    assert "ok    topic 'present' exists with 2 partitions" in r.stdout


def test_unresolvable_advertised_listener(flows_cli: Flows, launch: BrokerLauncher) -> None:
    port = free_port()
    bad = launch(port=port, advertised=f"PLAINTEXT://no-such-host.invalid:{port}")
    r = flows_cli("doctor", "--broker", bad.url)
    assert r.exit_code == 1
    expected = (
        f"FAIL  bootstrap 127.0.0.1:{port} answered, but it advertises broker 1 as "
        f"no-such-host.invalid:{port}, which does not resolve from here: set "
        "advertised.listeners for this listener to an address clients can reach "
        f"(from here the listener answers as 127.0.0.1:{port})"
    )
    assert expected in r.stdout.splitlines()
    assert "round trip" not in r.stdout  # pointless until the listener is fixed


def test_advertised_port_refuses(flows_cli: Flows, launch: BrokerLauncher) -> None:
    port, closed = free_port(), free_port()
    bad = launch(port=port, advertised=f"PLAINTEXT://127.0.0.1:{closed}")
    r = flows_cli("doctor", "--broker", bad.url, "--no-round-trip")
    assert r.exit_code == 1
    assert (
        f"advertises broker 1 as 127.0.0.1:{closed}, which resolves to 127.0.0.1 but refuses "
        "connections" in r.stdout
    )
    assert "set advertised.listeners for this listener" in r.stdout


def test_nothing_listening(flows_cli: Flows) -> None:
    port = free_port()
    r = flows_cli("doctor", "--broker", f"kafka://127.0.0.1:{port},no-such-host.invalid:9092")
    assert r.exit_code == 1
    lines = r.stdout.splitlines()
    assert (
        lines[0]
        == f"FAIL  bootstrap 127.0.0.1:{port} resolves to 127.0.0.1 but refuses connections"
    )
    assert lines[2].startswith(
        "FAIL  bootstrap no-such-host.invalid:9092 does not resolve from here"
    )
    assert lines[-1] == "2 problems found"


async def test_peer_that_is_not_kafka() -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(garbage, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        report = await diagnose([("127.0.0.1", port)], timeout_s=2)
    assert not report.ok
    [finding] = report.findings
    assert finding.severity is Severity.FAIL
    assert finding.message.startswith(
        f"bootstrap 127.0.0.1:{port} accepts connections but did not answer a Kafka ApiVersions"
    )
    assert "PLAINTEXT Kafka listener" in finding.fix


def test_explanations_distinguish_every_failure() -> None:
    def probe(status: ProbeStatus) -> Probe:
        return Probe("kafka-3", 39092, status, "detail", addresses=["10.0.0.3"])

    texts = {s: explain_advertised("127.0.0.1:9092", 3, probe(s)) for s in ProbeStatus}
    assert texts[ProbeStatus.UNRESOLVABLE] == (
        "bootstrap 127.0.0.1:9092 answered, but it advertises broker 3 as kafka-3:39092, which "
        "does not resolve from here: set advertised.listeners for this listener to an address "
        "clients can reach (from here the listener answers as 127.0.0.1:9092)"
    )
    assert "resolves to 10.0.0.3 but refuses connections" in texts[ProbeStatus.REFUSED]
    assert "resolves to 10.0.0.3 but times out" in texts[ProbeStatus.TIMEOUT]
    assert "does not speak Kafka" in texts[ProbeStatus.NOT_KAFKA]
    assert "unreachable" in texts[ProbeStatus.UNREACHABLE]
    msg, fix = explain_bootstrap(probe(ProbeStatus.TIMEOUT))
    assert msg.startswith("bootstrap kafka-3:39092 resolves to 10.0.0.3 but times out")
    assert "firewall" in fix


def test_invalid_timeout(flows_cli: Flows) -> None:
    r = flows_cli("doctor", "--broker", "kafka://127.0.0.1:9", "--timeout", "0")
    assert r.exit_code == 1
    assert r.stderr == "error: invalid --timeout 0.0: must be more than 0 seconds\n"
