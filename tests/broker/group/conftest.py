"""Fixtures for the group coordinator tests: a fake clock and an in-memory log."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from group_fakes import FakeClock, MemoryLogs, make_config

from broker.group import GroupCoordinator


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def logs() -> MemoryLogs:
    logs = MemoryLogs()
    logs.create_topic("t", 6, {})
    return logs


@pytest.fixture
async def coord(logs: MemoryLogs, clock: FakeClock) -> AsyncIterator[GroupCoordinator]:
    c = GroupCoordinator(logs, make_config(), clock=clock)
    await c.start()
    yield c
    await c.stop()
