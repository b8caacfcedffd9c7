"""dag.test() of ocp_reconciliation against the simulator on loopback, the ledger on SQLite, local storage."""

from __future__ import annotations

import itertools
import json
import logging
import re
from datetime import UTC, datetime, timedelta

import pytest

from ocp_ingest.audit.tables import read_events
from ocp_ingest.ledger import CallStatus, IngestionSource, TerminalState
from ocp_ingest.ledger.transitions import CallIdentity, CdrEnd, CdrStart
from ocp_ingest.ocp import wire
from ocp_ingest_dev.simulator import audio
from tests.airflow.conftest import Tenant, sha_of, sim_config, store_by_realtime
from tests.conftest import load_dag, return_value_of, return_values_of

pytestmark = pytest.mark.usefixtures("airflow_db")


def succeeded_run(**params: object):
    """One run of the DAG, which must succeed."""
    dag_run = load_dag("ocp_reconciliation").test(run_conf=params or None)
    assert dag_run.state == "success", dag_run.state
    return dag_run


def run_dag(**params: object) -> dict:
    """One run of the DAG; returns close_and_escalate's summary."""
    return summary_of(succeeded_run(**params))


def summary_of(dag_run) -> dict:
    return return_value_of(dag_run, "close_and_escalate")


def task_states(dag_run) -> dict[tuple[str, int], str]:
    """(task id, map index) -> state of every task instance of the run."""
    return {(ti.task_id, ti.map_index): str(ti.state) for ti in dag_run.get_task_instances()}


def never_started(dag_run) -> set[str]:
    """Task ids of the run none of whose instances was ever started (skipped before any try)."""
    tries: dict[str, int] = {}
    for ti in dag_run.get_task_instances():
        tries[ti.task_id] = max(tries.get(ti.task_id, 0), ti.try_number or 0)
    return {task_id for task_id, n in tries.items() if n == 0}


def outcomes(summary: dict) -> dict[str, str]:
    return {c["dialog_id"]: c["outcome"] for c in summary["calls"]}


def assert_recovered(tenant: Tenant, call) -> None:
    record = tenant.record(call.dialog_id)
    truth_sha, truth_size = audio.wav_digest(call.dialog_id, call.duration_ms)
    assert record.s3_stored and record.call_status is CallStatus.COMPLETED
    assert (record.has_cdr_end, record.file_received, record.post_process_ok) == (True, True, True)
    assert record.ingestion_source is IngestionSource.RECONCILIATION
    assert (record.sha256, record.size_bytes) == (truth_sha, truth_size)
    assert sha_of(record.object_url) == truth_sha


def no_leftovers(tenant: Tenant) -> None:
    landing = tenant.home / "landing" / "audio"
    assert not landing.exists() or not list(landing.iterdir())


def test_recovery_manifest_diff_no_recording_and_a_realtime_race(tenant_factory, monkeypatch) -> None:
    tenant: Tenant = tenant_factory(sim_config(calls=30, no_recording_share=0.2))
    banking = [c for c in tenant.calls if c.ocp_group == "ocp-banking" and c.has_recording]
    lost_end, unknown = banking[3], banking[4]  # between other pending banking calls: inside the plan
    race = next(c for c in tenant.calls[6:] if c.has_recording and c.ocp_group != "ocp-banking")
    tel = [c for c in tenant.calls if not c.has_recording and c not in (lost_end, unknown)]
    assert tel and lost_end.has_recording and unknown.has_recording
    tenant.receive_events([c for c in tenant.calls if c not in (lost_end, unknown)])
    tenant.receive_events([lost_end], lose_dialog_end=True)

    # The realtime path stores one call while its export is being prepared.
    create = tenant.sim.exports.create

    def create_then_realtime_arrives(request: wire.ExportRequest) -> wire.Export:
        export = create(request)
        if request.group == race.ocp_group:
            store_by_realtime(tenant, race)
        return export

    monkeypatch.setattr(tenant.sim.exports, "create", create_then_realtime_arrives)
    summary = run_dag()

    by_call = outcomes(summary)
    for call in tenant.calls:
        if call is race:
            assert by_call[call.dialog_id] == "already_stored"
            assert tenant.record(call.dialog_id).ingestion_source is IngestionSource.REALTIME
        elif call.has_recording:
            assert by_call[call.dialog_id] == "recovered", call.dialog_id
            assert_recovered(tenant, call)
        else:
            record = tenant.record(call.dialog_id)
            assert record.terminal_state is TerminalState.NO_RECORDING_EXPECTED
            assert "tel:" in record.terminal_reason and not record.s3_stored
    assert summary["discovered_by_manifest_diff"] == 2
    assert summary["no_recording_expected"] == len(tel)
    assert summary["recovered"] == sum(c.has_recording for c in tenant.calls) - 1
    assert summary["by_group"]["ocp-banking"]["recovered"] >= 2
    assert len(tenant.stored_files()) == sum(c.has_recording for c in tenant.calls)  # race: stored once
    # The export's metadata is kept with its calls.
    record = tenant.record(banking[0].dialog_id)
    meta = json.loads(
        (tenant.home / "audit" / "reconciliation" / "exports" / f"{record.export_id}.json").read_text()
    )
    assert banking[0].dialog_id in meta["planned_recordings"] and meta["export"]["status"] == "COMPLETED"
    no_leftovers(tenant)

    # A second run finds nothing to do and changes nothing.
    before = tenant.snapshot()
    again = run_dag()
    assert again["plans"] == [] and again["recovered"] == 0
    assert tenant.snapshot() == before


def test_an_open_call_whose_dialog_end_was_lost_is_found_without_a_pending_neighbour(
    tenant: Tenant, monkeypatch
) -> None:
    """Only a dialog_start reached the ledger, and nothing else of its group is pending: the open-calls
    index puts it in a plan once it is older than any call could last; a call still going on is left."""
    monkeypatch.setenv("OCP_INGEST_OPEN_CALL_TIMEOUT_S", "1800")
    lost = next(c for c in tenant.calls if c.has_recording)
    tenant.receive_events([lost], lose_dialog_end=True)
    ongoing = "F" * 32
    tenant.ledger.apply(
        CdrStart(ongoing, datetime.now(UTC) - timedelta(minutes=5), CallIdentity(ocp_group=lost.ocp_group))
    )
    assert tenant.ledger.pending(timedelta(0), 10) == []

    summary = run_dag()

    assert outcomes(summary)[lost.dialog_id] == "recovered"
    assert_recovered(tenant, lost)
    assert ongoing not in outcomes(summary)
    assert tenant.record(ongoing).is_open and not tenant.record(ongoing).s3_stored
    assert [c.dialog_id for c in tenant.ledger.open_calls(timedelta(0), 10)] == [ongoing]
    no_leftovers(tenant)


def test_the_sweep_finds_calls_whose_every_event_was_lost_and_sweeps_each_hour_once(
    tenant: Tenant, monkeypatch
) -> None:
    """Nothing is pending or open and the ledger never heard of a group's calls: the sweep exports that
    group's settled hours once, the manifest diff gives the calls their rows, the download stores them."""
    group = "ocp-banking"
    monkeypatch.setenv("OCP_INGEST_SWEEP_OCP_GROUPS", group)
    monkeypatch.setenv("OCP_INGEST_SWEEP_LOOKBACK_HOURS", "6")
    monkeypatch.setenv("OCP_INGEST_OPEN_CALL_TIMEOUT_S", "1800")  # the sweep's settle time
    lost = [c for c in tenant.calls if c.ocp_group == group]
    assert lost and tenant.ledger.pending(timedelta(0), 10) == []

    summary = run_dag()

    assert len(summary["plans"]) == 1 and summary["plans"][0].startswith(f"{group} ")
    assert summary["discovered_by_manifest_diff"] == len(lost)
    for call in lost:
        if call.has_recording:
            assert_recovered(tenant, call)
        else:
            assert tenant.record(call.dialog_id).terminal_state is TerminalState.NO_RECORDING_EXPECTED
    other = [c for c in tenant.calls if c.ocp_group != group]
    assert all(tenant.ledger.get(c.dialog_id) is None for c in other)  # groups not swept stay untouched
    no_leftovers(tenant)

    # Its settled hours (ended OPEN_CALL_TIMEOUT_S ago) are remembered: the next run exports nothing.
    now = datetime.now(UTC)
    swept = tenant.ledger.swept_hours(group, now - timedelta(hours=8), now + timedelta(hours=2))
    assert swept and max(swept) + timedelta(hours=1) <= datetime.now(UTC) - timedelta(seconds=1800)
    again = run_dag()
    assert again["plans"] == [] and len(tenant.sim.exports.list(None)) == 1


def test_409_waits_for_the_other_export_and_429_5xx_are_retried(tenant: Tenant) -> None:
    tenant.receive_events(tenant.calls)
    start = tenant.calls[0].start // 3_600_000 * 3_600_000
    other = datetime.fromtimestamp(start / 1000, UTC) - timedelta(days=1)
    tenant.sim.config.exports.prep_s = 1.0  # the other export holds ocp-cards for a second
    blocker = tenant.sim.exports.create(
        wire.ExportRequest(
            group="ocp-cards", start=other, end=other + timedelta(hours=1), data_types=["recordings"]
        )
    )
    tenant.sim.config.exports.prep_s = 0.3
    tenant.sim.faults.force(429, count=2, path_prefix="/v1/exports", retry_after=0)
    tenant.sim.faults.force(503, count=2, path_prefix="/v1/exports")
    summary = run_dag()
    assert summary["recovered"] == len(tenant.calls), summary
    for call in tenant.calls:
        assert_recovered(tenant, call)
    cards = [e for e in tenant.sim.exports.list("ocp-cards") if e.export_id != blocker.export_id]
    assert len(cards) == 1  # waited, then created its own (the 409 was not a failure)
    assert tenant.sim.faults.injected["forced"] == 4


def test_expired_export_is_recreated_and_failed_export_counts_an_attempt(tenant: Tenant, monkeypatch) -> None:
    tenant.receive_events(tenant.calls)
    create = tenant.sim.exports.create
    expired: list[str] = []

    def create_expiring_first(request: wire.ExportRequest) -> wire.Export:
        export = create(request)
        if request.group == "ocp-cards" and not expired:
            tenant.sim.exports.jobs[export.export_id].ttl_s = 0.1  # expires before it is ever ready
            expired.append(export.export_id)
        return export

    monkeypatch.setattr(tenant.sim.exports, "create", create_expiring_first)
    tenant.sim.exports.fail_next("ocp-insurance")
    summary = run_dag()
    by_call = outcomes(summary)
    for call in tenant.calls:
        record = tenant.record(call.dialog_id)
        if call.ocp_group == "ocp-insurance":
            assert by_call[call.dialog_id] == "still_pending" and not record.s3_stored
            assert record.retry_count == 1 and "FAILED" in record.last_error
        else:
            assert_recovered(tenant, call)
            if call.ocp_group == "ocp-cards":
                assert record.export_id != expired[0]
    assert len(tenant.sim.exports.list("ocp-cards")) == 2
    # The audit trail tells the export story of each call: the expired export, then the completed one.
    today = datetime.now(UTC).date()
    events = read_events(tenant.settings.audit_url, today - timedelta(days=1), today + timedelta(days=1))
    milestones = {(e["dialog_id"], e["event_type"], e["export_id"]) for e in events.to_pylist()}
    for call in tenant.calls:
        record = tenant.record(call.dialog_id)
        if call.ocp_group == "ocp-cards":
            assert (call.dialog_id, "EXPORT_EXPIRED", expired[0]) in milestones
        if call.ocp_group != "ocp-insurance":
            assert (call.dialog_id, "EXPORT_COMPLETED", record.export_id) in milestones

    # The next run recovers the failed group's calls; the attempt is not counted again.
    summary = run_dag()
    assert summary["recovered"] == sum(c.ocp_group == "ocp-insurance" for c in tenant.calls)
    assert all(tenant.record(c.dialog_id).s3_stored for c in tenant.calls)


def test_a_download_that_fails_after_its_retries_is_still_closed(tenant: Tenant, monkeypatch, caplog) -> None:
    """A chain that fails after its retries does not skip the close: the other groups are recovered, its
    calls count no attempt (the failure is ours) but one at OCP's retention deadline is escalated with
    its alert, and the run fails. The next run, OCP answering again, recovers the rest."""
    from ocp_ingest_dev.simulator.exports import ExportRuleError

    tenant.receive_events(tenant.calls)
    old_id = "0" * 31 + "2"  # ended 58 days ago: past the 55-day deadline (60 - 5)
    old_end = datetime.now(UTC) - timedelta(days=58)
    tenant.ledger.apply(
        CdrEnd(old_id, old_end, 2000, "NORMAL", CallIdentity(ocp_group="ocp-insurance", lob="retail"))
    )
    list_files = tenant.sim.exports.files_page

    def insurance_listing_refused(export_id: str, page_token: str | None, page_size: int | None):
        if tenant.sim.exports.jobs[export_id].group == "ocp-insurance":
            raise ExportRuleError(404, wire.ERR_NOT_FOUND, f"export {export_id}: listing unavailable")
        return list_files(export_id, page_token, page_size)

    monkeypatch.setattr(tenant.sim.exports, "files_page", insurance_listing_refused)
    dag = load_dag("ocp_reconciliation")
    for task in dag.tasks:
        task.retries = 0  # every try fails the same way; the retries would only add their delay
    with caplog.at_level(logging.ERROR):
        dag_run = dag.test()
    assert dag_run.state == "failed"
    states = {(ti.task_id, ti.map_index): ti.state for ti in dag_run.get_task_instances()}
    assert states[("close_and_escalate", -1)] == "failed"
    downloads = sorted(
        s for (t, _), s in states.items() if t.endswith(".download_and_store") and s != "skipped"
    )  # a link no group needed is skipped
    # insurance's two plans (the old call's window, then the recent calls') are chained in this run
    assert downloads == ["failed", "failed", "success", "success"]
    summary = summary_of(dag_run)
    assert len(summary["failed_chains"]) == 2
    assert all(chain.startswith("ocp-insurance ") for chain in summary["failed_chains"])
    assert [e["dialog_id"] for e in summary["escalations"]] == [old_id]
    old = tenant.record(old_id)
    assert old.terminal_state is TerminalState.UNRECOVERABLE_RETENTION and old.retry_count == 0
    assert "DOWNLOAD_FAILED" in (old.terminal_reason or "")
    insurance = [c for c in tenant.calls if c.ocp_group == "ocp-insurance"]
    for call in tenant.calls:
        record = tenant.record(call.dialog_id)
        if call in insurance:  # its chain failed (our failure): no attempt
            assert record.is_pending and record.retry_count == 0
        else:
            assert_recovered(tenant, call)
    assert "export chain(s) failed after their retries" in caplog.text
    alerts = list((tenant.home / "audit" / "reconciliation" / "alerts").glob("*.json"))
    assert len(alerts) == 1  # the alert callback runs on the failed close too
    assert [e["dialog_id"] for e in json.loads(alerts[0].read_text())["escalations"]] == [old_id]

    monkeypatch.setattr(tenant.sim.exports, "files_page", list_files)
    summary = run_dag()
    assert summary["recovered"] == len(insurance) and summary["failed_chains"] == []
    for call in insurance:
        assert_recovered(tenant, call)


def test_crash_mid_download_then_rerun_stores_each_call_once(tenant: Tenant) -> None:
    tenant.receive_events(tenant.calls)
    # The first 20 connections drop after 4 KB each. A resume keeps the bytes received, so a recording
    # (16 KB and more) needs more than the 2 resumes allowed if all its connections are cut: some fail.
    # The export's dialog_end CDR files are read first (one per hour of a window that covers the calls'
    # whole lives plus a margin) and use up some of the cuts; a CDR file is small enough to survive its
    # resumes: one that failed would fail the whole download task, whose retry would recover every call.
    tenant.sim.faults.break_downloads(20, after_bytes=4096)
    first = run_dag()
    failed = [d for d, o in outcomes(first).items() if o == "still_pending"]
    assert failed and first["recovered"] + len(failed) == len(tenant.calls)
    for dialog_id in failed:
        record = tenant.record(dialog_id)
        assert not record.s3_stored and record.retry_count == 1 and "DownloadError" in record.last_error
    no_leftovers(tenant)
    stored_before = {c.dialog_id: tenant.record(c.dialog_id).s3_stored_at for c in tenant.calls}

    second = run_dag()
    assert second["recovered"] == len(failed)
    for call in tenant.calls:
        assert_recovered(tenant, call)
        if stored_before[call.dialog_id] is not None:
            assert tenant.record(call.dialog_id).s3_stored_at == stored_before[call.dialog_id]
    assert len(tenant.stored_files()) == len(tenant.calls)
    no_leftovers(tenant)


def test_escalation_at_max_attempts_and_at_the_retention_deadline(
    tenant: Tenant, monkeypatch, caplog
) -> None:
    monkeypatch.setenv("OCP_INGEST_MAX_RETRY_COUNT", "1")
    tenant.receive_events(tenant.calls)
    tenant.sim.exports.fail_next("ocp-cards")
    old_end = datetime.now(UTC) - timedelta(days=58)  # past the 55-day deadline (60 - 5)
    old_id = "0" * 31 + "1"
    tenant.ledger.apply(
        CdrEnd(old_id, old_end, 2000, "NORMAL", CallIdentity(ocp_group="ocp-archive", lob="retail"))
    )
    with caplog.at_level(logging.ERROR):
        summary = run_dag()
    cards = [c.dialog_id for c in tenant.calls if c.ocp_group == "ocp-cards"]
    for dialog_id in cards:
        record = tenant.record(dialog_id)
        assert record.terminal_state is TerminalState.UNRECOVERABLE_MAX_ATTEMPTS and record.retry_count == 1
    old = tenant.record(old_id)
    assert old.terminal_state is TerminalState.UNRECOVERABLE_RETENTION
    assert summary["escalated"] == len(cards) + 1
    assert {e["dialog_id"] for e in summary["escalations"]} == {*cards, old_id}
    for dialog_id in [*cards, old_id]:
        assert f"ESCALATED dialog_id={dialog_id}" in caplog.text
    alerts = list((tenant.home / "audit" / "reconciliation" / "alerts").glob("*.json"))
    assert len(alerts) == 1
    assert {e["dialog_id"] for e in json.loads(alerts[0].read_text())["escalations"]} == {*cards, old_id}
    assert run_dag()["plans"] == []  # terminal calls are no longer pending


def test_dry_run_changes_nothing_then_a_window_backfill_finds_lost_calls(tenant: Tenant) -> None:
    known = tenant.calls[: len(tenant.calls) // 2]
    tenant.receive_events(known)
    before = tenant.snapshot()
    dry = run_dag(dry_run=True)
    assert dry["dry_run"] and dry["planned"] == len(known) and dry["recovered"] == 0
    assert tenant.snapshot() == before
    assert tenant.sim.exports.list(None) == []  # nothing was asked of OCP

    # Backfill one hour of one group: its calls OCP knows but the ledger never saw come back too.
    hour = datetime.fromtimestamp(tenant.calls[0].start // 3_600_000 * 3600, UTC)
    in_window = [
        c
        for c in tenant.calls
        if c.ocp_group == "ocp-banking"
        and hour.timestamp() * 1000 <= c.start < hour.timestamp() * 1000 + 3_600_000
    ]
    summary = run_dag(
        window_start=hour.isoformat(),
        window_end=(hour + timedelta(hours=1)).isoformat(),
        ocp_groups=["ocp-banking"],
    )
    # The export holds the hour and every planned call's whole life plus its margin (calls at the
    # hour's edges reach into the hours around it), never more than that.
    (export,) = tenant.sim.exports.list("ocp-banking")
    planned = [c for c in in_window if c in known]
    assert [p.split(":")[0] for p in summary["plans"]] == [
        f"ocp-banking {export.start:%Y-%m-%dT%HZ}..{export.end:%Y-%m-%dT%HZ} ({len(planned)} calls)"
    ]
    margin = 10 * 60 * 1000
    lo, hi = int(export.start.timestamp() * 1000), int(export.end.timestamp() * 1000)
    assert lo <= hour.timestamp() * 1000 and hour.timestamp() * 1000 + 3_600_000 <= hi
    assert all(lo <= c.start - margin and c.end + margin < hi for c in planned)
    assert export.end - export.start <= timedelta(hours=3)
    exported = [c for c in tenant.calls if c.ocp_group == "ocp-banking" and lo <= c.start < hi]
    for call in in_window:
        assert_recovered(tenant, call)
    for call in tenant.calls:
        if call not in in_window:
            record = tenant.ledger.get(call.dialog_id)
            # only calls the ledger never saw, found by the export's manifest diff, are recovered too
            assert (record is not None and record.s3_stored) == (call not in known and call in exported)
    assert summary["discovered_by_manifest_diff"] == sum(c not in known for c in exported)


def test_a_group_backlog_of_days_is_chained_in_one_run_one_export_at_a_time(
    tenant_factory, monkeypatch
) -> None:
    """Five days of lost recordings: each group needs two or three 2-day exports. One run chains them (link n
    of a group asked only once its link n - 1 has waited), recovers every call, and never asks OCP for a
    group's export while another is being prepared (no 409 answered). Every call list travels as a
    manifest here (the inline bound lowered to 2), as a large backlog's would."""
    from ocp_ingest.reconcile import manifests
    from ocp_ingest_dev.simulator.exports import ExportRuleError

    monkeypatch.setattr(manifests, "INLINE_MAX", 2)

    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=5, hours=3)
    tenant = tenant_factory(sim_config(calls=36, window_start=start, window_hours=5 * 24))
    tenant.receive_events(tenant.calls)
    create, conflicts = tenant.sim.exports.create, []

    def counting_conflicts(request):
        try:
            return create(request)
        except ExportRuleError as exc:
            conflicts.append(exc)
            raise

    monkeypatch.setattr(tenant.sim.exports, "create", counting_conflicts)
    dag_run = succeeded_run()
    summary = summary_of(dag_run)
    assert summary["recovered"] == len(tenant.calls) and summary["still_pending"] == 0
    # The fourth link had nothing to ask: the planner skipped it, and no task of it ever started.
    states = task_states(dag_run)
    assert states[("plans_of_link_3", -1)] == "success"
    assert states[("plans_of_link_4", -1)] == "skipped"
    assert {s for (t, _), s in states.items() if t.startswith("export_link_4.")} == {"skipped"}
    assert {"plans_of_link_4", "export_link_4.request_and_wait"} <= never_started(dag_run)
    assert "plans_of_link_3" not in never_started(dag_run)
    for call in tenant.calls:
        assert_recovered(tenant, call)
    assert conflicts == []
    by_group: dict[str, list] = {}
    for job in tenant.sim.exports.jobs.values():
        by_group.setdefault(job.group, []).append(job)
    assert set(by_group) == {c.ocp_group for c in tenant.calls}
    for jobs in by_group.values():
        jobs.sort(key=lambda j: j.created_at)
        assert len(jobs) >= 2  # 5 days: windows of at most 2 days (a sparse group bridges empty hours)
        for earlier, later in itertools.pairwise(jobs):
            assert later.created_at >= earlier.created_at + earlier.prep_s  # the earlier one was done
            assert later.start >= earlier.end  # oldest first, no hour exported twice
    assert max(len(jobs) for jobs in by_group.values()) == 3  # the third link ran too
    written = list((tenant.home / "audit" / "reconciliation" / "manifests").glob("*.json"))
    long_plans = [p for p in summary["plans"] if int(re.search(r"\((\d+) calls?\)", p)[1]) > 2]
    downloads = return_values_of(dag_run, "%.download_and_store")  # every link's
    assert len(downloads) == len(summary["plans"])
    # a download's per-call results of more than 2 rows came back as a manifest too, not inline
    by_reference = [d for d in downloads if "calls" in d]
    assert by_reference and all("outcomes" not in d and d["calls"]["count"] > 2 for d in by_reference)
    assert all(len(d["outcomes"]) <= 2 for d in downloads if "calls" not in d)
    assert len(written) == 1 + len(long_plans) + len(by_reference)  # detection's, plans', downloads'


def test_a_week_long_window_backfill_is_planned_in_one_run(tenant: Tenant) -> None:
    """A backfill of 7 days is four 2-day pieces per group: all four chained in the one run (a dry run
    here: the plans are what is checked, nothing is asked of OCP)."""
    start = datetime(2026, 11, 20, tzinfo=UTC)
    summary = run_dag(
        dry_run=True,
        window_start=start.isoformat(),
        window_end=(start + timedelta(days=7)).isoformat(),
        ocp_groups=["ocp-banking", "ocp-cards"],
    )
    fmt = "%Y-%m-%dT%HZ"
    for group in ("ocp-banking", "ocp-cards"):
        windows = [p.split(" ")[1] for p in summary["plans"] if p.startswith(f"{group} ")]
        pieces = [(start + timedelta(days=d), start + timedelta(days=min(d + 2, 7))) for d in range(0, 7, 2)]
        assert windows == [f"{a:{fmt}}..{b:{fmt}}" for a, b in pieces]
    assert tenant.sim.exports.list(None) == []


def test_nothing_pending_asks_nothing_and_starts_no_export_task(tenant: Tenant) -> None:
    """An empty pending list: the planner skips every link (none of their tasks starts), the run is closed
    with nothing to report and OCP is asked for nothing."""
    dag_run = succeeded_run()
    summary = summary_of(dag_run)
    assert (summary["recovered"], summary["still_pending"], summary["plans"]) == (0, 0, [])
    states = task_states(dag_run)
    assert states[("close_and_escalate", -1)] == "success"
    links = {s for (t, _), s in states.items() if t.startswith(("plans_of_link", "export_link"))}
    assert links == {"skipped"}
    assert never_started(dag_run) >= {t for t, _ in states if t.startswith(("plans_of_link", "export_link"))}
    assert tenant.sim.exports.list(None) == []


def test_a_link_asks_after_every_wait_of_the_previous_link_and_its_plans_need_only_the_planner() -> None:
    """The chain's gate is on the requests themselves: link n's plans are read as soon as the planner is
    done (no task launch between two links), while each of link n's requests waits for every instance of
    link n - 1's waits (different mapped groups: all of them), whatever their end, as long as link n has
    plans."""
    dag = load_dag("ocp_reconciliation")
    prefix = "plans_of_link_"
    links = sorted(int(t.removeprefix(prefix)) for t in dag.task_ids if t.startswith(prefix))
    assert len(links) >= 2
    for n in links:
        assert dag.get_task(f"plans_of_link_{n}").upstream_task_ids == {"plan_exports"}
        wait = dag.get_task(f"export_link_{n}.request_and_wait")
        if n == 1:
            assert wait.upstream_task_ids == {"plans_of_link_1"}
            assert wait.trigger_rule == "all_success"
        else:
            assert wait.upstream_task_ids == {f"plans_of_link_{n}", f"export_link_{n - 1}.request_and_wait"}
            assert wait.trigger_rule == "all_done_min_one_success"


def test_a_group_whose_first_request_failed_still_asks_its_next_link(tenant_factory, monkeypatch) -> None:
    """Link 1's request fails for one group (OCP refuses it, no retries): the other groups' chains go on,
    and link 2 still asks for that group's next window once every link-1 wait has ended (the gate is "all
    done, one success", not "all succeeded"). The failed chain fails the run after close."""
    from ocp_ingest_dev.simulator.exports import ExportRuleError

    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=5, hours=3)
    tenant = tenant_factory(sim_config(calls=36, window_start=start, window_hours=5 * 24))
    tenant.receive_events(tenant.calls)
    refused_group = "ocp-banking"
    create, refused = tenant.sim.exports.create, []

    def refuse_the_groups_first_request(request):
        if request.group == refused_group and not refused:
            refused.append(request)
            raise ExportRuleError(422, wire.ERR_VALIDATION, "refused for the test")
        return create(request)

    monkeypatch.setattr(tenant.sim.exports, "create", refuse_the_groups_first_request)
    dag = load_dag("ocp_reconciliation")
    for task in dag.tasks:
        task.retries = 0
    dag_run = dag.test()
    assert dag_run.state == "failed" and len(refused) == 1
    # link n's map index i is the i-th plan of plan_exports' round n
    index_of = {
        (n, plan["ocp_group"]): i
        for n, plans in enumerate(return_value_of(dag_run, "plan_exports"), start=1)
        for i, plan in enumerate(plans)
    }
    states = task_states(dag_run)
    assert states[("export_link_1.request_and_wait", index_of[(1, refused_group)])] == "failed"
    link_2 = {s for (t, i), s in states.items() if t == "export_link_2.request_and_wait" and i >= 0}
    assert link_2 == {"success"}
    assert (2, refused_group) in index_of
    assert any(job.group == refused_group for job in tenant.sim.exports.jobs.values())
    for call in tenant.calls:
        if call.ocp_group != refused_group:
            assert_recovered(tenant, call)
