"""``flows topics ...`` against a real broker subprocess."""

from __future__ import annotations

import pytest
from cli_support import Flows, RunningBroker, free_port, run_flows_process


def _one_error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: "), stderr
    assert "Traceback" not in stderr
    return lines[0]


def test_create_list_describe_delete(flows_cli: Flows, broker: RunningBroker) -> None:
    b = ("--broker", broker.url)
    r = flows_cli("topics", "create", "orders", "--partitions", "3", *b)
    assert (r.exit_code, r.stdout) == (0, "created topic orders\n")
    r = flows_cli("topics", "create", "payments", "--config", "retention.ms=60000", *b)
    assert (r.exit_code, r.stdout) == (0, "created topic payments\n")

    r = flows_cli("topics", "list", *b)
    assert r.exit_code == 0
    names = r.stdout.splitlines()
    assert {"orders", "payments"} <= set(names)
    assert names == sorted(names)
    assert not any(n.startswith("__") for n in names)

    r = flows_cli("topics", "describe", "orders", *b)
    assert r.exit_code == 0, r.stderr
    assert "Topic: orders  PartitionCount: 3" in r.stdout
    for column in ("Partition", "Leader", "Replicas", "Isr"):
        assert column in r.stdout
    assert "Configs (set on the topic): none" in r.stdout

    r = flows_cli("topics", "describe", "payments", *b)
    assert r.exit_code == 0, r.stderr
    assert "retention.ms" in r.stdout and "60000" in r.stdout
    r = flows_cli("topics", "describe", "payments", "--all-configs", *b)
    assert r.exit_code == 0, r.stderr
    assert "retention.ms" in r.stdout and "cleanup.policy" in r.stdout

    r = flows_cli("topics", "delete", "orders", *b)
    assert (r.exit_code, r.stdout) == (0, "deleted topic orders\n")
    r = flows_cli("topics", "list", *b)
    assert "orders" not in r.stdout.splitlines()


def test_create_existing_topic(flows_cli: Flows, broker: RunningBroker) -> None:
    b = ("--broker", broker.url)
    assert flows_cli("topics", "create", "dup", *b).exit_code == 0
    r = flows_cli("topics", "create", "dup", *b)
    assert r.exit_code == 1
    assert _one_error_line(r.stderr) == (
        "error: cannot create topic 'dup': it already exists (add --if-not-exists to ignore)"
    )
    r = flows_cli("topics", "create", "dup", "--if-not-exists", *b)
    assert (r.exit_code, r.stdout) == (0, "topic dup already exists\n")


def test_alter_configs_and_partitions(flows_cli: Flows, broker: RunningBroker) -> None:
    b = ("--broker", broker.url)
    flows_cli("topics", "create", "alt", "--config", "retention.ms=1000", *b)
    r = flows_cli("topics", "alter", "alt", "--config", "segment.bytes=1048576", *b)
    assert (r.exit_code, r.stdout) == (0, "altered topic alt: segment.bytes=1048576\n"), r.stderr
    out = flows_cli("topics", "describe", "alt", *b).stdout
    assert "segment.bytes" in out and "retention.ms" in out  # earlier override kept

    r = flows_cli("topics", "alter", "alt", "--delete-config", "retention.ms", *b)
    assert r.exit_code == 0, r.stderr
    out = flows_cli("topics", "describe", "alt", *b).stdout
    assert "retention.ms" not in out and "segment.bytes" in out

    r = flows_cli("topics", "alter", "alt", "--partitions", "4", *b)
    assert (r.exit_code, r.stdout) == (0, "topic alt now has 4 partitions\n"), r.stderr
    assert "PartitionCount: 4" in flows_cli("topics", "describe", "alt", *b).stdout

    r = flows_cli("topics", "alter", "alt", "--partitions", "2", *b)
    assert r.exit_code == 1
    assert "already has 4 partitions" in _one_error_line(r.stderr)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("topics", "describe", "nope"), "error: unknown topic 'nope': see `flows topics list`"),
        (("topics", "delete", "nope"), "error: cannot delete topic 'nope': no such topic"),
        (("topics", "alter", "nope", "--config", "retention.ms=1"), "error: unknown topic 'nope'"),
        (("topics", "alter", "x"), "error: nothing to change"),
        (("topics", "create", "bad", "--config", "oops"), "error: invalid --config 'oops'"),
        (("topics", "create", "bad", "--partitions", "0"), "error: invalid --partitions 0"),
        (
            ("topics", "create", "bad", "--config", "no.such.config=1"),
            "error: cannot create topic 'bad': invalid config",
        ),
    ],
)
def test_bad_input(
    flows_cli: Flows, broker: RunningBroker, args: tuple[str, ...], expected: str
) -> None:
    r = flows_cli(*args, "--broker", broker.url)
    assert r.exit_code == 1
    assert _one_error_line(r.stderr).startswith(expected)


def test_delete_if_exists(flows_cli: Flows, broker: RunningBroker) -> None:
    r = flows_cli("topics", "delete", "ghost", "--if-exists", "--broker", broker.url)
    assert (r.exit_code, r.stdout) == (0, "topic ghost does not exist\n")


def test_invalid_broker_address(flows_cli: Flows) -> None:
    r = flows_cli("topics", "list", "--broker", "http://x:1")
    assert r.exit_code == 1
    assert _one_error_line(r.stderr).startswith("error: invalid broker address 'http://x:1'")
    r = flows_cli("topics", "list", "--broker", "kafka://nohostport")
    assert _one_error_line(r.stderr).startswith("error: invalid broker address")


def test_unreachable_broker_is_one_line(flows_cli: Flows) -> None:
    port = free_port()
    r = flows_cli("topics", "list", "--broker", f"kafka://127.0.0.1:{port}")
    assert r.exit_code == 1
    line = _one_error_line(r.stderr)
    assert line.startswith(f"error: cannot connect to broker 127.0.0.1:{port} -- is it running?")
    assert "flows broker start" in line and "FLOWS_BROKER" in line


def test_flows_broker_env_and_real_process(broker: RunningBroker) -> None:
    """The console entry point in a real process; FLOWS_BROKER is honoured."""
    import os

    env_before = os.environ.get("FLOWS_BROKER")
    os.environ["FLOWS_BROKER"] = broker.url
    try:
        done = run_flows_process("topics", "create", "from-env")
        assert (done.returncode, done.stdout) == (0, "created topic from-env\n"), done.stderr
        done = run_flows_process("topics", "describe", "missing-topic")
        assert done.returncode == 1
        assert _one_error_line(done.stderr).startswith("error: unknown topic 'missing-topic'")
    finally:
        if env_before is None:
            del os.environ["FLOWS_BROKER"]
        else:
            os.environ["FLOWS_BROKER"] = env_before
