"""Foreign-key table-table joins: subscriptions, responses, foreign-key changes, deletes."""

from __future__ import annotations

from typing import Any

import pytest

import flows
from flows.testing import TopologyTestDriver


def _app(how: str) -> flows.App:
    app = flows.App(f"fk-{how}")
    orders = app.table(app.topic("orders", key_serde="str", value_serde="json"), name="orders")
    products = app.table(app.topic("products", key_serde="str", value_serde="str"), name="prod")
    out = app.topic("out", key_serde="str", value_serde="str")
    join = orders.join if how == "inner" else orders.left_join
    join(
        products,
        lambda o, p: f"{o['qty']}x{p}",
        foreign_key=lambda o: o["product"],
        name="fk",
    ).to_stream().to(out)
    return app


_INPUT: list[tuple[str, str, Any]] = [
    ("products", "p1", "pen"),
    ("orders", "o1", {"product": "p1", "qty": 2}),
    ("orders", "o2", {"product": "p2", "qty": 1}),  # p2 unknown yet
    ("products", "p2", "ink"),
    ("orders", "o1", {"product": "p2", "qty": 3}),  # foreign key changes p1 -> p2
    ("products", "p1", "pencil"),  # o1 left p1: no output
    ("products", "p2", None),  # right row deleted: both subscribers answered
    ("orders", "o2", None),  # left row deleted
    ("orders", "o3", {"product": None, "qty": 5}),  # no foreign key
]


@pytest.mark.parametrize(
    ("how", "expected"),
    [
        (
            "inner",
            [
                ("o1", "2xpen"),
                ("o2", None),
                ("o2", "1xink"),
                ("o1", "3xink"),
                ("o1", None),
                ("o2", None),
                ("o2", None),
                ("o3", None),
            ],
        ),
        (
            "left",
            [
                ("o1", "2xpen"),
                ("o2", "1xNone"),
                ("o2", "1xink"),
                ("o1", "3xink"),
                ("o1", "3xNone"),
                ("o2", "1xNone"),
                ("o2", None),
                ("o3", "5xNone"),
            ],
        ),
    ],
)
def test_foreign_key_join(how: str, expected: list[Any]) -> None:
    with TopologyTestDriver(_app(how)) as driver:
        for topic, k, v in _INPUT:
            driver.input_topic(topic).pipe_input(k, v)
        assert driver.output_topic("out").read_key_values_to_list() == expected
        # o1 is subscribed to p2 only; o2 was removed
        subs = driver.store("fk-subscriptions")
        assert [(k, s) for k, s, _ in subs.items()] == [("p2", b"o1")]


def test_foreign_key_join_topology_uses_two_internal_topics() -> None:
    app = _app("inner")
    text = app.topology.describe()
    assert "fk-inner-fk-subscription-repartition" in text
    assert "fk-inner-fk-response-repartition" in text
    assert len(app.topology.subtopologies) == 2


def test_foreign_key_join_drops_stale_responses() -> None:
    app = _app("inner")
    with TopologyTestDriver(app) as driver:
        driver.input_topic("products").pipe_input("p1", "pen")
        driver.input_topic("products").pipe_input("p2", "ink")
        task = next(t for t in driver.tasks if "orders" in t.sub.source_topics)
        enc = app.topology.topics["orders"].value_serde
        assert enc is not None
        # two updates of o1 in one batch: the answer to the first subscription is stale
        batch = [
            (b"o1", enc.encode({"product": "p1", "qty": 1}), 0, None, 0, 0),
            (b"o1", enc.encode({"product": "p2", "qty": 2}), 0, None, 0, 1),
        ]
        task.process("orders", batch)
        driver._feed("", [])
        assert driver.output_topic("out").read_key_values_to_list() == [("o1", "2xink")]
