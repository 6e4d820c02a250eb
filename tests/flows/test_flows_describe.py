"""``describe()`` text, dot and mermaid drawings, and the ``flows topology`` command."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import flows

EXPECTED = """\
Topologies:
   Sub-topology: 0
    Source: KSTREAM-SOURCE-0000000000 (topics: [lines])
      --> split
    Processor: split (stores: [])
      --> by-word
      <-- KSTREAM-SOURCE-0000000000
    Processor: by-word (stores: [])
      --> by-word-repartition-sink
      <-- split
    Sink: by-word-repartition-sink (topic: wc-by-word-repartition)
      <-- by-word

   Sub-topology: 1
    Source: by-word-repartition-source (topics: [wc-by-word-repartition])
      --> counts
    Processor: counts (stores: [counts])
      --> KTABLE-TOSTREAM-0000000004
      <-- by-word-repartition-source
    Processor: KTABLE-TOSTREAM-0000000004 (stores: [])
      --> KSTREAM-SINK-0000000005
      <-- counts
    Sink: KSTREAM-SINK-0000000005 (topic: word-counts)
      <-- KTABLE-TOSTREAM-0000000004
"""


def _wordcount() -> flows.App:
    app = flows.App("wc")
    lines = app.topic("lines", value_serde="str")
    counts = app.topic("word-counts", key_serde="str", value_serde="int")
    (
        app.stream(lines)
        .flat_map_values(lambda line: line.lower().split(), name="split")
        .group_by(lambda key, word: word, name="by-word")
        .count(name="counts")
        .to_stream()
        .to(counts)
    )
    return app


def test_describe_with_repartition_shows_two_subtopologies() -> None:
    app = _wordcount()
    assert app.topology.describe() == EXPECTED
    subs = app.topology.subtopologies
    assert [s.source_topics for s in subs] == [("lines",), ("wc-by-word-repartition",)]
    assert [s.stores for s in subs] == [(), ("counts",)]
    assert app.topology.stores["counts"].changelog == "wc-counts-changelog"


def test_describe_is_deterministic_across_builds() -> None:
    assert _wordcount().topology.describe() == _wordcount().topology.describe()


def test_describe_shows_branches_and_terminal_nodes() -> None:
    app = flows.App("br")
    s = app.stream(app.topic("in", value_serde="str"))
    b = s.split(name="sp").branch(lambda k, v: True, name="x").default_branch()
    b["x"].foreach(print, name="show")
    text = app.topology.describe()
    assert "    Processor: sp (stores: [])\n      --> sp-x, sp-default\n" in text
    assert "    Processor: show (stores: [])\n      --> none\n      <-- sp-x\n" in text


def test_dot_and_mermaid() -> None:
    topology = _wordcount().topology
    dot = topology.to_dot()
    assert dot.startswith('digraph "wc" {') and "cluster_1" in dot
    assert "n_split -> n_by_word;" in dot
    mermaid = topology.to_mermaid()
    assert mermaid.startswith("flowchart LR")
    assert 'subgraph st1["Sub-topology 1"]' in mermaid
    assert 'n_KSTREAM_SINK_0000000005 --> n_topic_word_counts(["word-counts"])' in mermaid


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    root = Path(__file__).resolve().parents[2]
    monkeypatch.chdir(root)
    monkeypatch.syspath_prepend(str(root))
    return CliRunner()


def test_flows_topology_command(cli: CliRunner) -> None:
    from flows.cli import _load_commands, app

    _load_commands()
    result = cli.invoke(app, ["topology", "-A", "examples.wordcount"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("Topologies:\n   Sub-topology: 0\n")
    assert "(topics: [wordcount-by-word-repartition])" in result.output
    result = cli.invoke(app, ["topology", "-A", "examples.wordcount:app", "--format", "mermaid"])
    assert result.exit_code == 0 and result.output.startswith("flowchart LR")
    result = cli.invoke(app, ["topology", "-A", "examples.pageviews", "--format", "dot"])
    assert result.exit_code == 0 and result.output.startswith('digraph "pageviews"')


def test_flows_topology_bad_module(cli: CliRunner) -> None:
    from flows.cli import _load_commands, app

    _load_commands()
    result = cli.invoke(app, ["topology", "-A", "no_such_module_here"])
    assert result.exit_code == 1
    assert "cannot import flow module 'no_such_module_here'" in result.output
    result = cli.invoke(app, ["topology", "-A", "examples.wordcount:nothing"])
    assert result.exit_code == 1 and "no flows.App named 'nothing'" in result.output
    sys.modules.pop("no_such_module_here", None)
