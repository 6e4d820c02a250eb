"""The task assignment algorithm (pure, no broker)."""

from __future__ import annotations

import pytest

from core.assignor import MemberState, TaskAssignment, assign, task_sort_key
from core.worker.partition_assignor import tasks_for

TASKS = [f"{s}_{p}" for s in range(2) for p in range(4)]


def _check_complete(result: dict[str, TaskAssignment], tasks: list[str], standbys: int) -> None:
    active = [t for a in result.values() for t in a.active]
    assert sorted(active) == sorted(tasks)  # every task exactly once
    for task in tasks:
        holders = [m for m, a in result.items() if task in a.standby]
        owner = next(m for m, a in result.items() if task in a.active)
        assert owner not in holders
        assert len(holders) == min(standbys, len(result) - 1)


def test_balanced_for_new_members() -> None:
    result = assign(TASKS, {"a": MemberState(), "b": MemberState(), "c": MemberState()})
    _check_complete(result, TASKS, 0)
    assert sorted(len(a.active) for a in result.values()) == [2, 3, 3]


def test_sticky_to_previous_owner() -> None:
    members = {
        "a": MemberState(active=("0_0", "0_1", "1_0", "1_1")),
        "b": MemberState(active=("0_2", "0_3", "1_2", "1_3")),
    }
    result = assign(TASKS, members)
    assert result["a"].active == ["0_0", "0_1", "1_0", "1_1"]
    assert result["b"].active == ["0_2", "0_3", "1_2", "1_3"]


def test_new_member_takes_only_overflow() -> None:
    members = {
        "a": MemberState(active=tuple(TASKS)),
        "b": MemberState(),
    }
    result = assign(TASKS, members)
    _check_complete(result, TASKS, 0)
    assert len(result["a"].active) == 4 and len(result["b"].active) == 4
    assert set(result["a"].active) <= set(TASKS)


def test_departed_owner_tasks_go_to_member_with_local_state() -> None:
    # "a" died; "c" holds fresher local state of 1_2 than "b"
    members = {
        "b": MemberState(active=("0_0",), local={"1_2": 10}),
        "c": MemberState(active=("0_1",), local={"1_2": 500}),
    }
    result = assign(["0_0", "0_1", "1_2"], members)
    assert "1_2" in result["c"].active


def test_standbys_on_other_members_prefer_local_state() -> None:
    members = {
        "a": MemberState(active=("1_0",)),
        "b": MemberState(),
        "c": MemberState(local={"1_0": 42}),
    }
    result = assign(["1_0", "1_1", "1_2"], members, num_standby=1)
    _check_complete(result, ["1_0", "1_1", "1_2"], 1)
    assert "1_0" in result["c"].standby


def test_more_standbys_than_members() -> None:
    result = assign(["0_0"], {"a": MemberState(), "b": MemberState()}, num_standby=3)
    _check_complete(result, ["0_0"], 3)


def test_edge_cases() -> None:
    assert assign(TASKS, {}) == {}
    assert assign([], {"a": MemberState()})["a"] == TaskAssignment()
    with pytest.raises(ValueError, match="num_standby"):
        assign(TASKS, {"a": MemberState()}, num_standby=-1)


def test_deterministic() -> None:
    members = {m: MemberState(local={"0_1": 3}) for m in "xyz"}
    assert assign(TASKS, members, num_standby=1) == assign(TASKS, members, num_standby=1)


@pytest.mark.parametrize(
    "data", [None, b"", b"junk", b"[1]", b'{"v": 99}', b'{"v": 1, "local": 3}']
)
def test_unreadable_user_data_is_empty(data: bytes | None) -> None:
    assert MemberState.decode(data) == MemberState()


def test_roundtrip() -> None:
    state = MemberState(("0_0",), ("1_1",), {"0_0": 5})
    assert MemberState.decode(state.encode()) == state
    ta = TaskAssignment(["0_0"], ["1_1"])
    assert TaskAssignment.decode(ta.encode()) == ta
    assert TaskAssignment.decode(b"junk") == TaskAssignment()


def test_task_order_and_topic_partitions() -> None:
    assert sorted(["1_0", "0_10", "0_2"], key=task_sort_key) == ["0_2", "0_10", "1_0"]
    parts = {"lines": {0, 1, 2, 3}, "rep": {0, 1, 2, 3}}
    tasks = tasks_for({0: ("lines",), 1: ("rep",)}, parts.get)
    assert tasks["1_3"] == [("rep", 3)]
    assert len(tasks) == 8
    assert tasks_for({0: ("missing",)}, parts.get) == {}
