"""close: results matched to plans by label (a failed chain too), the carried count, the chain-failed rule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ocp_ingest.config import Settings
from ocp_ingest.ledger import Ledger, TerminalState
from ocp_ingest.ledger.transitions import CallIdentity, CdrEnd, CdrStart
from ocp_ingest.reconcile.close import (
    CallVerdict,
    ExportOutcome,
    carried_calls,
    close_run,
    match_outcomes,
)
from ocp_ingest.reconcile.detect import PendingCall
from ocp_ingest.reconcile.download import CallDownload, DownloadStatus, DownloadSummary
from ocp_ingest.reconcile.exports import ExportOutcomeStatus as Status
from ocp_ingest.reconcile.plan import ExportPlan

T0 = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


def plan(group: str, *ids: str) -> ExportPlan:
    return ExportPlan(group, T0, T0 + HOUR, ids)


def wait(p: ExportPlan, status: str, export_id: str | None = "exp", message: str = "") -> dict:
    return {"plan": p.to_dict(), "export_id": export_id, "export_status": status, "message": message}


def test_results_are_matched_by_label_and_a_failed_chain_does_not_shift_the_others() -> None:
    a, b, c, d = plan("grp-a", "A"), plan("grp-b", "B"), plan("grp-c", "C"), plan("grp-d", "D")
    done = DownloadSummary("exp-c", plan_label=c.label, outcomes={"C": CallDownload.STORED})
    skipped = DownloadSummary(
        "exp-d", plan_label=d.label, export_status=Status.FAILED, message="no", status=DownloadStatus.SKIPPED
    )
    # a: the download failed after a completed wait; b: the request failed (no wait result at all).
    downloads = [skipped.to_dict(), done.to_dict()]  # not in plan order, and two are missing
    waits = [wait(a, "COMPLETED", "exp-a"), wait(c, "COMPLETED", "exp-c"), wait(d, "FAILED", "exp-d")]

    outcomes = {o.plan.ocp_group: o for o in match_outcomes([a, b, c, d], downloads, waits)}

    assert outcomes["grp-a"].export_status is Status.DOWNLOAD_FAILED
    assert outcomes["grp-a"].export_id == "exp-a" and "download_and_store failed" in outcomes["grp-a"].message
    assert outcomes["grp-b"].export_status is Status.ERROR and outcomes["grp-b"].export_id is None
    assert "request_and_wait failed" in outcomes["grp-b"].message
    assert outcomes["grp-c"].export_status is Status.COMPLETED and outcomes["grp-c"].manifest_diffed
    assert outcomes["grp-c"].call_outcomes == {"C": "stored"}
    assert outcomes["grp-d"].export_status is Status.FAILED and outcomes["grp-d"].message == "no"
    assert not outcomes["grp-d"].manifest_diffed


def test_a_download_that_kept_expiring_is_an_expired_export() -> None:
    p = plan("grp-a", "A")
    expired = DownloadSummary("exp-2", plan_label=p.label, status=DownloadStatus.EXPIRED)
    (outcome,) = match_outcomes([p], [expired.to_dict()])
    assert outcome.export_status is Status.EXPIRED and not outcome.manifest_diffed


def test_the_carried_count_is_what_no_plan_took_per_group() -> None:
    pending = [PendingCall(f"{i:032X}", "grp-a" if i < 5 else "grp-b", T0) for i in range(7)]
    plans = [plan("grp-a", *(f"{i:032X}" for i in range(3))), plan("grp-b", "5", "6"), plan("grp-z")]
    assert carried_calls(pending, plans) == {"grp-a": 2}
    assert carried_calls(pending, []) == {"grp-a": 5, "grp-b": 2}


def test_a_failed_chain_counts_no_attempt_but_retention_still_escalates(
    ledger: Ledger, settings: Settings
) -> None:
    now = datetime.now(UTC)
    fresh, old = "0" * 31 + "1", "0" * 31 + "2"
    for dialog_id, end in ((fresh, now - timedelta(hours=2)), (old, now - timedelta(days=58))):
        ledger.apply(CdrEnd(dialog_id, end, 2000, "NORMAL", CallIdentity(ocp_group="grp-a", lob="retail")))
    p = ExportPlan("grp-a", T0, T0 + HOUR, (fresh, old))
    failed = ExportOutcome(p, Status.DOWNLOAD_FAILED, "exp", "download_and_store failed")

    summary = close_run(ledger, settings, [failed], run_id="run-1", now=now)

    verdicts = {c.dialog_id: c.outcome for c in summary.calls}
    assert verdicts == {fresh: CallVerdict.STILL_PENDING, old: CallVerdict.ESCALATED}
    assert summary.failed_chains == [p.label]
    pending = ledger.get(fresh)
    assert pending is not None and pending.is_pending and pending.retry_count == 0
    record = ledger.get(old)
    assert record is not None and record.terminal_state is TerminalState.UNRECOVERABLE_RETENTION
    assert record.retry_count == 0 and "DOWNLOAD_FAILED" in (record.terminal_reason or "")
    assert summary.to_dict()["calls"][0]["outcome"] == "still_pending"


def test_a_call_whose_margin_the_two_day_limit_cut_counts_no_attempt_when_absent(
    ledger: Ledger, settings: Settings
) -> None:
    now = datetime.now(UTC)
    edge, inner, narrow = "0" * 31 + "1", "0" * 31 + "2", "0" * 31 + "3"
    base = now.replace(minute=0, second=0, microsecond=0) - timedelta(days=3)
    lives = {
        edge: (base + timedelta(hours=47, minutes=55), base + timedelta(hours=47, minutes=58)),
        inner: (base + timedelta(hours=20, minutes=30), base + timedelta(hours=20, minutes=33)),
    }
    for dialog_id, (start, end) in lives.items():
        identity = CallIdentity(ocp_group="grp-a", lob="retail")
        ledger.apply(CdrStart(dialog_id, start, identity))
        ledger.apply(CdrEnd(dialog_id, end, 180_000, "NORMAL", identity))
    two_days = ExportPlan("grp-a", base, base + timedelta(days=2), (edge, inner))
    absent = {edge: CallDownload.NOT_IN_EXPORT, inner: CallDownload.NOT_IN_EXPORT}
    done = ExportOutcome(two_days, Status.COMPLETED, "exp-1", call_outcomes=absent)

    summary = close_run(ledger, settings, [done], run_id="run-1", now=now)

    by_id = {c.dialog_id: c for c in summary.calls}
    assert by_id[edge].outcome is CallVerdict.STILL_PENDING and "whole window" in by_id[edge].detail
    assert by_id[inner].outcome is CallVerdict.STILL_PENDING
    assert ledger.get(edge).retry_count == 0  # type: ignore[union-attr]
    assert ledger.get(inner).retry_count == 1  # type: ignore[union-attr]  # held whole: a real attempt
    # A narrower window that misses a margin was not cut by OCP's limit: its absence is an attempt.
    ledger.apply(CdrStart(narrow, lives[edge][0], CallIdentity(ocp_group="grp-a", lob="retail")))
    ledger.apply(CdrEnd(narrow, lives[edge][1], 180_000, "NORMAL", None))
    short = ExportPlan("grp-a", base + timedelta(hours=47), base + timedelta(hours=48), (narrow,))
    absent_short = ExportOutcome(short, Status.COMPLETED, "exp-2", call_outcomes={narrow: "not_in_export"})
    close_run(ledger, settings, [absent_short], run_id="run-1", now=now)
    assert ledger.get(narrow).retry_count == 1  # type: ignore[union-attr]
