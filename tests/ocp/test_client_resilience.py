"""Retries (429 Retry-After, 5xx, connection errors), bounds on them, and the async client, over loopback."""

from __future__ import annotations

import asyncio
import socket
import time
from datetime import timedelta

import pytest
from ocp_test_support import FAST_RETRY, PAT, small_config

from ocp_ingest.ocp import (
    AsyncOcpClient,
    ExportConflict,
    OcpClient,
    PatAuth,
    RateLimited,
    RetryPolicy,
    ServiceUnavailable,
    wire,
)
from ocp_ingest.ocp.client import parse_retry_after
from ocp_ingest_dev.simulator import FaultSettings, Simulator

HOUR = timedelta(hours=1)


def test_retry_after_is_honoured(client: OcpClient, sim: Simulator) -> None:
    sim.faults.force(429, count=1, retry_after=1)
    started = time.monotonic()
    exports = client.list_exports()
    assert exports == [] and sim.faults.injected["forced"] == 1
    assert time.monotonic() - started >= 1.0  # waited what the server asked, not the 50 ms base delay


def test_transient_5xx_is_retried(client: OcpClient, sim: Simulator) -> None:
    sim.faults.force(503, count=2)
    start = sim.config.window_start
    export = client.create_export("ocp-banking", start, start + HOUR)
    assert export.status is wire.ExportStatus.PENDING and sim.faults.injected["forced"] == 2


def test_retries_are_bounded_by_attempts(client: OcpClient, sim: Simulator) -> None:
    sim.faults.force(502, count=100)
    with pytest.raises(ServiceUnavailable, match="gave up after 4 attempt"):
        client.list_exports()
    assert sim.faults.injected["forced"] == FAST_RETRY.max_attempts


def test_retries_are_bounded_by_total_time(running, sim: Simulator) -> None:
    sim.faults.force(429, count=100, retry_after=1)
    policy = RetryPolicy(max_attempts=50, max_total_s=2.5)
    started = time.monotonic()
    with OcpClient(running.url, PatAuth(PAT), retry=policy) as c, pytest.raises(RateLimited):
        c.list_exports()
    assert time.monotonic() - started < 3.0


def test_rate_limit_answers_429_and_the_client_backs_off(make_sim) -> None:
    running = make_sim(small_config(faults=FaultSettings(rate_limit_per_s=20, rate_limit_burst=2)))
    with OcpClient(running.url, PatAuth(PAT), retry=FAST_RETRY) as c:
        for _ in range(6):
            c.list_exports()
    assert running.sim.faults.injected["429"] >= 1


def test_random_5xx_share_is_absorbed(make_sim) -> None:
    running = make_sim(small_config(faults=FaultSettings(transient_error_share=0.3)))
    policy = RetryPolicy(max_attempts=10, base_delay_s=0.01, max_delay_s=0.05)
    with OcpClient(running.url, PatAuth(PAT), retry=policy) as c:
        for _ in range(15):
            c.list_exports()
    assert running.sim.faults.injected["5xx"] >= 1


def test_connection_refused_is_retried_then_typed() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed as soon as the block ends: nothing listens there
    with (
        OcpClient(f"http://127.0.0.1:{port}", PatAuth(PAT), retry=FAST_RETRY) as c,
        pytest.raises(ServiceUnavailable),
    ):
        c.list_exports()


def test_parse_retry_after() -> None:
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


def test_async_client_full_cycle_with_faults(running, sim: Simulator) -> None:
    async def scenario() -> list[wire.ExportFile]:
        async with AsyncOcpClient(running.url, PatAuth(PAT), retry=FAST_RETRY) as c:
            start = sim.config.window_start
            sim.faults.force(503, count=1)
            export = await c.create_export("ocp-cards", start, start + 2 * HOUR, ["recordings"])
            with pytest.raises(ExportConflict):
                await c.create_export("ocp-cards", start, start + HOUR)
            sim.faults.force(429, count=1, retry_after=1)
            await c.wait_for_export(export.export_id, poll_interval_s=0.05, timeout_s=10)
            files = [f async for f in c.iter_files(export.export_id, page_size=2)]
            async with c.open_file(export.export_id, files[0].file_id, offset=10) as response:
                assert response.status_code == 206
                body = await response.aread()
            assert len(body) == files[0].size - 10
            return files

    files = asyncio.run(scenario())
    assert {f.dialog_id for f in files} == {
        c.dialog_id for c in sim.calls if c.ocp_group == "ocp-cards" and c.has_recording
    }
    assert sim.faults.injected["forced"] == 2
