"""Detect: the calls a reconciliation run works on.

The ledger's pending query (indexed, oldest first) plus its open-calls query (a dialog_start long ago and
still no dialog_end: the dialog_end was lost), or for a backfill window the calls started in that window
(indexed by start time) that are pending or open that long. A call's start (the recording file name's
dialogTimestamp), its end and its attempts so far are kept: planning covers the call's whole life, since
OCP may select CDR lines by their own event time rather than by the call's start.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import chain
from typing import Any

from ocp_ingest.ledger import CallRecord, Ledger
from ocp_ingest.ledger.model import utcnow
from ocp_ingest.reconcile.manifests import is_reference, needs_manifest, read_manifest, write_manifest
from ocp_ingest.reconcile.windows import iso_precise, parse_when


@dataclass(frozen=True, slots=True)  # slots: a backlog holds one per pending call
class PendingCall:
    """What planning needs to know about one pending call (small: it travels through XCom).

    ``end`` (the dialog_end, None while unknown) and ``retry_count`` let planning cover the call's whole
    life and widen the window of a call an earlier export did not explain.
    """

    dialog_id: str
    ocp_group: str
    start: datetime
    end: datetime | None = None
    retry_count: int = 0

    def to_row(self) -> list[str | int]:
        end = iso_precise(self.end) if self.end is not None else ""
        return [self.dialog_id, self.ocp_group, iso_precise(self.start), end, self.retry_count]

    @classmethod
    def from_row(cls, row: Sequence[str | int]) -> PendingCall:
        start = parse_when(str(row[2]))
        assert start is not None
        # Rows of three (a run planned before end and retries travelled) still read.
        end = parse_when(str(row[3])) if len(row) > 3 and row[3] else None
        retries = int(row[4]) if len(row) > 4 and row[4] not in (None, "") else 0
        return cls(str(row[0]), str(row[1]), start, end, retries)


def call_start(record: CallRecord) -> datetime | None:
    """When the call started (the export-window key); the end stands in if the start is unknown."""
    return record.call_start_ts or record.call_end_ts


def pending_call(record: CallRecord) -> PendingCall | None:
    """What planning needs of ``record``; None for a call that cannot be exported (no OCP group or no
    time). An end before the start (clock skew) travels as it is: planning covers both."""
    start = call_start(record)
    if record.ocp_group is None or start is None:
        return None
    return PendingCall(record.dialog_id, record.ocp_group, start, record.call_end_ts, record.retry_count)


@dataclass(frozen=True)
class PendingQuery:
    """What one run looks at: the pending list, or a backfill window, optionally narrowed."""

    grace: timedelta
    #: At most this many calls (None: every pending call)
    limit: int | None
    #: Open calls (no dialog_end) started longer ago than this are worked on too; None: ended calls only.
    open_after: timedelta | None = None
    ocp_groups: tuple[str, ...] = ()
    lobs: tuple[str, ...] = ()
    window_start: datetime | None = None
    window_end: datetime | None = None

    def __post_init__(self) -> None:
        start, end = self.window_start, self.window_end
        if (start is None) != (end is None):
            raise ValueError("give both window_start and window_end (ISO 8601), or neither")
        if start is not None and end is not None and end <= start:
            raise ValueError(f"window_end {end} must be after window_start {start}")

    @property
    def window(self) -> tuple[datetime, datetime] | None:
        if self.window_start is None or self.window_end is None:
            return None
        return self.window_start, self.window_end

    @property
    def is_window(self) -> bool:
        return self.window is not None


def detect_pending(ledger: Ledger, query: PendingQuery, now: datetime | None = None) -> list[PendingCall]:
    """Pending calls to work on, oldest first, at most ``query.limit`` (None: all).

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

    window = query.window
    records: Iterable[CallRecord]
    if window is not None:
        groups: list[str | None] = list(query.ocp_groups) or [None]
        records = (
            r for group in groups for r in ledger.calls_started_between(*window, ocp_group=group) if due(r)
        )
    else:
        wanted = list(query.ocp_groups) or None
        records = ledger.iter_pending(query.grace, query.limit, wanted, now=now)
        if query.open_after is not None:
            records = chain(records, ledger.iter_open_calls(query.open_after, query.limit, wanted, now=now))
    # Each record becomes a compact row as the pages stream past: a backlog of any size is held as small
    # rows, never as ledger records.
    aged: list[tuple[tuple[datetime, str], PendingCall]] = []
    for record in records:
        if query.lobs and record.lob not in query.lobs:
            continue
        call = pending_call(record)
        if call is None:
            continue
        # Oldest first across both lists: a call's age is its end, or its start while its end is unknown.
        aged.append(((record.pending_since or record.open_since or now, record.dialog_id), call))
    aged.sort(key=lambda pair: pair[0])
    return [call for _, call in aged[: query.limit]]


def backfill_groups(ledger: Ledger, query: PendingQuery) -> tuple[str, ...]:
    """The OCP groups a backfill window covers: the ones asked for, or else every group the ledger knows
    in the window (of the chosen LOBs, if any); none for a scheduled run."""
    window = query.window
    if window is None:
        return ()
    if query.ocp_groups:
        return tuple(sorted(set(query.ocp_groups)))
    groups: set[str] = set()
    lobs: list[str | None] = [*query.lobs] or [None]  # no LOB given: all of them
    for lob in lobs:
        groups |= {r.ocp_group for r in ledger.calls_started_between(*window, lob=lob) if r.ocp_group}
    return tuple(sorted(groups))


@dataclass(frozen=True)
class Detection:
    """A run's detect step: the pending calls, plus the window and groups a backfill asked for."""

    calls: tuple[PendingCall, ...]
    window: tuple[datetime, datetime] | None = None
    ocp_groups: tuple[str, ...] = ()
    dry_run: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "calls": [c.to_row() for c in self.calls],
            "window": [w.isoformat() for w in self.window] if self.window else None,
            "ocp_groups": list(self.ocp_groups),
            "dry_run": self.dry_run,
        }

    def to_reference(self, layout: Any) -> dict[str, Any]:
        """As it travels between tasks: many pending calls in a manifest object (any number of them), a few
        inline, all inline without ``layout`` (a dry run writes nothing)."""
        if not needs_manifest(len(self.calls), layout):
            return self.to_dict()
        small = {k: v for k, v in self.to_dict().items() if k != "calls"}
        return {**small, **write_manifest(layout, [c.to_row() for c in self.calls])}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Detection:
        """A detection dict (or reference: its calls are read from the manifest) as a detection again."""
        window = None
        if data.get("window"):
            start, end = (parse_when(v) for v in data["window"])
            assert start is not None and end is not None
            window = (start, end)
        rows = read_manifest(data) if is_reference(data) else data.get("calls") or ()
        return cls(
            calls=tuple(PendingCall.from_row(r) for r in rows),
            window=window,
            ocp_groups=tuple(data.get("ocp_groups") or ()),
            dry_run=bool(data.get("dry_run")),
        )


def detect(ledger: Ledger, query: PendingQuery, *, dry_run: bool = False) -> Detection:
    """The run's pending calls and, for a backfill, the groups its window covers."""
    return Detection(
        tuple(detect_pending(ledger, query)), query.window, backfill_groups(ledger, query), dry_run
    )
