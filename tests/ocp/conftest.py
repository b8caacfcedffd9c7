"""Fixtures: a simulated OCP tenant served over real HTTP on loopback, and clients pointed at it."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from ocp_test_support import FAST_RETRY, PAT, small_config

from ocp_ingest.ocp import OcpClient, PatAuth
from ocp_ingest_dev.simulator import RunningSimulator, Simulator, SimulatorConfig, serve


@pytest.fixture
def make_sim() -> Iterator[Callable[..., RunningSimulator]]:
    """Factory: ``make_sim(config)`` starts a simulator; all are stopped after the test."""
    stack = []

    def _make(config: SimulatorConfig | None = None) -> RunningSimulator:
        ctx = serve(Simulator(config or small_config()))
        stack.append(ctx)
        return ctx.__enter__()

    yield _make
    for ctx in reversed(stack):
        ctx.__exit__(None, None, None)


@pytest.fixture
def running(make_sim: Callable[..., RunningSimulator]) -> RunningSimulator:
    return make_sim()


@pytest.fixture
def sim(running: RunningSimulator) -> Simulator:
    assert running.sim is not None
    return running.sim


@pytest.fixture
def client(running: RunningSimulator) -> Iterator[OcpClient]:
    with OcpClient(running.url, PatAuth(PAT), retry=FAST_RETRY, timeout=10) as c:
        yield c
