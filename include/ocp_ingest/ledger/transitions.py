"""Every way a call's ledger record can change, in one module.

Each transition is a pure function of the current record (or ``None`` for an unknown call) that
returns the new record, or ``None`` when nothing changes. Backends never decide anything: the
:class:`~ocp_ingest.ledger.base.Ledger` reads, applies a transition here, and writes back with a
version check. So SQLite and DynamoDB behave identically, and "where is a call marked stored?" has
one answer: :class:`Stored`.

Rules that make the ledger safe under at-least-once, out-of-order delivery and racing writers:
- flags only go from false to true, and the time each was first set is kept;
- CALL_STATUS only moves forward (ACTIVE < FINISHED_* < COMPLETED);
- identity fields (groups, account, flow, LOB) are filled when missing, never overwritten;
- a stored call is never un-stored, re-stored with other bytes, or made terminal.
"""

from __future__ import annotations

import copy
import enum
from dataclasses import dataclass
from datetime import datetime, timedelta

from ocp_ingest.ledger.model import (
    STATUS_RANK,
    CallRecord,
    CallStatus,
    IngestionSource,
    TerminalState,
)

#: How ``last_error`` starts when different bytes were refused for a call; storing does not clear it.
CONFLICT_ERROR = "conflicting audio"


class Outcome(enum.StrEnum):
    APPLIED = "APPLIED"
    # Duplicate or late event: the record already says this (or something newer).
    UNCHANGED = "UNCHANGED"
    # A store or terminal request for a call that is already stored with the same bytes.
    ALREADY_STORED = "ALREADY_STORED"
    # A store request with bytes that differ from the stored recording: refused, never overwritten.
    CONFLICT = "CONFLICT"


@dataclass(frozen=True)
class TransitionResult:
    outcome: Outcome
    record: CallRecord | None


@dataclass(frozen=True)
class CallIdentity:
    """What a CDR says about who/where the call is; merged into the record when missing."""

    dialog_group: str | None = None
    ocp_group: str | None = None
    account_id: str | None = None
    flow_name: str | None = None
    destination_uri: str | None = None
    lob: str | None = None


def _new(dialog_id: str, now: datetime) -> CallRecord:
    return CallRecord(dialog_id=dialog_id, created_at=now, updated_at=now)


def _merge_identity(record: CallRecord, identity: CallIdentity | None) -> None:
    if identity is None:
        return
    for name in ("dialog_group", "ocp_group", "account_id", "flow_name", "destination_uri", "lob"):
        value = getattr(identity, name)
        if value is not None and getattr(record, name) is None:
            setattr(record, name, value)


def _advance_status(record: CallRecord, status: CallStatus) -> None:
    if STATUS_RANK[status] > STATUS_RANK[record.call_status]:
        record.call_status = status


class Transition:
    """Base class: subclasses implement :meth:`change` on a private copy of the record."""

    dialog_id: str

    def apply(self, current: CallRecord | None, now: datetime) -> TransitionResult:
        # every field is an immutable scalar: a shallow copy is a private copy
        record = copy.copy(current) if current is not None else _new(self.dialog_id, now)
        outcome = self.change(record, now)
        if outcome is not Outcome.APPLIED:
            return TransitionResult(outcome, None)
        if current is not None and record == current:
            return TransitionResult(Outcome.UNCHANGED, None)
        record.updated_at = now
        return TransitionResult(Outcome.APPLIED, record)

    def change(self, record: CallRecord, now: datetime) -> Outcome:
        raise NotImplementedError

    @property
    def name(self) -> str:
        return type(self).__name__


@dataclass(frozen=True)
class CdrStart(Transition):
    """dialog_start: opens the call (ACTIVE). A late dialog_start never reopens an ended call."""

    dialog_id: str
    start_ts: datetime
    identity: CallIdentity | None = None

    def change(self, record: CallRecord, now: datetime) -> Outcome:
        if record.call_start_ts is None:
            record.call_start_ts = self.start_ts
        _merge_identity(record, self.identity)
        return Outcome.APPLIED


@dataclass(frozen=True)
class IvrEnd(Transition):
    """The call ended inside the IVR: duration and closure reason, FINISHED_IVR."""

    dialog_id: str
    end_ts: datetime
    duration_ms: int | None
    reason: str | None
    identity: CallIdentity | None = None

    def change(self, record: CallRecord, now: datetime) -> Outcome:
        _merge_identity(record, self.identity)
        if record.ivr_end_reason is None and self.reason is not None:
            record.ivr_end_reason = self.reason
        # dialog_end is authoritative for end time and duration; IVR end only fills gaps.
        if not record.has_cdr_end:
            if record.duration_ms is None:
                record.duration_ms = self.duration_ms
            if record.call_end_ts is None:
                record.call_end_ts = self.end_ts
        _advance_status(record, CallStatus.FINISHED_IVR)
        return Outcome.APPLIED


@dataclass(frozen=True)
class CdrEnd(Transition):
    """dialog_end: HAS_CDR_END, end time, duration, end type (TRANSFER means an agent took it)."""

    dialog_id: str
    end_ts: datetime
    duration_ms: int | None
    end_type: str | None
    identity: CallIdentity | None = None

    def change(self, record: CallRecord, now: datetime) -> Outcome:
        _merge_identity(record, self.identity)
        if record.has_cdr_end:
            return Outcome.APPLIED  # a duplicate may still fill identity gaps; else UNCHANGED
        record.has_cdr_end = True
        record.cdr_end_at = now
        record.call_end_ts = self.end_ts
        if self.duration_ms is not None:
            record.duration_ms = self.duration_ms
        record.end_type = self.end_type
        if record.call_start_ts is None and self.duration_ms is not None:
            record.call_start_ts = self.end_ts - timedelta(milliseconds=self.duration_ms)
        if self.end_type == "TRANSFER" and record.call_status is CallStatus.FINISHED_IVR:
            record.call_status = CallStatus.FINISHED_AGENT  # dialog_end's verdict beats IVR end's
        _advance_status(
            record, CallStatus.FINISHED_AGENT if self.end_type == "TRANSFER" else CallStatus.FINISHED_IVR
        )
        return Outcome.APPLIED


@dataclass(frozen=True)
class FileReceived(Transition):
    """A complete pushed body reached landing: FILE_RECEIVED at once, and the first body claims the call.

    The first complete body wins: a different body while that claim stands is a CONFLICT (as is one
    that differs from the stored recording), so which body is stored never depends on thread timing.
    """

    dialog_id: str
    sha256: str
    size_bytes: int

    def change(self, record: CallRecord, now: datetime) -> Outcome:
        if record.s3_stored:
            return Outcome.ALREADY_STORED if record.sha256 == self.sha256 else Outcome.CONFLICT
        if record.received_sha256 not in (None, self.sha256):
            return Outcome.CONFLICT
        record.received_sha256 = self.sha256
        if not record.file_received:
            record.file_received = True
            record.file_received_at = now
        return Outcome.APPLIED


@dataclass(frozen=True)
class AudioRejected(Transition):
    """The received recording was refused (invalid, or its processing failed): POST_PROCESS_OK stays
    false with the reason, the call stays pending, and the refused body's claim is released."""

    dialog_id: str
    reason: str

    def change(self, record: CallRecord, now: datetime) -> Outcome:
        if record.s3_stored:
            return Outcome.ALREADY_STORED
        record.last_error = self.reason
        record.received_sha256 = None
        return Outcome.APPLIED


@dataclass(frozen=True)
class Stored(Transition):
    """Validated and persisted: FILE_RECEIVED, POST_PROCESS_OK, S3_STORED, COMPLETED, and the source.

    This is the only place a call becomes stored. A second store of the same bytes (the other path
    won the race) is ALREADY_STORED; of different bytes, CONFLICT. Neither changes the record.
    A call that had been made terminal is rescued: a stored recording beats any escalation.
    """

    dialog_id: str
    object_url: str
    sha256: str
    size_bytes: int
    source: IngestionSource
    audio_format: str | None = None
    audio_duration_s: float | None = None
    identity: CallIdentity | None = None

    def change(self, record: CallRecord, now: datetime) -> Outcome:
        if record.s3_stored:
            return Outcome.ALREADY_STORED if record.sha256 == self.sha256 else Outcome.CONFLICT
        _merge_identity(record, self.identity)
        for flag in ("file_received", "post_process_ok", "s3_stored"):
            setattr(record, flag, True)
            stamp = "post_process_at" if flag == "post_process_ok" else f"{flag}_at"
            if getattr(record, stamp) is None:
                setattr(record, stamp, now)
        record.object_url = self.object_url
        record.sha256 = self.sha256
        record.size_bytes = self.size_bytes
        record.audio_format = self.audio_format
        record.audio_duration_s = self.audio_duration_s
        record.ingestion_source = self.source
        record.call_status = CallStatus.COMPLETED
        if not (record.last_error or "").startswith(CONFLICT_ERROR):  # a conflict stays flagged
            record.last_error = None
        record.terminal_state = None
        record.terminal_reason = None
        record.terminal_at = None
        return Outcome.APPLIED


@dataclass(frozen=True)
class ConflictingAudio(Transition):
    """Different bytes arrived for a call: they were quarantined, and the call is flagged.

    Touches nothing else: a stored recording stays exactly as it was.
    """

    dialog_id: str
    sha256: str
    quarantine_url: str

    def change(self, record: CallRecord, now: datetime) -> Outcome:
        record.last_error = f"{CONFLICT_ERROR} sha256={self.sha256} quarantined at {self.quarantine_url}"
        return Outcome.APPLIED


@dataclass(frozen=True)
class ExportRequested(Transition):
    """Reconciliation asked OCP for this call's window; remember which export carries it."""

    dialog_id: str
    export_id: str

    def change(self, record: CallRecord, now: datetime) -> Outcome:
        if record.s3_stored:
            return Outcome.ALREADY_STORED
        record.export_id = self.export_id
        return Outcome.APPLIED


@dataclass(frozen=True)
class AttemptFailed(Transition):
    """A reconciliation attempt ended without the recording: RETRY_COUNT + 1.

    ``attempt_id`` (e.g. the DAG run id) makes this idempotent: a retried task or a cleared run
    counts the same attempt once.
    """

    dialog_id: str
    attempt_id: str
    error: str

    def change(self, record: CallRecord, now: datetime) -> Outcome:
        if record.s3_stored:
            return Outcome.ALREADY_STORED
        if record.terminal_state is not None or record.last_attempt_id == self.attempt_id:
            return Outcome.UNCHANGED
        record.retry_count += 1
        record.last_attempt_id = self.attempt_id
        record.last_attempt_at = now
        record.last_error = self.error
        return Outcome.APPLIED


@dataclass(frozen=True)
class MarkTerminal(Transition):
    """The call will never be stored: no recording expected, or unrecoverable (escalated)."""

    dialog_id: str
    state: TerminalState
    reason: str

    def change(self, record: CallRecord, now: datetime) -> Outcome:
        if record.s3_stored:
            return Outcome.ALREADY_STORED
        if record.terminal_state is not None:
            return Outcome.UNCHANGED  # the first verdict stands; its reason is the audit's
        record.terminal_state = self.state
        record.terminal_reason = self.reason
        record.terminal_at = now
        return Outcome.APPLIED
