"""The example flow modules produce exactly the expected tables, with either store kind."""

from __future__ import annotations

from pathlib import Path

import pytest

from examples import pageviews, wordcount
from flows.testing import TopologyTestDriver
from state.changelog import restore
from state.memory import InMemoryStore

LINES = ["Hello world", "hello flows", "", "the world says HELLO"]
WORDS = {"hello": 3, "world": 2, "flows": 1, "the": 1, "says": 1}


def _driver(kind: str, tmp_path: Path, app: object) -> TopologyTestDriver:
    if kind == "rocksdb":
        return TopologyTestDriver(app, store="rocksdb", state_dir=tmp_path)  # type: ignore[arg-type]
    return TopologyTestDriver(app)  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["memory", "rocksdb"])
def test_wordcount(kind: str, tmp_path: Path) -> None:
    with _driver(kind, tmp_path, wordcount.app) as driver:
        for line in LINES:
            driver.input_topic("lines").pipe_input(line)
        out = driver.output_topic("word-counts").read_key_values_to_list()
        assert out == [
            ("hello", 1),
            ("world", 1),
            ("hello", 2),
            ("flows", 1),
            ("the", 1),
            ("world", 2),
            ("says", 1),
            ("hello", 3),
        ]
        assert dict(out) == WORDS
        assert driver.store("counts").all() == WORDS
        assert driver.store("counts").get("absent") is None


VIEWS = [
    ("ann", "/home"),
    ("bob", "/home"),
    ("ann", "/admin/users"),
    ("cy", "/docs"),
    ("bob", "/docs"),
    ("ann", "/home"),
]


@pytest.mark.parametrize("kind", ["memory", "rocksdb"])
def test_pageviews(kind: str, tmp_path: Path) -> None:
    with _driver(kind, tmp_path, pageviews.app) as driver:
        src = driver.input_topic("pageviews")
        for ts, (user, page) in enumerate(VIEWS):
            src.pipe_input(user, pageviews.PageView(user=user, page=page), timestamp=ts * 1000)
        out = driver.output_topic("pageview-counts")
        assert out.read_key_values_to_map() == {"/home": 3, "/docs": 2}
        assert driver.store("views-per-page").all() == {"/docs": 2, "/home": 3}


def test_pageviews_bad_json_is_a_processing_error_naming_the_topic() -> None:
    import flows

    with TopologyTestDriver(pageviews.app) as driver:
        src = driver.input_topic("pageviews", value_serde="str")
        with pytest.raises(flows.ProcessingError, match="topic 'pageviews'"):
            src.pipe_input("ann", '{"user": "ann"}')


def test_wordcount_rebuilt_from_changelog_equals_original(tmp_path: Path) -> None:
    with TopologyTestDriver(wordcount.app, store="rocksdb", state_dir=tmp_path) as driver:
        for line in LINES:
            driver.input_topic("lines").pipe_input(line)
        changelog = driver.changelog("counts")
        original = next(t for t in driver.tasks if "counts" in t.stores).stores["counts"]
        assert original.changelog_offset() == changelog[-1][0]
        rebuilt = InMemoryStore("counts")
        restore(rebuilt, changelog)
        assert list(rebuilt.range()) == list(original.range())
        assert rebuilt.changelog_offset() == original.changelog_offset()
