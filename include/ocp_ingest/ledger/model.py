"""The call ledger's record: the seed's flags table plus what operating it needs.

One record per call, keyed by the OCP dialog id. Field names follow the seed (CALL_ID, CALL_STATUS,
HAS_CDR_END, FILE_RECEIVED, POST_PROCESS_OK, S3_STORED, INGESTION_SOURCE, RETRY_COUNT) in snake case.
Timestamps are timezone-aware UTC datetimes, stored by backends as fixed-width ISO 8601 strings so
they sort lexicographically (DynamoDB sort keys, SQLite indexes).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from typing import Any, overload


class CallStatus(enum.StrEnum):
    ACTIVE = "ACTIVE"
    FINISHED_IVR = "FINISHED_IVR"
    FINISHED_AGENT = "FINISHED_AGENT"
    COMPLETED = "COMPLETED"


# Status only moves forward; the two FINISHED states share a rank so an IVR end and a TRANSFER
# dialog_end arriving in either order settle on the dialog_end's verdict.
STATUS_RANK = {
    CallStatus.ACTIVE: 0,
    CallStatus.FINISHED_IVR: 1,
    CallStatus.FINISHED_AGENT: 1,
    CallStatus.COMPLETED: 2,
}


class IngestionSource(enum.StrEnum):
    REALTIME = "REALTIME"
    RECONCILIATION = "RECONCILIATION"


class TerminalState(enum.StrEnum):
    """Why a call will never be stored. Every call ends stored or in one of these, with a reason."""

    NO_RECORDING_EXPECTED = "NO_RECORDING_EXPECTED"
    UNRECOVERABLE_MAX_ATTEMPTS = "UNRECOVERABLE_MAX_ATTEMPTS"
    UNRECOVERABLE_RETENTION = "UNRECOVERABLE_RETENTION"


def utcnow() -> datetime:
    return datetime.now(UTC)


TS_WIDTH = len("2026-11-25T10:00:00.000000Z")


@overload
def format_ts(value: datetime) -> str: ...
@overload
def format_ts(value: None) -> None: ...
@overload
def format_ts(value: datetime | None) -> str | None: ...
def format_ts(value: datetime | None) -> str | None:
    """Fixed-width UTC ISO 8601 (``2026-11-25T10:00:00.000000Z``): sorts as text."""
    if value is None:
        return None
    offset = value.utcoffset()
    if offset is None:
        raise ValueError("ledger timestamps must be timezone-aware")
    if offset:
        value = value.astimezone(UTC)
    # isoformat (C code, cheaper than strftime) also pads years below 1000: the width stays fixed
    return value.isoformat(timespec="microseconds")[:-6] + "Z"


def parse_ts(value: str | None) -> datetime | None:
    if value is None or value == "":
        return None
    if len(value) != TS_WIDTH or value[-1] != "Z":
        raise ValueError(f"not a ledger timestamp (YYYY-MM-DDTHH:MM:SS.ffffffZ): {value!r}")
    # fromisoformat is C code, an order of magnitude faster than strptime (read on every ledger get)
    return datetime.fromisoformat(value)


def hours_between(start: datetime, end: datetime) -> list[datetime]:
    """The whole hours ``start, start + 1 h, ...`` before ``end`` (``start`` is hour-aligned)."""
    hours, hour = [], start
    while hour < end:
        hours.append(hour)
        hour += timedelta(hours=1)
    return hours


def from_epoch_ms(value: int | float) -> datetime:
    return datetime.fromtimestamp(value / 1000, tz=UTC)


@dataclass
class CallRecord:
    """Current state of one call. Mutated only through :mod:`ocp_ingest.ledger.transitions`."""

    dialog_id: str
    call_status: CallStatus = CallStatus.ACTIVE
    call_start_ts: datetime | None = None
    call_end_ts: datetime | None = None
    duration_ms: int | None = None
    end_type: str | None = None
    ivr_end_reason: str | None = None
    dialog_group: str | None = None
    ocp_group: str | None = None
    account_id: str | None = None
    flow_name: str | None = None
    destination_uri: str | None = None
    lob: str | None = None
    # The seed's flags, each with the time it was first set.
    has_cdr_end: bool = False
    cdr_end_at: datetime | None = None
    file_received: bool = False
    file_received_at: datetime | None = None
    #: The SHA-256 of the first complete pushed body: the call's claim, so a later different body is a
    #: conflict whatever the timing. Released when that body is rejected.
    received_sha256: str | None = None
    post_process_ok: bool = False
    post_process_at: datetime | None = None
    s3_stored: bool = False
    s3_stored_at: datetime | None = None
    ingestion_source: IngestionSource | None = None
    retry_count: int = 0
    # Where and what was stored.
    object_url: str | None = None
    sha256: str | None = None
    size_bytes: int | None = None
    audio_format: str | None = None
    audio_duration_s: float | None = None
    # Reconciliation bookkeeping.
    export_id: str | None = None
    last_error: str | None = None
    last_attempt_id: str | None = None
    last_attempt_at: datetime | None = None
    terminal_state: TerminalState | None = None
    terminal_reason: str | None = None
    terminal_at: datetime | None = None
    # Optimistic concurrency: every write checks the version it read.
    version: int = 0
    created_at: datetime = field(default_factory=utcnow)
    updated_at: datetime = field(default_factory=utcnow)

    @property
    def is_terminal(self) -> bool:
        return self.terminal_state is not None

    @property
    def is_pending(self) -> bool:
        """Ended, not stored, not terminal: the reconciliation DAG's work list."""
        return self.has_cdr_end and not self.s3_stored and self.terminal_state is None

    @property
    def pending_since(self) -> datetime | None:
        """The time the call became pending (its end), used to order and age the pending list."""
        if not self.is_pending:
            return None
        return self.call_end_ts or self.cdr_end_at

    @property
    def is_open(self) -> bool:
        """Known but without a dialog_end (lost, or the call is still going), not stored, not terminal.

        An open call is not pending; once it is older than any call could last, reconciliation asks OCP
        for its window (the export's dialog_end CDRs then close it, or its attempts run out).
        """
        return not self.has_cdr_end and not self.s3_stored and self.terminal_state is None

    @property
    def open_since(self) -> datetime | None:
        """When an open call started (what the open-calls index is ordered by)."""
        if not self.is_open:
            return None
        return self.call_start_ts or self.call_end_ts or self.created_at

    def to_item(self) -> dict[str, Any]:
        """Plain JSON-able dict (enums as strings, datetimes as fixed-width ISO strings)."""
        item: dict[str, Any] = {}
        for name, convert in _TO_ITEM:  # every field is a scalar: no (deep-copying) dataclasses.asdict
            value = getattr(self, name)
            item[name] = value if convert is None or value is None else convert(value)
        return item

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> CallRecord:
        kwargs: dict[str, Any] = {}
        for name, convert in _FROM_ITEM:
            value = item.get(name)
            if value is not None:
                kwargs[name] = convert(value) if convert is not None else value
        return cls(**kwargs)


RECORD_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(CallRecord))


def _converter(name: str) -> Any:
    """How a stored item's value becomes the record's field (None: kept as stored)."""
    if name.endswith(("_ts", "_at")):
        return parse_ts
    special: dict[str, Any] = {
        "call_status": CallStatus,
        "ingestion_source": IngestionSource,
        "terminal_state": TerminalState,
        "audio_duration_s": float,
    }
    if name in special:
        return special[name]
    if name in ("has_cdr_end", "file_received", "post_process_ok", "s3_stored"):
        return bool
    if name in ("duration_ms", "retry_count", "size_bytes", "version"):
        return int
    return None


def _enum_value(value: Any) -> Any:
    return value.value if isinstance(value, enum.Enum) else value


def _to_stored(name: str) -> Any:
    """How a record's field becomes the stored item's value (None: kept as it is); the inverse of
    :func:`_converter`."""
    convert = _converter(name)
    if convert is parse_ts:
        return format_ts
    if isinstance(convert, type) and issubclass(convert, enum.Enum):
        return _enum_value
    return None


# Built once: from_item runs for every record read, to_item for every record written.
_FROM_ITEM: tuple[tuple[str, Any], ...] = tuple((name, _converter(name)) for name in RECORD_FIELDS)
_TO_ITEM: tuple[tuple[str, Any], ...] = tuple((name, _to_stored(name)) for name in RECORD_FIELDS)
