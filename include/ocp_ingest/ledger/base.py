"""The ledger interface: one facade over interchangeable storage backends.

Backends (SQLite, DynamoDB) only store and query records with a version check. The facade owns the
read-apply-conditional-write loop, so both backends share one behaviour, and two writers racing on
the same call (realtime and reconciliation) resolve deterministically: one write wins, the other
re-reads and gets a clear outcome (e.g. ALREADY_STORED) instead of an error.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from ocp_ingest.ledger.model import CallRecord, hours_between, utcnow
from ocp_ingest.ledger.transitions import Outcome, Transition, TransitionResult


class LedgerContention(RuntimeError):
    """Too many concurrent writers on one call; the caller's task should be retried."""


@dataclass(frozen=True)
class OutboxEntry:
    """One audit event in the ledger's outbox: committed in the same transaction as its ledger change, so a
    crash can never keep the change and lose the event; published to the Parquet trail later
    (:mod:`ocp_ingest.audit.outbox`) and then deleted.

    ``body`` is opaque to the backend. ``claim``: the audit file a publisher is writing it to (set in one
    transaction for the whole file, so any later publisher re-writes exactly that file, create-only).
    """

    event_id: str
    body: str
    created_at: str  # ISO 8601 UTC, when it was committed
    claim: str | None = None
    claimed_at: str | None = None


class LedgerBackend(Protocol):
    """Storage for call records. Implementations must make :meth:`write` atomic per record.

    The ``outbox_*`` methods and the ``outbox`` argument of :meth:`write` are the audit outbox: an entry
    given to :meth:`write` is stored iff the record is (one transaction). The ``cdr_inbox_*`` methods keep
    accepted CDR events until the realtime DAG rolls them into the manifest.
    """

    def get(self, dialog_id: str) -> CallRecord | None: ...

    def get_many(self, dialog_ids: Sequence[str]) -> dict[str, CallRecord]: ...

    def write(self, record: CallRecord, expected_version: int, outbox: OutboxEntry | None = None) -> bool:
        """Store ``record`` iff the stored version equals ``expected_version`` (0: must not exist), and
        ``outbox`` with it in the same transaction.

        Returns False on a version conflict, never overwriting a concurrent writer's change.
        """
        ...

    def outbox_add(self, entries: Sequence[OutboxEntry]) -> None:
        """Store entries that belong to no ledger change (export milestones)."""
        ...

    def outbox_claim(self, event_ids: Sequence[str], claim: str, at: str) -> set[str]:
        """Claim the unclaimed entries among ``event_ids`` for the file ``claim``, in one transaction (at most
        :attr:`outbox_claim_limit` ids); returns those claimed now."""
        ...

    def outbox_list(self, created_before: str, limit: int) -> list[OutboxEntry]:
        """Entries not yet published (claimed or not) committed before ``created_before``, oldest first."""
        ...

    def outbox_unclaim(self, event_ids: Sequence[str]) -> None: ...

    def outbox_delete(self, event_ids: Sequence[str]) -> None:
        """Published: remove them (missing ones are ignored)."""
        ...

    def cdr_inbox_add(self, events: Sequence[tuple[str, str]], at: str) -> list[bool | None]:
        """Keep accepted CDR events ``(event_id, body)`` until they are rolled into the manifest; the id is
        the de-dup. Per event: True (new), False (this id is kept with the same body) or None (this id is
        kept with a different body: nothing was written for it)."""
        ...

    def cdr_inbox_list(self, limit: int) -> list[tuple[str, str]]:
        """Kept CDR events ``(event_id, body)``, oldest first."""
        ...

    def cdr_inbox_delete(self, event_ids: Sequence[str]) -> None:
        """Rolled: forget them (missing ones are ignored)."""
        ...

    def iter_pending(
        self, ended_before: datetime, limit: int | None, ocp_groups: Sequence[str] | None = None
    ) -> Iterator[CallRecord]:
        """Pending calls (ended, not stored, not terminal) that ended before ``ended_before``,
        oldest first, at most ``limit`` (None: all), read page by page as they are consumed. Must use an
        index, never a full scan."""
        ...

    def iter_open_calls(
        self, started_before: datetime, limit: int | None, ocp_groups: Sequence[str] | None = None
    ) -> Iterator[CallRecord]:
        """Open calls (known, no dialog_end, not stored, not terminal) that started before
        ``started_before``, oldest first, at most ``limit`` (None: all), read page by page as they are
        consumed. Must use an index, never a full scan."""
        ...

    def calls_started_between(
        self,
        start: datetime,
        end: datetime,
        ocp_group: str | None = None,
        lob: str | None = None,
    ) -> Iterator[CallRecord]:
        """Calls whose start time is in ``[start, end)``, optionally for one OCP group or LOB."""
        ...

    def mark_swept(self, ocp_group: str, hours: Sequence[datetime], export_id: str, at: datetime) -> None:
        """Remember that ``export_id``'s dialog_end CDRs for these hours were diffed (first one stands)."""
        ...

    def swept_hours(self, ocp_group: str, start: datetime, end: datetime) -> set[datetime]:
        """The hours in ``[start, end)`` of ``ocp_group`` already swept."""
        ...

    def close(self) -> None: ...


def state_label(record: CallRecord) -> str:
    """One word per call for counts and reports."""
    if record.s3_stored:
        return "STORED"
    if record.terminal_state is not None:
        return f"TERMINAL:{record.terminal_state.value}"
    if record.has_cdr_end:
        return "PENDING"
    return "OPEN"  # no dialog_end yet


class TransitionObserver(Protocol):
    """Told about every applied transition (the audit trail); buffered, flushed by the caller.

    An observer with ``outbox_entry``/``recorded`` (the audit sink) gets its event committed in the ledger
    write's own transaction; one without them is told after the write (``record_transition``).
    """

    actor: str | None

    def record_transition(self, transition: Transition, old: CallRecord | None, new: CallRecord) -> None: ...

    def emit(self, event: Any) -> None: ...

    def flush(self) -> list[str]: ...

    def close(self) -> None: ...


class _Chain:
    """One call's transitions in an :meth:`Ledger.apply_many` batch, applied in order in memory."""

    def __init__(self, base: CallRecord | None) -> None:
        self.base = base  # the record as read
        #: from the first change on: settled by the write (or applied one by one if it loses)
        self.members: list[tuple[int, TransitionResult]] = []
        #: the changes: (index, record before, record after, audit event)
        self.steps: list[tuple[int, CallRecord | None, CallRecord, OutboxEntry | None]] = []

    @property
    def record(self) -> CallRecord | None:
        """The record after the changes so far."""
        return self.steps[-1][2] if self.steps else self.base

    @property
    def expected(self) -> int:
        """The version the write checks: the one read."""
        return self.base.version if self.base is not None else 0

    def step(self, index: int, result: TransitionResult, entry: OutboxEntry | None) -> None:
        assert result.record is not None
        self.members.append((index, result))
        self.steps.append((index, self.record, result.record, entry))


class Ledger:
    """The call ledger. Use :func:`ocp_ingest.ledger.open_ledger` to get one for the configuration.

    ``audit``, when given, sees every applied transition: the one place audit events come from, whichever
    path changed the call. Its event is written to the backend's outbox in the same transaction as the
    change (:class:`OutboxEntry`), and published to the Parquet trail by :meth:`flush_audit`.
    """

    #: A write that loses the version check re-reads and re-applies; this bounds the loop.
    MAX_ATTEMPTS = 64

    def __init__(
        self,
        backend: LedgerBackend,
        clock: Callable[[], datetime] = utcnow,
        audit: TransitionObserver | None = None,
    ) -> None:
        self.backend = backend
        self.clock = clock
        self.audit = audit
        bind = getattr(audit, "bind", None)
        if bind is not None:
            bind(backend)

    def _outbox_entry(
        self, transition: Transition, old: CallRecord | None, new: CallRecord
    ) -> OutboxEntry | None:
        make = getattr(self.audit, "outbox_entry", None)
        return make(transition, old, new) if make is not None else None

    def _written(
        self, transition: Transition, old: CallRecord | None, new: CallRecord, entry: OutboxEntry | None
    ) -> None:
        if self.audit is None:
            return
        recorded = getattr(self.audit, "recorded", None)
        if entry is not None and recorded is not None:
            recorded(entry)  # committed: the observer publishes it on its next flush
        else:
            self.audit.record_transition(transition, old, new)

    def _write(self, record: CallRecord, expected: int, entry: OutboxEntry | None) -> bool:
        if entry is None:
            return self.backend.write(record, expected)
        return self.backend.write(record, expected, entry)

    def apply(self, transition: Transition) -> TransitionResult:
        """Apply one transition with optimistic concurrency; returns the outcome and new record."""
        for attempt in range(self.MAX_ATTEMPTS):
            current = self.backend.get(transition.dialog_id)
            result = transition.apply(current, self.clock())
            if result.record is None:
                return TransitionResult(result.outcome, current)
            expected = current.version if current is not None else 0
            result.record.version = expected + 1
            entry = self._outbox_entry(transition, current, result.record)
            if self._write(result.record, expected, entry):
                self._written(transition, current, result.record, entry)
                return result
            # Lost the race: back off a little (jittered) and re-read the winner's version.
            time.sleep(min(0.05, 0.001 * (2**attempt)) * random.random())
        raise LedgerContention(f"gave up on {transition.name} for {transition.dialog_id} after contention")

    def apply_all(self, transitions: Iterable[Transition]) -> list[TransitionResult]:
        return [self.apply(t) for t in transitions]

    #: Transitions of one call a batch chains in memory, at most: one write carries the record and all
    #: their audit events (on DynamoDB one transaction, at most 100 items). More go one by one after it.
    MAX_CHAIN = 16

    def apply_many(
        self, transitions: Sequence[Transition], known: Mapping[str, CallRecord] | None = None
    ) -> list[TransitionResult]:
        """:meth:`apply` for a batch: one read of all the records, one write batch where the backend has
        ``write_many`` (SQLite: one transaction, so one lock and one commit instead of one per call;
        DynamoDB: transactions of up to 100 items, each record with its outbox events).

        Same outcomes and audit events as applying them one by one. A call's transitions in the batch (a
        push's dialog_start, IVR end and dialog_end) are applied in order to its record in memory and
        written once, with one audit event each. Every record keeps its own version check: a record
        another writer changed meanwhile goes through :meth:`apply` afterwards, all its transitions in
        order, so racing writers still resolve deterministically. ``known``: records the caller has just
        read, used instead of reading them again; one that went stale meanwhile fails its version check
        and goes through :meth:`apply` like any other lost race.
        """
        results: list[TransitionResult | None] = [None] * len(transitions)
        known = known or {}
        unread = [d for d in dict.fromkeys(t.dialog_id for t in transitions) if d not in known]
        current = {**known, **self.backend.get_many(unread)} if unread else dict(known)
        now = self.clock()
        write_many = getattr(self.backend, "write_many", None)
        limit = self.MAX_CHAIN if write_many is not None else 1
        chains: dict[str, _Chain] = {}
        later: list[int] = []
        for i, transition in enumerate(transitions):
            chain = chains.setdefault(transition.dialog_id, _Chain(current.get(transition.dialog_id)))
            if len(chain.steps) >= limit:
                later.append(i)
                continue
            old = chain.record
            result = transition.apply(old, now)
            if result.record is None:  # nothing to write: final at once unless it follows a change
                if chain.steps:
                    chain.members.append((i, TransitionResult(result.outcome, old)))
                else:
                    results[i] = TransitionResult(result.outcome, old)
                continue
            # one version per change, as one by one: audit events order a call's changes by it
            result.record.version = (old.version if old is not None else 0) + 1
            chain.step(i, result, self._outbox_entry(transition, old, result.record))
        batch = [chain for chain in chains.values() if chain.steps]
        if batch:
            items = [(chain.steps[-1][2], chain.expected) for chain in batch]
            entries = [[e for *_, e in chain.steps if e is not None] for chain in batch]
            if write_many is not None:
                written = write_many(items, entries) if any(entries) else write_many(items)
            else:  # at most one transition per call (limit 1): at most one entry
                firsts = [next(iter(e), None) for e in entries]
                written = [self._write(r, x, e) for (r, x), e in zip(items, firsts, strict=True)]
            for chain, ok in zip(batch, written, strict=True):
                if not ok:
                    later.extend(i for i, _ in chain.members)
                    continue
                for i, old, new, entry in chain.steps:
                    self._written(transitions[i], old, new, entry)
                for i, result in chain.members:
                    results[i] = result
        for i in sorted(later):
            results[i] = self.apply(transitions[i])
        return [r for r in results if r is not None]

    def get(self, dialog_id: str) -> CallRecord | None:
        return self.backend.get(dialog_id)

    def get_many(self, dialog_ids: Sequence[str]) -> dict[str, CallRecord]:
        return self.backend.get_many(dialog_ids)

    def pending(
        self,
        grace: timedelta,
        limit: int | None,
        ocp_groups: Sequence[str] | None = None,
        now: datetime | None = None,
    ) -> list[CallRecord]:
        """Calls ended more than ``grace`` ago, not stored, not terminal: oldest first (None: no limit)."""
        return list(self.iter_pending(grace, limit, ocp_groups, now))

    def iter_pending(
        self,
        grace: timedelta,
        limit: int | None,
        ocp_groups: Sequence[str] | None = None,
        now: datetime | None = None,
    ) -> Iterator[CallRecord]:
        """:meth:`pending` one page at a time, for readers of a backlog of any size."""
        if limit is not None and limit <= 0:
            return iter(())
        return self.backend.iter_pending((now or self.clock()) - grace, limit, ocp_groups)

    def open_calls(
        self,
        older_than: timedelta,
        limit: int | None,
        ocp_groups: Sequence[str] | None = None,
        now: datetime | None = None,
    ) -> list[CallRecord]:
        """Calls started more than ``older_than`` ago that still have no dialog_end: oldest first (None:
        no limit).

        Their dialog_end was lost (or never sent): without this list they would never become pending.
        """
        return list(self.iter_open_calls(older_than, limit, ocp_groups, now))

    def iter_open_calls(
        self,
        older_than: timedelta,
        limit: int | None,
        ocp_groups: Sequence[str] | None = None,
        now: datetime | None = None,
    ) -> Iterator[CallRecord]:
        """:meth:`open_calls` one page at a time, for readers of a backlog of any size."""
        if limit is not None and limit <= 0:
            return iter(())
        return self.backend.iter_open_calls((now or self.clock()) - older_than, limit, ocp_groups)

    def calls_started_between(
        self, start: datetime, end: datetime, ocp_group: str | None = None, lob: str | None = None
    ) -> Iterator[CallRecord]:
        return self.backend.calls_started_between(start, end, ocp_group, lob)

    def mark_swept(self, ocp_group: str, start: datetime, end: datetime, export_id: str) -> None:
        """A completed export's dialog_end CDRs of ``[start, end)`` were diffed against the ledger: every
        call OCP knows in those hours has its row now, so the sweep need not export them again."""
        self.backend.mark_swept(ocp_group, hours_between(start, end), export_id, self.clock())

    def swept_hours(self, ocp_group: str, start: datetime, end: datetime) -> set[datetime]:
        """The swept hours of ``ocp_group`` that begin in ``[start, end)`` (``start`` floored to its hour)."""
        return self.backend.swept_hours(ocp_group, start.replace(minute=0, second=0, microsecond=0), end)

    def counts_by_state(
        self, start: datetime, end: datetime, ocp_group: str | None = None, lob: str | None = None
    ) -> dict[str, int]:
        """How many calls started in the window are STORED / PENDING / OPEN / TERMINAL:<state>."""
        return dict(Counter(state_label(r) for r in self.calls_started_between(start, end, ocp_group, lob)))

    def audit_event(self, event: Any) -> None:
        """Record a milestone that is not a ledger change (an export completed or expired)."""
        if self.audit is not None:
            self.audit.emit(event)

    def persist_audit(self) -> None:
        """Make buffered milestones durable now (the outbox), without publishing them yet; an observer
        without an outbox (no ``persist``) flushes instead."""
        persist = getattr(self.audit, "persist", None)
        if persist is not None:
            persist()
        elif self.audit is not None:
            self.audit.flush()

    def flush_audit(self) -> None:
        """Publish this process's audit events to the Parquet trail now (end of a task batch or a request).

        Every applied transition's event is already durable in the outbox (committed with the change);
        publishing is opportunistic: a failure leaves them there for the next publish.
        """
        if self.audit is not None:
            self.audit.flush()

    def audit_pending(self) -> int:
        """Audit events this process has not published yet (0 without an audit trail)."""
        pending = getattr(self.audit, "pending", None)
        return int(pending()) if pending is not None else 0

    def publish_audit(self, grace: timedelta = timedelta(minutes=5)) -> int:
        """Publish outbox events any process left behind (a crash before its flush) older than ``grace``.

        Idempotent by event id: a file another publisher wrote is never written twice. Returns how many
        events were published.
        """
        publish = getattr(self.audit, "publish_leftovers", None)
        return publish(grace).events if publish is not None else 0

    def close(self) -> None:
        try:
            if self.audit is not None:
                self.audit.close()
        finally:
            self.backend.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = [
    "Ledger",
    "LedgerBackend",
    "LedgerContention",
    "OutboxEntry",
    "Outcome",
    "TransitionObserver",
    "state_label",
]
