"""Audit events: one append-only row per applied ledger transition (plus export milestones).

:func:`event_from_transition` is the one mapping from a transition to an event; the ledger calls it
through :class:`~ocp_ingest.audit.sink.AuditSink` for every change it writes and commits the event in the
same transaction (the outbox), so no code path can change a call without leaving a row.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ocp_ingest.audit.schema import AuditEventType
from ocp_ingest.ledger.model import CallRecord, IngestionSource, TerminalState
from ocp_ingest.ledger.transitions import (
    AttemptFailed,
    AudioRejected,
    CdrEnd,
    CdrStart,
    ConflictingAudio,
    ExportRequested,
    FileReceived,
    IvrEnd,
    MarkTerminal,
    Stored,
    Transition,
)

OPERATOR = "OPERATOR"


@dataclass(frozen=True)
class AuditEvent:
    """One row of ``audit_events`` (see :data:`~ocp_ingest.audit.schema.AUDIT_EVENT_SCHEMA`)."""

    event_type: str
    event_ts: datetime
    dialog_id: str | None
    lob: str | None = None
    ocp_group: str | None = None
    dialog_group: str | None = None
    source: str | None = None
    actor: str | None = None
    transition: str | None = None
    call_start_ts: datetime | None = None
    call_end_ts: datetime | None = None
    object_url: str | None = None
    sha256: str | None = None
    size_bytes: int | None = None
    export_id: str | None = None
    retry_count: int | None = None
    terminal_state: str | None = None
    detail: str | None = None
    ledger_version: int | None = None
    event_id: str = ""

    def __post_init__(self) -> None:
        if not self.event_id:
            object.__setattr__(self, "event_id", uuid.uuid4().hex)

    def row(self) -> dict[str, Any]:
        """The Parquet row: timestamps as zone-less UTC (the schema's convention)."""
        row = dict(self.__dict__)  # scalars only: no (deep-copying) dataclasses.asdict
        for name, value in row.items():
            if isinstance(value, datetime):
                row[name] = value.astimezone(UTC).replace(tzinfo=None)
        row.pop("lob")  # a partition column: in the path, not in the file
        return row

    def to_json(self) -> str:
        """The event as stored in the ledger's audit outbox (timestamps ISO 8601 with their zone)."""
        plain = {k: v.isoformat() if isinstance(v, datetime) else v for k, v in self.__dict__.items()}
        return json.dumps(plain, separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> AuditEvent:
        plain: dict[str, Any] = json.loads(text)
        for name in _TIMESTAMPS:
            if plain.get(name):
                plain[name] = datetime.fromisoformat(plain[name])
        return cls(**plain)


_TIMESTAMPS = ("event_ts", "call_start_ts", "call_end_ts")


def _source_of(transition: Transition, new: CallRecord) -> str | None:
    if isinstance(transition, Stored):
        return transition.source.value
    if isinstance(transition, (ExportRequested, AttemptFailed, MarkTerminal)):
        return IngestionSource.RECONCILIATION.value
    if isinstance(transition, (CdrStart, IvrEnd, CdrEnd)):
        return None  # a CDR arrives by push or by an export's manifest: the actor tells which
    return None


def _event_type(transition: Transition) -> AuditEventType:
    if isinstance(transition, MarkTerminal):
        if transition.state is TerminalState.NO_RECORDING_EXPECTED:
            return AuditEventType.TERMINAL
        return AuditEventType.ESCALATED
    return _BY_TRANSITION[type(transition)]


_BY_TRANSITION: dict[type[Transition], AuditEventType] = {
    CdrStart: AuditEventType.CDR_START,
    IvrEnd: AuditEventType.IVR_END,
    CdrEnd: AuditEventType.CDR_END,
    FileReceived: AuditEventType.FILE_RECEIVED,
    AudioRejected: AuditEventType.AUDIO_REJECTED,
    Stored: AuditEventType.STORED,
    ConflictingAudio: AuditEventType.CONFLICTING_AUDIO,
    ExportRequested: AuditEventType.EXPORT_REQUESTED,
    AttemptFailed: AuditEventType.ATTEMPT_FAILED,
}


def _detail(transition: Transition, old: CallRecord | None) -> str | None:
    if isinstance(transition, AudioRejected):
        return transition.reason
    if isinstance(transition, ConflictingAudio):
        return f"conflicting sha256={transition.sha256} quarantined at {transition.quarantine_url}"
    if isinstance(transition, AttemptFailed):
        return f"attempt {transition.attempt_id}: {transition.error}"
    if isinstance(transition, MarkTerminal):
        return transition.reason
    if isinstance(transition, Stored) and old is not None and old.terminal_state is not None:
        return f"rescued from {old.terminal_state.value}"
    if isinstance(transition, CdrEnd):
        return f"end_type={transition.end_type}" if transition.end_type else None
    if isinstance(transition, IvrEnd):
        return f"reason={transition.reason}" if transition.reason else None
    return None


def event_from_transition(
    transition: Transition, old: CallRecord | None, new: CallRecord, actor: str | None
) -> AuditEvent:
    """The audit row for an applied transition (``new`` is the record as written)."""
    # For a conflict the interesting bytes are the refused ones, in quarantine.
    object_url = transition.quarantine_url if isinstance(transition, ConflictingAudio) else new.object_url
    return AuditEvent(
        event_type=_event_type(transition).value,
        event_ts=new.updated_at,
        dialog_id=new.dialog_id,
        lob=new.lob,
        ocp_group=new.ocp_group,
        dialog_group=new.dialog_group,
        source=_source_of(transition, new),
        actor=actor,
        transition=transition.name,
        call_start_ts=new.call_start_ts,
        call_end_ts=new.call_end_ts,
        object_url=object_url,
        sha256=getattr(transition, "sha256", None) or new.sha256,
        size_bytes=getattr(transition, "size_bytes", None) or new.size_bytes,
        export_id=new.export_id,
        retry_count=new.retry_count,
        terminal_state=new.terminal_state.value if new.terminal_state else None,
        detail=_detail(transition, old),
        ledger_version=new.version,
    )


def export_event(
    event_type: AuditEventType, record: CallRecord, export_id: str, *, at: datetime, detail: str | None = None
) -> AuditEvent:
    """An export milestone for one call (completed with its file, expired): not a ledger change."""
    return AuditEvent(
        event_type=event_type.value,
        event_ts=at,
        dialog_id=record.dialog_id,
        lob=record.lob,
        ocp_group=record.ocp_group,
        dialog_group=record.dialog_group,
        source=IngestionSource.RECONCILIATION.value,
        call_start_ts=record.call_start_ts,
        call_end_ts=record.call_end_ts,
        export_id=export_id,
        retry_count=record.retry_count,
        detail=detail,
        ledger_version=record.version,
    )
