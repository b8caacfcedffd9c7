"""Stage 2, reconciliation: find every call that has no stored recording and plan how OCP can return it.

No Airflow here (the DAG's tasks are thin adapters in ``ocp_ingest.airflow``). The steps:

* :func:`detect_pending`: the ledger's pending query (indexed, oldest first) plus its open-calls query
  (a dialog_start long ago and still no dialog_end: the dialog_end was lost), or for a backfill window the
  calls started in that window (indexed by start time) that are pending or open that long;
* :func:`plan_exports`: per OCP group, one hour-aligned export window of 1 h .. 2 days, the way OCP allows
  exports. At most ``max_plans_per_group`` plans per group per run (default 1: exports of a group are then
  strictly serial across the whole system, because the DAG runs one run at a time); the rest is carried
  to the next run, oldest calls first;
* the download itself is :mod:`ocp_ingest.reconcile.download` (in-process or in a pod);
* :func:`close_run`: count an attempt for every planned call not recovered, escalate at the maximum
  attempts or before OCP's retention would purge the call, give calls that never had a recording their
  own terminal state, and build the run's summary.

Calls belong to an export window by their **start** time (the recording file name's dialogTimestamp), which
is how OCP (and the simulator) select calls for an export.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from ocp_ingest.config import Settings
from ocp_ingest.ledger import CallRecord, IngestionSource, Ledger, TerminalState
from ocp_ingest.ledger.model import utcnow
from ocp_ingest.ledger.transitions import AttemptFailed, MarkTerminal, Outcome
from ocp_ingest.ocp import wire
from ocp_ingest.ocp.errors import ExportConflict

log = logging.getLogger(__name__)

HOUR = timedelta(hours=1)
#: What every reconciliation export asks for: the audio and the dialog_end CDRs of the same window
#: (one export, so the manifest diff and the recordings describe exactly the same calls).
EXPORT_DATA_TYPES: tuple[str, ...] = (wire.DataType.RECORDINGS.value, wire.DataType.DIALOG_END.value)
#: Per-call lines kept in a run's summary (the XCom and the log stay small; counts are always complete).
SUMMARY_CALLS_CAP = 200


def floor_hour(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def ceil_hour(value: datetime) -> datetime:
    floored = floor_hour(value)
    return floored if floored == value.astimezone(UTC) else floored + HOUR


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_when(value: str | datetime | None) -> datetime | None:
    """An ISO 8601 timestamp (``Z`` or offset; naive means UTC) or None."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        parsed = value
    else:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


# ------------------------------------------------------------------------------------------ detect
@dataclass(frozen=True)
class PendingCall:
    """What planning needs to know about one pending call (small: it travels through XCom)."""

    dialog_id: str
    ocp_group: str
    start: datetime

    def to_row(self) -> list[str]:
        return [self.dialog_id, self.ocp_group, _iso_precise(self.start)]

    @classmethod
    def from_row(cls, row: Sequence[str]) -> PendingCall:
        start = parse_when(row[2])
        assert start is not None
        return cls(row[0], row[1], start)


def _iso_precise(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def call_start(record: CallRecord) -> datetime | None:
    """When the call started (the export-window key); the end stands in if the start is unknown."""
    return record.call_start_ts or record.call_end_ts


@dataclass(frozen=True)
class PendingQuery:
    """What one run looks at: the pending list, or a backfill window, optionally narrowed."""

    grace: timedelta
    limit: int
    #: Open calls (no dialog_end) started longer ago than this are worked on too; None: ended calls only.
    open_after: timedelta | None = None
    ocp_groups: tuple[str, ...] = ()
    lobs: tuple[str, ...] = ()
    window_start: datetime | None = None
    window_end: datetime | None = None

    @property
    def is_window(self) -> bool:
        return self.window_start is not None and self.window_end is not None


def detect_pending(ledger: Ledger, query: PendingQuery, now: datetime | None = None) -> list[PendingCall]:
    """Pending calls to work on, oldest first, at most ``query.limit``.

    Scheduled runs use the ledger's pending and open-calls indexes (never a scan). A backfill window reads
    the calls started in the window through the start-time index and keeps the pending ones past the
    grace period and the open ones past ``open_after``. Calls without an OCP group cannot be exported and
    are skipped (reported by the ledger's counts).
    """
    now = now or utcnow()
    ended_before = now - query.grace
    started_before = now - query.open_after if query.open_after is not None else None

    def due(r: CallRecord) -> bool:
        if r.is_pending:
            return (r.pending_since or now) < ended_before
        return started_before is not None and r.is_open and (r.open_since or now) < started_before

    if query.is_window:
        assert query.window_start is not None and query.window_end is not None
        groups: list[str | None] = list(query.ocp_groups) or [None]
        records: list[CallRecord] = []
        for group in groups:
            records += [
                r
                for r in ledger.calls_started_between(query.window_start, query.window_end, ocp_group=group)
                if due(r)
            ]
    else:
        wanted = list(query.ocp_groups) or None
        records = ledger.pending(query.grace, query.limit, wanted, now=now)
        if query.open_after is not None:
            records += ledger.open_calls(query.open_after, query.limit, wanted, now=now)
    # Oldest first across both lists: a call's age is its end, or its start while its end is unknown.
    records.sort(key=lambda r: (r.pending_since or r.open_since or now, r.dialog_id))
    found = []
    for record in records:
        if query.lobs and record.lob not in query.lobs:
            continue
        start = call_start(record)
        if record.ocp_group is None or start is None:
            continue
        found.append(PendingCall(record.dialog_id, record.ocp_group, start))
        if len(found) >= query.limit:
            break
    return found


# -------------------------------------------------------------------------------------------- plan
@dataclass(frozen=True)
class ExportPlan:
    """One export to request: an OCP group, an hour-aligned window, and the pending calls it should return."""

    ocp_group: str
    start: datetime
    end: datetime
    dialog_ids: tuple[str, ...]

    def __post_init__(self) -> None:
        start, end = wire.align_window(self.start, self.end)  # OCP's rule, checked where plans are made
        if (start, end) != (self.start, self.end):
            raise ValueError(f"export window must be hour-aligned, got {self.start} .. {self.end}")

    @property
    def label(self) -> str:
        """For the UI (map_index_template) and logs: ``grp-a 2026-11-24T09Z..2026-11-24T12Z (37 calls)``."""
        fmt = "%Y-%m-%dT%HZ"
        n = len(self.dialog_ids)
        return f"{self.ocp_group} {self.start:{fmt}}..{self.end:{fmt}} ({n} call{'s' if n != 1 else ''})"

    def covers(self, ocp_group: str, start: datetime, end: datetime) -> bool:
        return self.ocp_group == ocp_group and (self.start, self.end) == (start, end)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ocp_group": self.ocp_group,
            "start": _iso(self.start),
            "end": _iso(self.end),
            "dialog_ids": list(self.dialog_ids),
            "label": self.label,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ExportPlan:
        start, end = parse_when(data["start"]), parse_when(data["end"])
        assert start is not None and end is not None
        return cls(str(data["ocp_group"]), start, end, tuple(data.get("dialog_ids") or ()))


@dataclass
class PlanningResult:
    plans: list[ExportPlan]
    #: pending calls left for later runs, per OCP group
    carried: dict[str, int] = field(default_factory=dict)

    @property
    def planned_calls(self) -> int:
        return sum(len(p.dialog_ids) for p in self.plans)


def plan_exports(
    pending: Iterable[PendingCall],
    *,
    max_plans_per_group: int = 1,
    max_calls: int = 3000,
    window: tuple[datetime, datetime] | None = None,
    ocp_groups: Iterable[str] = (),
) -> PlanningResult:
    """Group pending calls into export plans: per OCP group, hour-aligned windows of 1 h .. 2 days.

    Each plan starts at the hour of its group's oldest call and takes that group's calls in start order
    while they fit in 2 days and ``max_calls``; its window ends at the hour after the last call taken.
    Hours with nothing pending in between are bridged, not split: an export costs mostly its fixed
    preparation time, and only the planned calls' files are downloaded. Plans come out oldest first.

    With ``window`` (a backfill) every group in ``ocp_groups`` (plus those with pending calls) gets plans
    that cover the window itself, in 2-day pieces, so the manifest diff sees the whole window even where
    the ledger knows no pending call.
    """
    if max_plans_per_group < 1 or max_calls < 1:
        raise ValueError("max_plans_per_group and max_calls must be at least 1")
    by_group: dict[str, list[PendingCall]] = defaultdict(list)
    for call in pending:
        by_group[call.ocp_group].append(call)
    for group in ocp_groups:
        by_group.setdefault(group, [])
    plans: list[ExportPlan] = []
    carried: dict[str, int] = {}
    for group, calls in by_group.items():
        calls.sort(key=lambda c: (c.start, c.dialog_id))
        if window is not None:
            group_plans, rest = _plan_window(group, calls, window, max_plans_per_group, max_calls)
        else:
            group_plans, rest = _plan_pending(group, calls, max_plans_per_group, max_calls)
        plans += group_plans
        if rest:
            carried[group] = rest
    plans.sort(key=lambda p: (p.start, p.ocp_group))
    return PlanningResult(plans, carried)


def _plan_pending(
    group: str, calls: list[PendingCall], max_plans: int, max_calls: int
) -> tuple[list[ExportPlan], int]:
    plans: list[ExportPlan] = []
    i = 0
    while i < len(calls) and len(plans) < max_plans:
        start = floor_hour(calls[i].start)
        limit = start + wire.MAX_WINDOW
        taken: list[PendingCall] = []
        while i < len(calls) and calls[i].start < limit and len(taken) < max_calls:
            taken.append(calls[i])
            i += 1
        end = floor_hour(taken[-1].start) + HOUR
        plans.append(ExportPlan(group, start, end, tuple(c.dialog_id for c in taken)))
    return plans, len(calls) - i


def _plan_window(
    group: str,
    calls: list[PendingCall],
    window: tuple[datetime, datetime],
    max_plans: int,
    max_calls: int,
) -> tuple[list[ExportPlan], int]:
    start, end = floor_hour(window[0]), ceil_hour(window[1])
    end = max(end, start + HOUR)
    plans: list[ExportPlan] = []
    taken = 0
    piece = start
    while piece < end and len(plans) < max_plans:
        piece_end = min(end, piece + wire.MAX_WINDOW)
        ids = tuple(c.dialog_id for c in calls if piece <= c.start < piece_end)[:max_calls]
        plans.append(ExportPlan(group, piece, piece_end, ids))
        taken += len(ids)
        piece = piece_end
    return plans, len(calls) - taken


def plan_sweeps(
    ocp_groups: Iterable[str],
    swept: Mapping[str, set[datetime]],
    *,
    now: datetime,
    lookback: timedelta,
    settle: timedelta,
    busy: Iterable[str] = (),
) -> list[ExportPlan]:
    """Sweep exports: per OCP group without a plan this run, its oldest hours never yet diffed.

    A call whose every event was lost is unknown to the ledger, so no pending or open call puts its window
    in a plan. Every closed hour of every group is therefore diffed once against OCP's dialog_end CDRs:
    hours already covered by any completed export (``swept``, kept by :func:`close_run`) are skipped; an
    hour is swept once it ended ``settle`` ago (calls started in it have ended by then) and not earlier
    than ``lookback``. One window of 1 h .. 2 days per group, from its oldest unswept hour (swept hours
    inside are bridged). The plan names no call: its download recovers what the manifest diff finds.
    """
    first = floor_hour(now - lookback)
    end = floor_hour(now - settle)  # hour H is closed and settled iff H + 1 h <= now - settle
    taken = set(busy)
    plans = []
    for group in sorted(set(ocp_groups) - taken):
        done = swept.get(group, set())
        hour = first
        while hour < end and hour in done:
            hour += HOUR
        if hour < end:
            plans.append(ExportPlan(group, hour, min(end, hour + wire.MAX_WINDOW), ()))
    return plans


# ------------------------------------------------------------------------------------------ export
def adoptable(export: wire.Export, plan: ExportPlan) -> bool:
    """An existing export this plan can use instead of its own: same group, window and data types.

    That is what a retried task or a cleared run finds after a 409: its own earlier export.
    """
    return (
        export.group == plan.ocp_group
        and (export.start, export.end) == (plan.start, plan.end)
        and set(EXPORT_DATA_TYPES) <= {d.value for d in export.data_types}
        and (export.status.is_active or export.status is wire.ExportStatus.COMPLETED)
    )


def create_or_adopt(client: Any, plan: ExportPlan) -> tuple[str | None, str | None]:
    """Create the plan's export (sync client). Returns ``(export_id, None)`` when created or adopted, or
    ``(None, blocking_export_id)`` when another export holds the group: a 409 means "wait", not failure.
    """
    for _ in range(3):  # the blocker may finish between the 409 and our look at it
        try:
            export = client.create_export(plan.ocp_group, plan.start, plan.end, EXPORT_DATA_TYPES)
            return export.export_id, None
        except ExportConflict as conflict:
            blocker = getattr(conflict, "active_export_id", None)
            if blocker:
                candidates = [client.get_export(blocker)]
            else:
                candidates = [e for e in client.list_exports(plan.ocp_group) if e.status.is_active]
            for export in candidates:
                if adoptable(export, plan):
                    log.info(
                        "adopting export %s for %s (409: it is this plan's own)", export.export_id, plan.label
                    )
                    return export.export_id, None
            active = [e for e in candidates if e.status.is_active]
            if active:
                return None, active[0].export_id
    raise ExportConflict(f"group {plan.ocp_group}: export keeps conflicting without an active export")


# ------------------------------------------------------------------------------------------- close
@dataclass(frozen=True)
class ExportOutcome:
    """What happened to one plan's export and download (the inputs of :func:`close_run`)."""

    plan: ExportPlan
    #: COMPLETED | FAILED | EXPIRED | TIMEOUT | BLOCKED | DRY_RUN | ERROR | DOWNLOAD_FAILED
    export_status: str
    export_id: str | None = None
    message: str = ""
    #: per call, from the download: stored | already_stored | not_in_export | rejected | conflict | error
    call_outcomes: Mapping[str, str] = field(default_factory=dict)
    call_details: Mapping[str, str] = field(default_factory=dict)
    #: calls the manifest diff found (their events never reached the ledger)
    discovered: tuple[str, ...] = ()
    #: calls in the export's dialog_end CDRs that are not SIP (origin_uri), so they never have audio
    no_recording: Mapping[str, str] = field(default_factory=dict)
    #: the download read the export's dialog_end CDRs and diffed them against the ledger (its hours swept)
    manifest_diffed: bool = False


@dataclass
class CallResult:
    dialog_id: str
    ocp_group: str
    outcome: str
    detail: str = ""


@dataclass
class RunSummary:
    """The run's report: its task's return value and log line."""

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

    def add(self, result: CallResult) -> None:
        self.counts[result.outcome] += 1
        self.by_group.setdefault(result.ocp_group, Counter())[result.outcome] += 1
        self.calls.append(result)

    def to_dict(self) -> dict[str, Any]:
        c = self.counts
        return {
            "run_id": self.run_id,
            "dry_run": self.dry_run,
            "plans": self.plans,
            "recovered": c["recovered"],
            "already_stored": c["already_stored"],
            "still_pending": c["still_pending"],
            "escalated": c["escalated"],
            "no_recording_expected": c["no_recording_expected"],
            "planned": c["planned"],
            "discovered_by_manifest_diff": self.discovered,
            "carried_to_next_run": sum(self.carried.values()),
            "failed_chains": self.failed_chains,
            "by_group": {g: dict(v) for g, v in sorted(self.by_group.items())},
            "escalations": self.escalated[:SUMMARY_CALLS_CAP],
            "calls": [vars(r) for r in self.calls[:SUMMARY_CALLS_CAP]],
            "calls_truncated": max(0, len(self.calls) - SUMMARY_CALLS_CAP),
        }


def retention_deadline(record: CallRecord, settings: Settings) -> datetime | None:
    """The last moment reconciliation may still try: OCP's retention minus the safety margin."""
    end = record.call_end_ts or record.call_start_ts
    if end is None:
        return None
    return end + timedelta(days=settings.ocp_retention_days - settings.retention_safety_days)


_NO_ATTEMPT = {"BLOCKED", "DRY_RUN"}  # nothing was tried, so nothing is counted
#: a plan's task failed after its retries (ERROR: requesting or waiting; DOWNLOAD_FAILED: the download).
#: Its calls count no attempt (the failure is ours, not theirs) but are still escalated at OCP's retention
#: deadline; the run fails, which is what alerts.
CHAIN_FAILED = {"ERROR", "DOWNLOAD_FAILED"}


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
    retried close or a cleared run changes nothing twice.
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
        if record.ingestion_source is IngestionSource.RECONCILIATION and said == "stored":
            return CallResult(dialog_id, group, "recovered", record.object_url or "")
        return CallResult(dialog_id, group, "already_stored", f"by {record.ingestion_source}")
    if record.terminal_state is not None:
        return CallResult(
            dialog_id, group, _terminal_outcome(record.terminal_state), record.terminal_reason or ""
        )
    if dry_run or outcome.export_status == "DRY_RUN":
        return CallResult(dialog_id, group, "planned", outcome.plan.label)
    if outcome.export_status in _NO_ATTEMPT:
        return CallResult(dialog_id, group, "still_pending", outcome.message or outcome.export_status)
    if outcome.export_status in CHAIN_FAILED:
        # Our task failed, not this call's recovery: no attempt is counted (an outage of a few runs must
        # not use up every call's attempts; the failed run is what alerts), but OCP's retention waits for
        # nobody: a call at its deadline is escalated now.
        error = _attempt_error(outcome, said, "")
        escalated = _escalate_if_due(ledger, settings, record, group, error, now, summary)
        return escalated or CallResult(dialog_id, group, "still_pending", error)
    if outcome.export_status == "COMPLETED" and dialog_id in outcome.no_recording:
        reason = (
            f"not SIP (origin_uri {outcome.no_recording[dialog_id]!r}) and not in completed export "
            f"{outcome.export_id}"
        )
        ledger.apply(MarkTerminal(dialog_id, TerminalState.NO_RECORDING_EXPECTED, reason))
        return CallResult(dialog_id, group, "no_recording_expected", reason)
    error = _attempt_error(outcome, said, outcome.call_details.get(dialog_id, ""))
    result = ledger.apply(AttemptFailed(dialog_id, run_id, error))
    current = result.record or record
    if result.outcome is Outcome.ALREADY_STORED:
        return CallResult(dialog_id, group, "already_stored", "stored meanwhile")
    escalated = _escalate_if_due(ledger, settings, current, group, error, now, summary)
    attempt = f"attempt {current.retry_count}: {error}"
    return escalated or CallResult(dialog_id, group, "still_pending", attempt)


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
        return CallResult(dialog_id, group, "escalated", f"{state.value}: {reason}")
    if applied.outcome is Outcome.ALREADY_STORED:
        return CallResult(dialog_id, group, "already_stored", "stored meanwhile")
    return CallResult(dialog_id, group, "escalated", record.terminal_reason or reason)


def _terminal_outcome(state: TerminalState) -> str:
    return "no_recording_expected" if state is TerminalState.NO_RECORDING_EXPECTED else "escalated"


def _attempt_error(outcome: ExportOutcome, said: str, detail: str) -> str:
    if outcome.export_status != "COMPLETED":
        text = f"export {outcome.export_id or '-'} {outcome.export_status}"
        return f"{text}: {outcome.message}"[:500] if outcome.message else text
    if said in ("", "not_in_export"):
        return f"recording not in export {outcome.export_id}"
    return f"{said}: {detail}"[:500] if detail else said


def _escalation(record: CallRecord, settings: Settings, now: datetime) -> tuple[TerminalState, str] | None:
    # Retention first: a call about to be purged by OCP needs a human now, whatever its attempt count.
    deadline = retention_deadline(record, settings)
    if deadline is not None and now >= deadline:
        return (
            TerminalState.UNRECOVERABLE_RETENTION,
            f"OCP retention ({settings.ocp_retention_days} d) nearly over; deadline {_iso(deadline)} passed",
        )
    if record.retry_count >= settings.max_retry_count:
        return (
            TerminalState.UNRECOVERABLE_MAX_ATTEMPTS,
            f"not recovered after {record.retry_count} reconciliation attempts",
        )
    return None


def audit_export_milestone(
    ledger: Ledger, event_type: str, dialog_ids: Sequence[str], export_id: str, detail: str
) -> int:
    """Put an export milestone (EXPORT_COMPLETED, EXPORT_EXPIRED) in each planned call's audit trail."""
    if ledger.audit is None:
        return 0
    from ocp_ingest.audit.events import export_event
    from ocp_ingest.audit.schema import AuditEventType

    records = ledger.get_many(list(dialog_ids))
    at = ledger.clock()
    for dialog_id in dialog_ids:
        if dialog_id in records:
            ledger.audit_event(
                export_event(AuditEventType(event_type), records[dialog_id], export_id, at=at, detail=detail)
            )
    return len(records)
