"""Serdes on the wire, and the operators' doc examples (run as tests so they stay true)."""

from __future__ import annotations

import dataclasses
import doctest
import importlib

import msgspec
import pytest

import flows
from flows.serdes import resolve_serde
from flows.testing import TopologyTestDriver


def test_int_is_an_8_byte_big_endian_signed_long() -> None:
    int_serde = resolve_serde("int")
    assert int_serde.encode(1) == b"\x00" * 7 + b"\x01"
    assert int_serde.encode(-2) == b"\xff" * 7 + b"\xfe"
    assert int_serde.decode(int_serde.encode(2**62)) == 2**62
    with pytest.raises(ValueError, match="8 bytes"):
        int_serde.decode(b"\x01")


def test_named_serdes_round_trip() -> None:
    assert resolve_serde("str").decode(resolve_serde("str").encode("héllo")) == "héllo"
    assert resolve_serde("json").encode({"a": [1, 2]}) == b'{"a":[1,2]}'
    assert resolve_serde("bytes").encode(b"x") == b"x"
    assert resolve_serde("float").decode(resolve_serde("float").encode(1.5)) == 1.5
    with pytest.raises(TypeError, match="needs bytes"):
        resolve_serde("bytes").encode("x")


@dataclasses.dataclass
class Point:
    x: int
    y: int


class Event(msgspec.Struct):
    name: str
    weight: float = 1.0


def test_dataclass_and_struct_types_are_json_on_the_wire() -> None:
    app = flows.App("types")
    points = app.topic("points", key_serde="str", value_serde=Point)
    events = app.topic("events", key_serde="str", value_serde=Event)
    app.stream(points).map_values(lambda p: Event(name=f"{p.x},{p.y}"), value_serde=Event).to(
        events
    )
    with TopologyTestDriver(app) as driver:
        driver.input_topic("points").pipe_input("k", Point(1, 2))
        assert driver.output_topic("events").read_value() == Event(name="1,2")
        raw = driver.produced("events")[0].value
        assert raw == b'{"name":"1,2","weight":1.0}'


class Upper:
    """A user serde object without ``identity``: adapted automatically."""

    def encode(self, obj: str) -> bytes:
        return obj.upper().encode()

    def decode(self, data: bytes) -> str:
        return data.decode()


def test_serde_objects() -> None:
    app = flows.App("obj")
    app.stream(app.topic("in", value_serde="str")).to(app.topic("out", value_serde=Upper()))
    with TopologyTestDriver(app) as driver:
        driver.input_topic("in").pipe_input("shout")
        assert driver.output_topic("out").read_value() == "SHOUT"


@pytest.mark.parametrize(
    "module",
    [
        "flows.app",
        "flows.serdes",
        "flows.stream",
        "flows.grouped",
        "flows.table",
        "flows.processor",
        "flows.testing",
    ],
)
def test_doc_examples(module: str) -> None:
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0
