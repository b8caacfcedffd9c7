"""Close: settle every planned (or discovered) call of a run and build the run's summary.

Results come back per plan (the download's summary, which carries its wait's result) and are matched to
the plans by label. Then an attempt is counted for every call not recovered; a call is escalated at the
maximum attempts or before OCP's retention would purge it; calls that never had a recording get their own
terminal state. A plan whose chain failed after its retries counts no attempt (the failure is ours).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from ocp_ingest.config import Settings
from ocp_ingest.ledger import CallRecord, IngestionSource, Ledger, TerminalState
from ocp_ingest.ledger.model import utcnow
from ocp_ingest.ledger.transitions import AttemptFailed, MarkTerminal, Outcome
from ocp_ingest.reconcile.detect import PendingCall, pending_call
from ocp_ingest.reconcile.download import CallDownload, DownloadStatus, per_call_results
from ocp_ingest.reconcile.exports import ExportOutcomeStatus
from ocp_ingest.reconcile.plan import ExportPlan, margin_cut
from ocp_ingest.reconcile.windows import floor_hour, iso_seconds

log = logging.getLogger(__name__)

#: Per-call lines kept in a run's summary (the XCom and the log stay small; counts are always complete).
SUMMARY_CALLS_CAP = 200
#: Nothing was tried, so nothing is counted.
_NO_ATTEMPT = {ExportOutcomeStatus.BLOCKED, ExportOutcomeStatus.DRY_RUN}
#: A plan's task failed after its retries (ERROR: requesting or waiting; DOWNLOAD_FAILED: the download).
#: Its calls count no attempt (the failure is ours, not theirs) but are still escalated at OCP's retention
#: deadline; the run fails, which is what alerts.
CHAIN_FAILED = {ExportOutcomeStatus.ERROR, ExportOutcomeStatus.DOWNLOAD_FAILED}


class CallVerdict(StrEnum):
    """Where one call of the run stands after the close."""

    RECOVERED = "recovered"
    ALREADY_STORED = "already_stored"
    STILL_PENDING = "still_pending"
    ESCALATED = "escalated"
    NO_RECORDING_EXPECTED = "no_recording_expected"
    #: a dry run: the call would have been in this plan
    PLANNED = "planned"


@dataclass(frozen=True)
class ExportOutcome:
    """What happened to one plan's export and download (the inputs of :func:`close_run`)."""

    plan: ExportPlan
    export_status: ExportOutcomeStatus
    export_id: str | None = None
    message: str = ""
    #: per call, from the download
    call_outcomes: Mapping[str, str] = field(default_factory=dict)
    call_details: Mapping[str, str] = field(default_factory=dict)
    #: calls the manifest diff found (their events never reached the ledger)
    discovered: tuple[str, ...] = ()
    #: calls in the export's dialog_end CDRs that are not SIP (origin_uri), so they never have audio
    no_recording: Mapping[str, str] = field(default_factory=dict)
    #: the download read the export's dialog_end CDRs and diffed them against the ledger (its hours swept)
    manifest_diffed: bool = False
    #: the export listed recordings but none of the planned calls expecting one (see the download)
    anomaly: str = ""


def match_outcomes(
    plans: Sequence[ExportPlan], downloads: Iterable[Any], waits: Iterable[Any] = ()
) -> list[ExportOutcome]:
    """One outcome per plan. Results are matched to plans by the plan's label, not by position: a chain
    that failed has no result, and the others must not shift onto its plan.

    ``downloads``: the downloads' summaries (``DownloadSummary.to_dict``), each carrying its wait's
    ``export_status`` and ``message``. ``waits``: the request-and-wait results, only asked about plans
    without a download: a wait result there means the download failed, none means the request or the
    wait did.
    """
    downloads_by_plan = {
        d["plan_label"]: d for d in downloads if isinstance(d, Mapping) and "plan_label" in d
    }
    waits_by_plan = {w["plan"]["label"]: w for w in waits if isinstance(w, Mapping) and w.get("plan")}
    outcomes = []
    for plan in plans:
        got = downloads_by_plan.get(plan.label)
        if got is None:
            outcomes.append(_failed_chain(plan, waits_by_plan.get(plan.label)))
            continue
        status = ExportOutcomeStatus(got.get("export_status") or ExportOutcomeStatus.ERROR)
        if status is ExportOutcomeStatus.COMPLETED and got.get("status") == DownloadStatus.EXPIRED:
            status = ExportOutcomeStatus.EXPIRED
        calls = per_call_results(got)
        outcomes.append(
            ExportOutcome(
                plan=plan,
                export_status=status,
                export_id=got.get("export_id") or None,
                message=got.get("message") or "",
                call_outcomes=calls["outcomes"],
                call_details=calls["details"],
                discovered=tuple(calls["discovered"]),
                no_recording=calls["no_recording"],
                manifest_diffed=(
                    status is ExportOutcomeStatus.COMPLETED and got.get("status") == DownloadStatus.DONE
                ),
                anomaly=got.get("anomaly") or "",
            )
        )
    return outcomes


def _failed_chain(plan: ExportPlan, wait: Mapping[str, Any] | None) -> ExportOutcome:
    """The outcome of a plan without a download result: which step of its chain failed."""
    if wait is None:
        status = ExportOutcomeStatus.ERROR
        message = "request_and_wait failed after its retries (see its log)"
    else:
        status = ExportOutcomeStatus(wait.get("export_status") or ExportOutcomeStatus.ERROR)
        message = wait.get("message") or ""
        if status is ExportOutcomeStatus.COMPLETED:
            status = ExportOutcomeStatus.DOWNLOAD_FAILED
            message = "download_and_store failed after its retries (see its log)"
    return ExportOutcome(plan, status, (wait or {}).get("export_id"), message)


def carried_calls(pending: Iterable[PendingCall], plans: Iterable[ExportPlan]) -> dict[str, int]:
    """Per OCP group, the pending calls no plan of this run took: the next run starts with them."""
    planned = Counter(p.ocp_group for p in plans for _ in p.dialog_ids)
    found = Counter(c.ocp_group for c in pending)
    return {g: n - planned.get(g, 0) for g, n in found.items() if n > planned.get(g, 0)}


@dataclass
class CallResult:
    dialog_id: str
    ocp_group: str
    outcome: CallVerdict
    detail: str = ""

    def to_dict(self) -> dict[str, str]:
        return {
            "dialog_id": self.dialog_id,
            "ocp_group": self.ocp_group,
            "outcome": str(self.outcome),
            "detail": self.detail,
        }


@dataclass
class RunSummary:
    """The run's report: its close task's return value and log line."""

    run_id: str
    dry_run: bool = False
    plans: list[str] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    by_group: dict[str, Counter[str]] = field(default_factory=dict)
    calls: list[CallResult] = field(default_factory=list)
    escalated: list[dict[str, str]] = field(default_factory=list)
    carried: dict[str, int] = field(default_factory=dict)
    discovered: int = 0
    #: plans whose request or download task failed after its retries (their calls count no attempt)
    failed_chains: list[str] = field(default_factory=list)
    #: exports whose listing had recordings but none of their planned calls: the run must alert
    anomalies: list[str] = field(default_factory=list)
    #: calls whose file OCP's throttling kept from being asked for (no attempt counted; next run)
    throttled: int = 0

    def add(self, result: CallResult) -> None:
        self.counts[str(result.outcome)] += 1
        self.by_group.setdefault(result.ocp_group, Counter())[str(result.outcome)] += 1
        self.calls.append(result)

    def to_dict(self) -> dict[str, Any]:
        c = self.counts
        return {
            "run_id": self.run_id,
            "dry_run": self.dry_run,
            "plans": self.plans,
            "recovered": c[CallVerdict.RECOVERED],
            "already_stored": c[CallVerdict.ALREADY_STORED],
            "still_pending": c[CallVerdict.STILL_PENDING],
            "escalated": c[CallVerdict.ESCALATED],
            "no_recording_expected": c[CallVerdict.NO_RECORDING_EXPECTED],
            "planned": c[CallVerdict.PLANNED],
            "discovered_by_manifest_diff": self.discovered,
            "carried_to_next_run": sum(self.carried.values()),
            "throttled": self.throttled,
            "failed_chains": self.failed_chains,
            "anomalies": self.anomalies,
            "by_group": {g: dict(v) for g, v in sorted(self.by_group.items())},
            "escalations": self.escalated[:SUMMARY_CALLS_CAP],
            "calls": [r.to_dict() for r in self.calls[:SUMMARY_CALLS_CAP]],
            "calls_truncated": max(0, len(self.calls) - SUMMARY_CALLS_CAP),
        }


def retention_deadline(record: CallRecord, settings: Settings) -> datetime | None:
    """The last moment reconciliation may still try: OCP's retention minus the safety margin."""
    end = record.call_end_ts or record.call_start_ts
    if end is None:
        return None
    return end + timedelta(days=settings.ocp_retention_days - settings.retention_safety_days)


def close_run(
    ledger: Ledger,
    settings: Settings,
    outcomes: Sequence[ExportOutcome],
    *,
    run_id: str,
    dry_run: bool = False,
    carried: Mapping[str, int] | None = None,
    now: datetime | None = None,
) -> RunSummary:
    """Settle every planned (or discovered) call of the run and build its summary.

    Idempotent: ``AttemptFailed`` carries the run id, terminal states keep their first verdict, so a
    retried close or a cleared run changes nothing twice. Settled hours of a completed export whose
    manifest was diffed are remembered as swept (see :mod:`ocp_ingest.reconcile.sweep`).
    """
    now = now or utcnow()
    summary = RunSummary(run_id=run_id, dry_run=dry_run, carried=dict(carried or {}))
    for outcome in outcomes:
        plan = outcome.plan
        summary.plans.append(
            f"{plan.label}: {outcome.export_status}" + (f" {outcome.export_id}" if outcome.export_id else "")
        )
        if outcome.export_status in CHAIN_FAILED:
            summary.failed_chains.append(plan.label)
        if outcome.anomaly:
            # Calls still count their attempt (a lost recording must still escalate), but the run alerts.
            summary.anomalies.append(f"{plan.label}: {outcome.anomaly}")
        if outcome.manifest_diffed and outcome.export_id and not dry_run:
            # Only settled hours count as swept: a call still going on in a recent hour has no dialog_end
            # in this export yet, and a sweep must still look at that hour later.
            settled = floor_hour(now - timedelta(seconds=settings.open_call_timeout_s))
            if plan.start < settled:
                ledger.mark_swept(plan.ocp_group, plan.start, min(plan.end, settled), outcome.export_id)
        summary.discovered += len(outcome.discovered)
        ids = list(dict.fromkeys([*plan.dialog_ids, *outcome.discovered]))
        records = ledger.get_many(ids)
        for dialog_id in ids:
            record = records.get(dialog_id)
            if record is None:
                continue  # only possible in a dry run (a discovery is never applied there)
            summary.add(_settle(ledger, settings, outcome, record, run_id, dry_run, now, summary))
    return summary


def _settle(
    ledger: Ledger,
    settings: Settings,
    outcome: ExportOutcome,
    record: CallRecord,
    run_id: str,
    dry_run: bool,
    now: datetime,
    summary: RunSummary,
) -> CallResult:
    dialog_id, group = record.dialog_id, record.ocp_group or outcome.plan.ocp_group
    said = outcome.call_outcomes.get(dialog_id, "")
    if record.s3_stored:
        if record.ingestion_source is IngestionSource.RECONCILIATION and said == CallDownload.STORED:
            return CallResult(dialog_id, group, CallVerdict.RECOVERED, record.object_url or "")
        return CallResult(dialog_id, group, CallVerdict.ALREADY_STORED, f"by {record.ingestion_source}")
    if record.terminal_state is not None:
        return CallResult(
            dialog_id, group, _terminal_verdict(record.terminal_state), record.terminal_reason or ""
        )
    if dry_run or outcome.export_status is ExportOutcomeStatus.DRY_RUN:
        return CallResult(dialog_id, group, CallVerdict.PLANNED, outcome.plan.label)
    if outcome.export_status in _NO_ATTEMPT:
        return CallResult(
            dialog_id, group, CallVerdict.STILL_PENDING, outcome.message or str(outcome.export_status)
        )
    if outcome.export_status in CHAIN_FAILED:
        # Our task failed, not this call's recovery: no attempt is counted (an outage of a few runs must
        # not use up every call's attempts; the failed run is what alerts), but OCP's retention waits for
        # nobody: a call at its deadline is escalated now.
        error = _attempt_error(outcome, said, "")
        return _pending_without_attempt(ledger, settings, record, group, error, now, summary)
    if said == CallDownload.THROTTLED:
        # OCP throttled the download before this call's file was asked for: OCP's state, not the call's
        # recovery. No attempt; the next run tries again (retention still escalates).
        summary.throttled += 1
        detail = outcome.call_details.get(dialog_id) or "OCP throttled the download: not tried"
        return _pending_without_attempt(ledger, settings, record, group, detail, now, summary)
    if outcome.export_status is ExportOutcomeStatus.COMPLETED and dialog_id in outcome.no_recording:
        reason = (
            f"not SIP (origin_uri {outcome.no_recording[dialog_id]!r}) and not in completed export "
            f"{outcome.export_id}"
        )
        ledger.apply(MarkTerminal(dialog_id, TerminalState.NO_RECORDING_EXPECTED, reason))
        return CallResult(dialog_id, group, CallVerdict.NO_RECORDING_EXPECTED, reason)
    if said == CallDownload.NOT_IN_EXPORT and _margin_cut(outcome.plan, record, settings):
        # The plan cut this call's margin (OCP's 2-day limit): its absence proves nothing, so no attempt;
        # the next run asks with its whole window.
        detail = (
            f"not in export {outcome.export_id}, whose window held the call's life but not all of its "
            "margin: asked again with its whole window"
        )
        return _pending_without_attempt(ledger, settings, record, group, detail, now, summary)
    error = _attempt_error(outcome, said, outcome.call_details.get(dialog_id, ""))
    result = ledger.apply(AttemptFailed(dialog_id, run_id, error))
    current = result.record or record
    if result.outcome is Outcome.ALREADY_STORED:
        return CallResult(dialog_id, group, CallVerdict.ALREADY_STORED, "stored meanwhile")
    escalated = _escalate_if_due(ledger, settings, current, group, error, now, summary)
    attempt = f"attempt {current.retry_count}: {error}"
    return escalated or CallResult(dialog_id, group, CallVerdict.STILL_PENDING, attempt)


def _pending_without_attempt(
    ledger: Ledger,
    settings: Settings,
    record: CallRecord,
    group: str,
    detail: str,
    now: datetime,
    summary: RunSummary,
) -> CallResult:
    """A call left pending with no attempt counted (the miss was not its recovery's); OCP's retention
    waits for nobody, so one at its deadline is escalated all the same."""
    escalated = _escalate_if_due(ledger, settings, record, group, detail, now, summary)
    return escalated or CallResult(record.dialog_id, group, CallVerdict.STILL_PENDING, detail)


def _margin_cut(plan: ExportPlan, record: CallRecord, settings: Settings) -> bool:
    call = pending_call(record)
    return call is not None and margin_cut(plan, call, timedelta(seconds=settings.open_call_timeout_s))


def _escalate_if_due(
    ledger: Ledger,
    settings: Settings,
    record: CallRecord,
    group: str,
    error: str,
    now: datetime,
    summary: RunSummary,
) -> CallResult | None:
    """Escalate ``record`` if it is at its retention deadline or out of attempts; None if not due."""
    verdict = _escalation(record, settings, now)
    if verdict is None:
        return None
    dialog_id = record.dialog_id
    state, reason = verdict
    applied = ledger.apply(MarkTerminal(dialog_id, state, f"{reason}; last error: {error}"))
    if applied.outcome is Outcome.APPLIED:
        log.error(
            "ESCALATED dialog_id=%s ocp_group=%s state=%s reason=%s", dialog_id, group, state.value, reason
        )
        summary.escalated.append({"dialog_id": dialog_id, "ocp_group": group, "state": state.value})
        return CallResult(dialog_id, group, CallVerdict.ESCALATED, f"{state.value}: {reason}")
    if applied.outcome is Outcome.ALREADY_STORED:
        return CallResult(dialog_id, group, CallVerdict.ALREADY_STORED, "stored meanwhile")
    return CallResult(dialog_id, group, CallVerdict.ESCALATED, record.terminal_reason or reason)


def _terminal_verdict(state: TerminalState) -> CallVerdict:
    if state is TerminalState.NO_RECORDING_EXPECTED:
        return CallVerdict.NO_RECORDING_EXPECTED
    return CallVerdict.ESCALATED


def _attempt_error(outcome: ExportOutcome, said: str, detail: str) -> str:
    if outcome.export_status is not ExportOutcomeStatus.COMPLETED:
        text = f"export {outcome.export_id or '-'} {outcome.export_status}"
        return f"{text}: {outcome.message}"[:500] if outcome.message else text
    if said in ("", CallDownload.NOT_IN_EXPORT):
        return f"recording not in export {outcome.export_id}"
    return f"{said}: {detail}"[:500] if detail else said


def _escalation(record: CallRecord, settings: Settings, now: datetime) -> tuple[TerminalState, str] | None:
    # Retention first: a call about to be purged by OCP needs a human now, whatever its attempt count.
    deadline = retention_deadline(record, settings)
    if deadline is not None and now >= deadline:
        return (
            TerminalState.UNRECOVERABLE_RETENTION,
            f"OCP retention ({settings.ocp_retention_days} d) nearly over; "
            f"deadline {iso_seconds(deadline)} passed",
        )
    if record.retry_count >= settings.max_retry_count:
        return (
            TerminalState.UNRECOVERABLE_MAX_ATTEMPTS,
            f"not recovered after {record.retry_count} reconciliation attempts",
        )
    return None
