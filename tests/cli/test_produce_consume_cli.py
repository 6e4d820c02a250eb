"""``flows produce`` and ``flows consume`` against a real broker subprocess."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_support import BrokerLauncher, Flows, RunningBroker


def _create(flows_cli: Flows, broker: RunningBroker, topic: str, partitions: int = 1) -> None:
    r = flows_cli(
        "topics", "create", topic, "--partitions", str(partitions), "--broker", broker.url
    )
    assert r.exit_code == 0, r.stderr


def _one_error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    return lines[0]


def test_lines_round_trip(flows_cli: Flows, broker: RunningBroker) -> None:
    b = ("--broker", broker.url)
    _create(flows_cli, broker, "lines")
    r = flows_cli("produce", "lines", *b, input="alpha\nbeta\n\ngamma\n")
    assert (r.exit_code, r.stderr) == (0, "produced 3 records to lines\n")
    r = flows_cli(
        "consume", "lines", "--from-beginning", "--max-messages", "3", "--timeout", "10", *b
    )
    assert r.exit_code == 0, r.stderr
    assert r.stdout == "alpha\nbeta\ngamma\n"
    assert r.stderr == "consumed 3 records from lines\n"


def test_keys_headers_and_json_output(flows_cli: Flows, broker: RunningBroker) -> None:
    b = ("--broker", broker.url)
    _create(flows_cli, broker, "keyed")
    r = flows_cli(
        "produce", "keyed", "--key-separator", ":", "--header", "source=cli", "--header",
        "v=1", *b, input="k1:v1\nk2:a:b\n",
    )  # fmt: skip
    assert r.exit_code == 0, r.stderr
    r = flows_cli("consume", "keyed", "--from-beginning", "--max-messages", "2", "--format", "json",
                  "--timeout", "10", *b)  # fmt: skip
    assert r.exit_code == 0, r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert [(x["key"], x["value"], x["offset"], x["partition"]) for x in rows] == [
        ("k1", "v1", 0, 0),
        ("k2", "a:b", 1, 0),
    ]
    assert all(x["headers"] == {"source": "cli", "v": "1"} for x in rows)
    assert all(isinstance(x["timestamp"], int) and x["topic"] == "keyed" for x in rows)

    r = flows_cli("consume", "keyed", "--offset", "1", "--partition", "0", "--print-key",
                  "--max-messages", "1", "--timeout", "10", *b)  # fmt: skip
    assert (r.exit_code, r.stdout) == (0, "k2\ta:b\n")


def test_json_input_with_partition(flows_cli: Flows, broker: RunningBroker) -> None:
    b = ("--broker", broker.url)
    _create(flows_cli, broker, "jsonin", partitions=2)
    lines = [
        {"key": "a", "value": {"n": 1}, "partition": 1, "headers": {"h": "x"}},
        {"key": None, "value": "plain", "partition": 1, "timestamp": 1700000000000},
    ]
    r = flows_cli("produce", "jsonin", "--json", *b,
                  input="".join(json.dumps(x) + "\n" for x in lines))  # fmt: skip
    assert r.exit_code == 0, r.stderr
    r = flows_cli("consume", "jsonin", "--partition", "1", "--offset", "0", "--max-messages", "2",
                  "--format", "json", "--timeout", "10", *b)  # fmt: skip
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert rows[0]["key"] == "a" and json.loads(rows[0]["value"]) == {"n": 1}
    assert rows[0]["headers"] == {"h": "x"}
    assert rows[1]["key"] is None and rows[1]["value"] == "plain"
    assert rows[1]["timestamp"] == 1700000000000
    assert {x["partition"] for x in rows} == {1}


def test_big_file_and_idle_timeout(flows_cli: Flows, broker: RunningBroker, tmp_path: Path) -> None:
    b = ("--broker", broker.url)
    _create(flows_cli, broker, "big", partitions=3)
    data = tmp_path / "big.txt"
    data.write_text("".join(f"key-{i % 97},value-{i}\n" for i in range(12_000)))
    r = flows_cli("produce", "big", "--file", str(data), "--key-separator", ",", "--progress", *b)
    assert r.exit_code == 0, r.stderr
    assert r.stderr.strip().endswith("produced 12000 records to big")
    r = flows_cli("consume", "big", "--from-beginning", "--timeout", "1", *b)
    assert r.exit_code == 0, r.stderr
    values = r.stdout.splitlines()
    assert sorted(values) == sorted(f"value-{i}" for i in range(12_000))


def test_group_commits_progress(flows_cli: Flows, broker: RunningBroker) -> None:
    b = ("--broker", broker.url)
    _create(flows_cli, broker, "grouped")
    flows_cli("produce", "grouped", *b, input="1\n2\n3\n4\n")
    args = ("consume", "grouped", "--group", "g1", "--max-messages", "2", "--timeout", "10")
    r = flows_cli(*args, "--from-beginning", *b)
    assert (r.exit_code, r.stdout) == (0, "1\n2\n"), r.stderr
    r = flows_cli(*args, *b)
    assert (r.exit_code, r.stdout) == (0, "3\n4\n"), r.stderr


@pytest.mark.parametrize(
    ("args", "stdin", "expected"),
    [
        (("produce", "pc-bad", "--key-separator", ":"), "a:1\nno-sep\n",
         "error: line 2 has no key separator ':'"),
        (("produce", "pc-bad", "--json"), "{not json\n", "error: line 1 is not valid JSON"),
        (("produce", "pc-bad", "--json"), '{"valu": 1}\n', "error: line 1: unknown field(s) valu"),
        (("produce", "pc-bad", "--json"), "[1]\n", "error: line 1: --json expects an object"),
        (("produce", "pc-bad", "--partition", "7"), "x\n",
         "error: topic 'pc-bad' has no partition 7"),
        (("produce", "pc-bad", "--header", "nokv"), "x\n", "error: invalid --header 'nokv'"),
        (("produce", "pc-bad", "--json", "--key-separator", ":"), "", "error: --json and"),
        (("produce", "pc-bad", "--file", "/nonexistent/file.txt"), "",
         "error: cannot read --file /nonexistent/file.txt"),
        (("consume", "pc-bad", "--partition", "3"), "", "error: topic 'pc-bad' has no partition 3"),
        (("consume", "pc-bad", "--offset", "soon"), "", "error: invalid --offset 'soon'"),
        (("consume", "pc-bad", "--group", "g", "--partition", "0"), "", "error: --group reads"),
        (("consume", "no-such-topic"), "", "error: unknown topic 'no-such-topic'"),
        (("consume", "pc-bad", "--max-messages", "0"), "", "error: invalid --max-messages 0"),
    ],
)  # fmt: skip
def test_bad_input(
    flows_cli: Flows, broker: RunningBroker, args: tuple[str, ...], stdin: str, expected: str
) -> None:
    flows_cli("topics", "create", "pc-bad", "--if-not-exists", "--broker", broker.url)
    r = flows_cli(*args, "--broker", broker.url, input=stdin)
    assert r.exit_code == 1, r.stdout
    assert _one_error_line(r.stderr).startswith(expected)


def test_produce_to_missing_topic_without_auto_create(
    flows_cli: Flows, launch: BrokerLauncher
) -> None:
    strict = launch(overrides=["auto.create.topics.enable=false"])
    r = flows_cli("produce", "absent", "--broker", strict.url, input="x\n")
    assert r.exit_code == 1
    assert _one_error_line(r.stderr) == (
        "error: unknown topic 'absent' and the broker does not create topics automatically: "
        "create it with `flows topics create absent`"
    )
