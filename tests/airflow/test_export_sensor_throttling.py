"""OcpExportSensor under OCP's per-window quota: throttling defers and retries, never counts an attempt.

The sensor's deferral loop is driven by hand (execute -> TaskDeferred -> the trigger's first event ->
execute_complete), against the simulator on loopback through the real ``ocp_default`` Connection.
"""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowFailException, TaskDeferred

from ocp_ingest.airflow.sensors import OcpExportSensor
from ocp_ingest.airflow.triggers import ExportReadyTrigger, ThrottleWaitTrigger
from ocp_ingest.ocp import OcpClient, PatAuth
from ocp_ingest.reconcile.plan import ExportPlan
from ocp_ingest_dev.simulator import FaultSettings
from tests.airflow.conftest import PAT, Tenant, sim_config


async def _first_event(trigger: Any) -> dict:
    async for event in trigger.run():
        return event.payload
    raise AssertionError("the trigger fired no event")


def _drive(sensor: OcpExportSensor, deferrals: list[str], limit: int = 40) -> dict:
    """Run the sensor as the scheduler and triggerer would: every deferral's event goes back in."""
    context: dict[str, Any] = {"params": {}}
    step = lambda: sensor.execute(context)  # noqa: E731
    for _ in range(limit):
        try:
            return step()
        except TaskDeferred as deferred:
            deferrals.append(type(deferred.trigger).__name__)
            event = asyncio.run(_first_event(deferred.trigger))
            method = getattr(sensor, deferred.method_name)
            step = lambda m=method, e=event: m(context, e)  # noqa: E731
    raise AssertionError(f"still deferring after {limit} deferrals: {deferrals}")


def _tenant(tenant_factory, monkeypatch, faults: FaultSettings) -> Tenant:
    tenant: Tenant = tenant_factory(sim_config(calls=6, faults=faults))
    # A client budget far below OCP's Retry-After: the client hands the wait to the task at once.
    conn = {
        "conn_type": "ocp",
        "host": tenant.running.url,
        "password": PAT,
        "extra": {"max_attempts": 2, "max_total_s": 0.3, "max_retry_after_s": 0.2},
    }
    monkeypatch.setenv("AIRFLOW_CONN_OCP_DEFAULT", json.dumps(conn))
    return tenant


def _plan(tenant: Tenant) -> ExportPlan:
    group = tenant.calls[0].ocp_group
    start = tenant.sim.config.window_start
    calls = tuple(c.dialog_id for c in tenant.calls if c.ocp_group == group)
    return ExportPlan(group, start, start + timedelta(hours=2), calls)


def test_throttling_while_requesting_defers_and_asks_again_without_an_attempt(
    tenant_factory, monkeypatch
) -> None:
    # Two requests per 3 s window, then 429 with Retry-After 1 (longer than the client will wait).
    faults = FaultSettings(quota_per_window=2, quota_window_s=3, quota_retry_after_s=1)
    tenant = _tenant(tenant_factory, monkeypatch, faults)
    tenant.receive_events(tenant.calls)
    plan = _plan(tenant)
    with OcpClient(tenant.running.url, PatAuth(PAT), timeout=10) as client:  # someone else used the quota
        client.list_exports()
        client.list_exports()
    deferrals: list[str] = []
    result = _drive(OcpExportSensor(task_id="request_and_wait", plan=plan.to_dict()), deferrals)
    assert result["export_status"] == "COMPLETED", result
    assert ThrottleWaitTrigger.__name__ in deferrals  # OCP's wait was waited in the triggerer
    assert tenant.sim.faults.injected["429"] >= 1
    assert len(tenant.sim.exports.list(plan.ocp_group)) == 1  # a retried request adopts, never doubles
    for dialog_id in plan.dialog_ids:
        record = tenant.record(dialog_id)
        assert record.retry_count == 0 and record.export_id == result["export_id"]


def test_sustained_throttling_fails_plainly_as_throttling_and_counts_no_attempt(
    tenant_factory, monkeypatch
) -> None:
    monkeypatch.setenv("OCP_INGEST_EXPORT_MAX_THROTTLED_S", "2.5")
    faults = FaultSettings(quota_per_window=0, quota_window_s=60, quota_retry_after_s=1)  # every request
    tenant = _tenant(tenant_factory, monkeypatch, faults)
    tenant.receive_events(tenant.calls)
    plan = _plan(tenant)
    deferrals: list[str] = []
    with pytest.raises(AirflowFailException) as info:
        _drive(OcpExportSensor(task_id="request_and_wait", plan=plan.to_dict()), deferrals)
    message = str(info.value)
    assert "throttling" in message and "not a problem with the calls" in message
    assert "OCP_INGEST_EXPORT_MAX_THROTTLED_S" in message
    assert deferrals == [ThrottleWaitTrigger.__name__] * 2  # 1 s + 1 s waited; a third would pass 2.5 s
    assert ExportReadyTrigger.__name__ not in deferrals and tenant.sim.exports.list(plan.ocp_group) == []
    assert all(tenant.record(d).retry_count == 0 for d in plan.dialog_ids)


def test_the_throttle_wait_trigger_round_trips_and_waits() -> None:
    trigger = ThrottleWaitTrigger(0.05, {"conflict_waits": 1, "throttled_s": 2.0})
    path, kwargs = trigger.serialize()
    assert path.endswith("ThrottleWaitTrigger")
    again = ThrottleWaitTrigger(**kwargs)
    event = asyncio.run(_first_event(again))
    assert event["status"] == "throttle_waited" and event["context"] == {
        "conflict_waits": 1,
        "throttled_s": 2.0,
    }
    with pytest.raises(ValueError):
        ThrottleWaitTrigger(-1)
