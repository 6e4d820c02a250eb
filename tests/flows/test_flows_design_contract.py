"""The public API exactly as the design document shows it."""

from __future__ import annotations

import pytest

import flows
from flows.testing import TopologyTestDriver


def test_design_wordcount_example() -> None:
    app = flows.App("wordcount")
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

    with TopologyTestDriver(app) as driver:
        src = driver.input_topic("lines")
        out = driver.output_topic("word-counts")
        src.pipe_input("hello world hello")
        assert out.read_key_values_to_map() == {"hello": 2, "world": 1}
        driver.advance_wall_clock(seconds=60)
        assert driver.store("counts").get("hello") == 2
        src.pipe_input(b"key", "Hello", timestamp=1_000)
        assert out.read_key_value() == ("hello", 3)
        assert out.read_values_to_list() == []
        assert out.read_key_values_to_list() == []
    assert "Sub-topology: 1" in app.topology.describe()


def test_piping_a_value_the_serde_cannot_encode_says_how_to_fix() -> None:
    app = flows.App("enc")
    app.stream(app.topic("in", value_serde="int")).to(app.topic("out", value_serde="int"))
    with TopologyTestDriver(app) as driver:
        src = driver.input_topic("in")
        with pytest.raises(LookupError, match=r"cannot encode key 'k' for topic 'in'.*key_serde="):
            src.pipe_input("k", 1)
        with pytest.raises(LookupError, match=r"cannot encode value 'x'.*serde 'int'"):
            src.pipe_input("x")
