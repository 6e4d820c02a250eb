"""Fixtures for the command-line tests (helpers live in ``cli_support``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from cli_support import BrokerLauncher, Flows, RunningBroker, launch_broker


@pytest.fixture(scope="module")
def launch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerLauncher]:
    """Factory of brokers that live until the end of the test module."""
    started: list[RunningBroker] = []

    def factory(**kwargs: object) -> RunningBroker:
        broker = launch_broker(tmp_path_factory.mktemp("broker"), **kwargs)  # type: ignore[arg-type]
        started.append(broker)
        return broker

    yield factory
    for broker in started:
        broker.stop()
        print(f"----- {broker.output} -----\n{broker.output.read_text(errors='replace')[-4000:]}")


@pytest.fixture(scope="module")
def broker(launch: BrokerLauncher) -> RunningBroker:
    """One default broker shared by the tests of a module."""
    return launch()


@pytest.fixture(scope="session")
def flows_cli() -> Flows:
    return Flows()
