"""The download step against the simulator on loopback (no Airflow): OCP's legal oddities (issue #17)."""

from __future__ import annotations

import json
import os
import threading
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from ocp_ingest.audit.tables import read_events
from ocp_ingest.ledger import TerminalState
from ocp_ingest.ocp import OcpClient, PatAuth, Throttled
from ocp_ingest.reconcile import download
from ocp_ingest.reconcile.close import close_run, match_outcomes
from ocp_ingest.reconcile.detect import PendingQuery, detect
from ocp_ingest.reconcile.download import DownloadSummary, download_export
from ocp_ingest.reconcile.exports import EXPORT_DATA_TYPES, recreate_and_wait, replace_expired
from ocp_ingest.reconcile.plan import ExportPlan, plan_exports
from ocp_ingest.reconcile.windows import floor_hour
from ocp_ingest.storage import StorageLayout
from ocp_ingest_dev.simulator import Simulator
from tests.airflow.conftest import PAT, Tenant, sim_config, tenant_factory  # noqa: F401 (fixture)

HOUR = timedelta(hours=1)


def _window(tenant: Tenant) -> tuple[datetime, datetime]:
    start = tenant.sim.config.window_start.astimezone(UTC)
    return start, start + 2 * HOUR


def _completed_export(tenant: Tenant, client: OcpClient, plan: ExportPlan) -> str:
    export = client.create_export(plan.ocp_group, plan.start, plan.end, EXPORT_DATA_TYPES)
    return client.wait_for_export(export.export_id, poll_interval_s=0.05, timeout_s=20).export_id


def test_an_opaque_export_id_keeps_its_metadata_record_and_recovers_the_calls(tenant_factory) -> None:  # noqa: F811
    config = sim_config(calls=8)
    config.exports.opaque_ids = True  # ids like exp.20261202.0001.<tail>, longer than 64 characters
    tenant: Tenant = tenant_factory(config)
    tenant.receive_events(tenant.calls)
    group = tenant.calls[0].ocp_group
    mine = [c for c in tenant.calls if c.ocp_group == group]
    plan = ExportPlan(group, *_window(tenant), tuple(c.dialog_id for c in mine))
    with OcpClient(tenant.running.url, PatAuth(PAT), timeout=10) as client:
        export_id = _completed_export(tenant, client, plan)
        assert "." in export_id and len(export_id) > 64
        summary = download_export(plan, export_id, tenant.settings, client, run_id="manual__2026-12-02T00:00")
    assert {str(o) for o in summary.outcomes.values()} == {"stored"}, summary.to_dict()
    record_path = StorageLayout.from_settings(tenant.settings).reconciliation_record_path(
        "exports", export_id
    )
    assert record_path.exists()
    assert len(record_path.name) <= 80 and ".." not in record_path.name and "/" not in record_path.name
    kept = json.loads(record_path.read_bytes())
    assert kept["export"]["export_id"] == export_id  # the id itself is kept, as OCP gave it
    assert set(kept["planned_recordings"]) == {c.dialog_id for c in mine}
    assert all(tenant.record(c.dialog_id).export_id == export_id for c in mine)


def test_calls_ending_after_the_plans_last_hour_are_explained_when_ocp_selects_by_event_time(
    tenant_factory,  # noqa: F811
) -> None:
    """A call that starts in a plan's last hour and ends after it: its dialog_end is where OCP puts it."""
    config = sim_config(calls=6)
    config.exports.cdr_selection = "event_time"  # a dialog_end lands in the hour the call ended
    hour_end = int(config.window_start.timestamp() * 1000) + 3_600_000
    sip, other = Simulator(config).calls[:2]
    calls = [
        replace(sip, ocp_group="ocp-cards", start=hour_end - 2000, duration_ms=5000),
        replace(
            other,
            ocp_group="ocp-cards",
            start=hour_end - 1000,
            duration_ms=5000,
            has_recording=False,
            origin_uri="tel:+302101234567",  # not SIP: never a recording
        ),
    ]
    assert calls[0].has_recording and calls[0].origin_uri.startswith("sip:")
    tenant: Tenant = tenant_factory(config, calls)
    tenant.receive_events(calls)
    detection = detect(tenant.ledger, PendingQuery(grace=timedelta(0), limit=100))
    (plan,) = plan_exports(detection.calls).plans
    ends = [datetime.fromtimestamp(c.end / 1000, UTC) for c in calls]
    assert all(plan.start <= e < plan.end for e in ends)
    with OcpClient(tenant.running.url, PatAuth(PAT), timeout=10) as client:
        # What the old plan (the start's hour only) got from OCP: no dialog_end, so the non-SIP call
        # could not be explained and would have walked to escalation.
        start_hour = floor_hour(datetime.fromtimestamp(calls[0].start / 1000, UTC))
        old = ExportPlan("ocp-cards", start_hour, start_hour + HOUR, (calls[1].dialog_id,))
        old_summary = download_export(old, _completed_export(tenant, client, old), tenant.settings, client)
        assert old_summary.no_recording == {}
        summary = download_export(plan, _completed_export(tenant, client, plan), tenant.settings, client)
    assert summary.no_recording == {calls[1].dialog_id: "tel:+302101234567"}
    run = close_run(tenant.ledger, tenant.settings, match_outcomes([plan], [summary.to_dict()]), run_id="r1")
    verdicts = {c.dialog_id: str(c.outcome) for c in run.calls}
    assert verdicts == {calls[0].dialog_id: "recovered", calls[1].dialog_id: "no_recording_expected"}
    assert tenant.record(calls[1].dialog_id).terminal_state is TerminalState.NO_RECORDING_EXPECTED
    assert tenant.record(calls[1].dialog_id).retry_count == 0


# ------------------------------------------------------------- a listing that names none of our calls
def _unknown_to_ocp(tenant: Tenant, group: str) -> str:
    """A pending call the ledger knows in ``group``'s window whose recording OCP does not list."""
    model = next(c for c in tenant.calls if c.ocp_group == group)
    ghost = replace(model, dialog_id="F" * 32, connection_id="ghost")
    tenant.receive_events([ghost])
    return ghost.dialog_id


def _download(tenant: Tenant, plan: ExportPlan) -> tuple[str, DownloadSummary]:
    with OcpClient(tenant.running.url, PatAuth(PAT), timeout=10) as client:
        export_id = _completed_export(tenant, client, plan)
        return export_id, download_export(plan, export_id, tenant.settings, client, run_id="r1")


def test_a_listing_full_of_recordings_matching_no_planned_call_is_an_anomaly(tenant_factory) -> None:  # noqa: F811
    tenant: Tenant = tenant_factory(sim_config(calls=8))
    tenant.receive_events(tenant.calls)
    group = tenant.calls[0].ocp_group
    ghost = _unknown_to_ocp(tenant, group)
    plan = ExportPlan(group, *_window(tenant), (ghost,))
    export_id, summary = _download(tenant, plan)
    listed = sum(c.ocp_group == group and c.has_recording for c in tenant.calls)
    assert listed and summary.recordings_listed == listed and summary.planned_matched == 0
    assert summary.anomaly and export_id in summary.anomaly, summary.to_dict()
    assert summary.to_dict()["anomaly"] == summary.anomaly
    # Kept with the export, and in the call's own audit trail.
    record_path = StorageLayout.from_settings(tenant.settings).reconciliation_record_path(
        "exports", export_id
    )
    assert "none of the plan's 1 call" in json.loads(record_path.read_bytes())["anomaly"]
    today = datetime.now(UTC).date()
    events = read_events(tenant.settings.audit_url, today - timedelta(days=1), today + timedelta(days=1))
    (milestone,) = [
        e for e in events.to_pylist() if e["dialog_id"] == ghost and e["event_type"] == "EXPORT_COMPLETED"
    ]
    assert "anomaly" in milestone["detail"]
    # The close reports it: the run is not a plain success.
    run = close_run(tenant.ledger, tenant.settings, match_outcomes([plan], [summary.to_dict()]), run_id="r1")
    assert run.anomalies == [f"{plan.label}: {summary.anomaly}"]
    assert run.to_dict()["anomalies"] == run.anomalies
    assert tenant.record(ghost).retry_count == 1  # a lost recording still walks toward escalation


def test_no_anomaly_when_one_planned_call_matches_or_nothing_is_listed_or_nothing_is_expected(
    tenant_factory,  # noqa: F811
) -> None:
    tenant: Tenant = tenant_factory(sim_config(calls=8))
    tenant.receive_events(tenant.calls)
    group = tenant.calls[0].ocp_group
    ghost = _unknown_to_ocp(tenant, group)
    start, end = _window(tenant)
    real = next(c.dialog_id for c in tenant.calls if c.ocp_group == group and c.has_recording)
    _, some = _download(tenant, ExportPlan(group, start, end, (ghost, real)))
    assert (some.planned_matched, some.anomaly) == (1, "") and some.outcomes[ghost] == "not_in_export"
    # an empty window: OCP lists nothing, so there is nothing we failed to match
    _, empty = _download(tenant, ExportPlan(group, start - 6 * HOUR, start - 5 * HOUR, (ghost,)))
    assert (empty.recordings_listed, empty.anomaly) == (0, "")
    # every planned call is stored already: none expects a recording from this export
    _, stored = _download(tenant, ExportPlan(group, start, end, (real,)))
    assert stored.outcomes[real] == "already_stored" and stored.anomaly == ""


def test_an_open_call_is_explained_by_the_dialog_end_ocp_files_under_its_real_end(tenant_factory) -> None:  # noqa: F811
    """Its dialog_end was lost, so its end is unknown; OCP files the dialog_end under the hour the call
    really ended (event time), 90 minutes after the start: the plan reaches the latest end it can have."""
    config = sim_config(calls=4)
    config.exports.cdr_selection = "event_time"
    hour_end = int(config.window_start.timestamp() * 1000) + 3_600_000
    model = Simulator(config).calls[0]
    long_call = replace(
        model,
        ocp_group="ocp-cards",
        start=hour_end - 1000,
        duration_ms=90 * 60_000,
        ends_in_ivr=False,  # an IVR end would tell the ledger when it ended
        ivr_reason=None,
        has_recording=False,
        origin_uri="tel:+302101234567",
    )
    tenant: Tenant = tenant_factory(config, [long_call])
    tenant.receive_events([long_call], lose_dialog_end=True)
    query = PendingQuery(grace=timedelta(0), limit=10, open_after=timedelta(0))
    (opened,) = detect(tenant.ledger, query).calls
    assert opened.end is None
    (plan,) = plan_exports([opened], open_call_life=timedelta(hours=4)).plans
    with OcpClient(tenant.running.url, PatAuth(PAT), timeout=10) as client:
        # The start and its margin only (the old plan): the dialog_end is not in that export.
        start_hour = floor_hour(opened.start)
        old = ExportPlan("ocp-cards", start_hour - HOUR, start_hour + 2 * HOUR, plan.dialog_ids)
        old_summary = download_export(old, _completed_export(tenant, client, old), tenant.settings, client)
        assert old_summary.no_recording == {}
        summary = download_export(plan, _completed_export(tenant, client, plan), tenant.settings, client)
    assert summary.no_recording == {long_call.dialog_id: "tel:+302101234567"}
    run = close_run(tenant.ledger, tenant.settings, match_outcomes([plan], [summary.to_dict()]), run_id="r1")
    assert [str(c.outcome) for c in run.calls] == ["no_recording_expected"]
    assert tenant.record(long_call.dialog_id).retry_count == 0


# ------------------------------------------------------------- slices queued ahead of their marks
def test_files_in_many_slices_are_each_stored_once_with_their_marks_in_batches(
    tenant_factory,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # 3 files a slice, 2 marks a batch: the next slices are downloading while a slice's marks are written
    monkeypatch.setattr(download, "SLICE", 3)
    monkeypatch.setattr(download, "MARK_BATCH", 2)
    tenant: Tenant = tenant_factory(sim_config(calls=24))
    tenant.receive_events(tenant.calls)
    group = "ocp-banking"
    mine = tuple(c.dialog_id for c in tenant.calls if c.ocp_group == group)
    assert len(mine) >= 7  # three slices at least
    plan = ExportPlan(group, *_window(tenant), mine)
    with OcpClient(tenant.running.url, PatAuth(PAT), timeout=10) as client:
        export_id = _completed_export(tenant, client, plan)
        first = download_export(plan, export_id, tenant.settings, client, run_id="r1")
        again = download_export(plan, export_id, tenant.settings, client, run_id="r2")
    assert set(first.outcomes) == set(mine)
    assert {str(o) for o in first.outcomes.values()} == {"stored"}, first.to_dict()
    assert first.bytes_downloaded == sum(tenant.record(d).size_bytes or 0 for d in mine) > 0
    assert {str(o) for o in again.outcomes.values()} == {"already_stored"}
    # one Stored mark per call, none lost between batches
    assert _milestones(tenant, "STORED") == {(d, export_id): 1 for d in mine}


# ------------------------------------------------------------- OCP throttles the download (issue #17)
def _throttled_tenant(tenant_factory, allowed: int) -> tuple[Tenant, ExportPlan, str]:  # noqa: F811
    """A completed export, then OCP's quota: ``allowed`` more requests, then 429 with a 10-minute wait."""
    tenant: Tenant = tenant_factory(sim_config(calls=24))
    tenant.receive_events(tenant.calls)
    group = "ocp-banking"
    mine = tuple(c.dialog_id for c in tenant.calls if c.ocp_group == group)
    assert len(mine) >= 6
    plan = ExportPlan(group, *_window(tenant), mine)
    with OcpClient(tenant.running.url, PatAuth(PAT), timeout=10) as client:
        export_id = _completed_export(tenant, client, plan)
    faults = tenant.sim.faults.settings
    faults.quota_per_window, faults.quota_window_s, faults.quota_retry_after_s = allowed, 1e9, 600
    return tenant, plan, export_id


def _download_throttled(tenant: Tenant, plan: ExportPlan, export_id: str) -> DownloadSummary:
    with OcpClient(tenant.running.url, PatAuth(PAT), timeout=10) as client:  # default budget: 120 s
        return download_export(plan, export_id, tenant.settings, client, run_id="r1")


def test_throttling_mid_download_stops_asking_and_counts_no_attempt(tenant_factory) -> None:  # noqa: F811
    # listing + 2 CDR hours + the export's metadata + 2 recordings, then OCP says "come back in 10 min"
    tenant, plan, export_id = _throttled_tenant(tenant_factory, allowed=6)
    summary = _download_throttled(tenant, plan, export_id)
    kinds = Counter(str(o) for o in summary.outcomes.values())
    assert kinds == {"stored": 2, "throttled": len(plan.dialog_ids) - 2}, summary.to_dict()
    assert all("429" in summary.details[d] for d, o in summary.outcomes.items() if o == "throttled")
    # It stopped asking: at most one 429 per download worker, not one per remaining file.
    assert tenant.sim.faults.injected["429"] <= tenant.settings.download_workers
    run = close_run(tenant.ledger, tenant.settings, match_outcomes([plan], [summary.to_dict()]), run_id="r1")
    assert run.to_dict()["throttled"] == len(plan.dialog_ids) - 2
    for call in run.calls:
        record = tenant.record(call.dialog_id)
        assert record.retry_count == 0, call  # OCP's state, not the call's
        assert str(call.outcome) in ("recovered", "still_pending")
    # OCP's quota is over: the same export gives the rest.
    tenant.sim.faults.settings.quota_per_window = None
    again = _download_throttled(tenant, plan, export_id)
    assert Counter(str(o) for o in again.outcomes.values()) == {
        "stored": len(plan.dialog_ids) - 2,
        "already_stored": 2,
    }


def test_throttling_before_the_listing_is_read_tries_no_call_and_sweeps_no_hour(tenant_factory) -> None:  # noqa: F811
    tenant, plan, export_id = _throttled_tenant(tenant_factory, allowed=0)
    summary = _download_throttled(tenant, plan, export_id)
    assert summary.status == "throttled" and set(summary.outcomes) == set(plan.dialog_ids)
    assert {str(o) for o in summary.outcomes.values()} == {"throttled"}
    (outcome,) = match_outcomes([plan], [summary.to_dict()])
    assert not outcome.manifest_diffed  # its CDRs were never read: no hour of it counts as swept
    run = close_run(tenant.ledger, tenant.settings, [outcome], run_id="r1")
    assert {str(c.outcome) for c in run.calls} == {"still_pending"}
    assert all(tenant.record(d).retry_count == 0 for d in plan.dialog_ids)


# ------------------------------------------------------------- one milestone per export, call and kind
def _milestones(tenant: Tenant, event_type: str) -> Counter[tuple[str, str]]:
    tenant.ledger.flush_audit()
    today = datetime.now(UTC).date()
    events = read_events(tenant.settings.audit_url, today - timedelta(days=1), today + timedelta(days=1))
    return Counter(
        (e["dialog_id"], e["export_id"]) for e in events.to_pylist() if e["event_type"] == event_type
    )


def _expired_export(tenant: Tenant) -> tuple[ExportPlan, str]:
    tenant.receive_events(tenant.calls)
    group = tenant.calls[0].ocp_group
    plan = ExportPlan(
        group, *_window(tenant), tuple(c.dialog_id for c in tenant.calls if c.ocp_group == group)
    )
    with OcpClient(tenant.running.url, PatAuth(PAT), timeout=10) as client:
        export_id = _completed_export(tenant, client, plan)
    tenant.sim.exports.jobs[export_id].expire(tenant.sim.clock.now())
    return plan, export_id


def test_a_retried_download_writes_one_expired_milestone_per_call(tenant_factory) -> None:  # noqa: F811
    tenant: Tenant = tenant_factory(sim_config(calls=8))
    plan, expired = _expired_export(tenant)
    for _ in range(2):  # the task is retried: it starts again from the export it was given, expired
        with OcpClient(tenant.running.url, PatAuth(PAT), timeout=10) as client:
            summary = download_export(plan, expired, tenant.settings, client, run_id="r1")
        assert summary.recreated_exports and set(summary.outcomes.values()) <= {"stored", "already_stored"}
    once = {(d, expired): 1 for d in plan.dialog_ids}
    assert dict(_milestones(tenant, "EXPORT_EXPIRED")) == once
    completed = _milestones(tenant, "EXPORT_COMPLETED")
    assert all(n == 1 for n in completed.values()) and len(completed) >= len(plan.dialog_ids)


def test_an_expiry_seen_again_after_throttling_writes_its_milestone_once(tenant_factory) -> None:  # noqa: F811
    """The sensor's path: the expiry is recorded, the replacement request is throttled and deferred, and
    the resumed task handles the same expiry again."""
    tenant: Tenant = tenant_factory(sim_config(calls=8))
    plan, expired = _expired_export(tenant)
    layout = StorageLayout.from_settings(tenant.settings)
    tenant.sim.faults.force(429, count=1, path_prefix="/v1/exports", retry_after=600)
    with OcpClient(tenant.running.url, PatAuth(PAT), timeout=10) as client:
        with pytest.raises(Throttled):
            replace_expired(client, tenant.ledger, layout, plan, expired, "expired while waiting")
        new_id, _ = replace_expired(client, tenant.ledger, layout, plan, expired, "expired while waiting")
        # and the downloader, given the expired export by a cleared chain, sees it once more
        recreate_and_wait(client, tenant.ledger, layout, plan, expired, poll_interval_s=0.05, max_wait_s=20)
    assert new_id and new_id != expired
    assert dict(_milestones(tenant, "EXPORT_EXPIRED")) == {(d, expired): 1 for d in plan.dialog_ids}


def test_download_threads_run_at_a_lower_priority_and_only_they_do() -> None:
    def nice_of_this_thread() -> int:
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    before = nice_of_this_thread()
    seen: list[int] = []

    def worker(nice: int) -> None:
        download.lower_priority(nice)
        seen.append(nice_of_this_thread())

    for nice in (5, 0, 50):
        thread = threading.Thread(target=worker, args=(nice,))
        thread.start()
        thread.join()
    assert seen == [min(19, before + 5), before, 19]
    assert nice_of_this_thread() == before  # the task's own thread keeps its priority
