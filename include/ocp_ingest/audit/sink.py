"""The audit sink: the ledger's audit observer, publishing events to immutable, Hive-partitioned Parquet.

``{audit_url}/audit_events/dt=YYYY-MM-DD/lob=<lob>/part-<32 hex>.parquet``, written create-only
(:func:`~ocp_ingest.storage.write_create_only`), never rewritten.

Bound to a ledger (the normal case), every applied transition's event is committed in the ledger's outbox
in the same transaction as the change (:meth:`outbox_entry`), so a crash cannot keep one without the other;
:meth:`flush` then publishes this process's events from the outbox (:mod:`ocp_ingest.audit.outbox`), and,
on its first flush and every few minutes after, events crashed processes left behind. Export milestones
(not ledger changes) are buffered and put in the outbox at the next flush. Flushes happen when
``batch_size`` events are waiting, when a task or request batch ends and on :meth:`close`.
"""

from __future__ import annotations

import io
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Sequence
from datetime import timedelta

import pyarrow as pa
import pyarrow.json as pa_json
import pyarrow.parquet as pq

from ocp_ingest import ids
from ocp_ingest.audit import outbox
from ocp_ingest.audit.events import AuditEvent, event_from_transition
from ocp_ingest.audit.schema import AUDIT_EVENT_SCHEMA, NO_LOB, TS
from ocp_ingest.ledger.base import LedgerBackend, OutboxEntry
from ocp_ingest.ledger.model import CallRecord
from ocp_ingest.ledger.transitions import Transition
from ocp_ingest.storage import write_create_only
from ocp_ingest.storage.layout import new_audit_events_file

log = logging.getLogger(__name__)


def partition_lob(lob: str | None) -> str:
    """The ``lob=`` partition value: the validated LOB, or ``none`` before routing knows it."""
    return ids.lob(lob) if lob else NO_LOB


#: How the outbox's JSON is read: its timestamps carry microseconds and a zone (ISO 8601), which the
#: JSON reader takes as microseconds; the table then keeps milliseconds (:data:`AUDIT_EVENT_SCHEMA`).
_JSON_SCHEMA = pa.schema([f.with_type(pa.timestamp("us")) if f.type == TS else f for f in AUDIT_EVENT_SCHEMA])


def events_table(bodies: Sequence[str], *, ordered: bool = False) -> pa.Table:
    """The Parquet table of events in their JSON form (:meth:`AuditEvent.to_json`, as the outbox keeps
    them), parsed by Arrow's JSON reader; ``ordered``: rows by event time, then event id (a re-write of the
    same events is the same table).

    Not ``Table.from_pylist``: pyarrow looks for pandas on its first array built from Python values and
    imports it if installed, 1-2 s of CPU holding the GIL in every task process that writes audit rows.
    """
    if not bodies:
        return AUDIT_EVENT_SCHEMA.empty_table()
    data = "\n".join(bodies).encode()
    table = pa_json.read_json(
        io.BytesIO(data),
        # one block: a line longer than a block (a long detail) would fail the file, and so every publish
        read_options=pa_json.ReadOptions(block_size=len(data) + 1),
        parse_options=pa_json.ParseOptions(explicit_schema=_JSON_SCHEMA, unexpected_field_behavior="ignore"),
    )
    if ordered:  # on the microseconds, before they are cut to the schema's milliseconds
        table = table.sort_by([("event_ts", "ascending"), ("event_id", "ascending")])
    # The JSON reader keeps UTC instants; only the timestamps' unit changes here (truncated, as before).
    return table.cast(AUDIT_EVENT_SCHEMA, safe=False)


def parquet_bytes(table: pa.Table) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd")
    return buffer.getvalue()


class AuditSink:
    """Collects events (thread-safe: the receiver and the realtime batch apply from worker threads)."""

    #: How often a long-lived process (the receiver) also publishes other processes' leftovers.
    LEFTOVER_INTERVAL_S = 300.0
    #: Leftovers younger than this may still be being published by a live process.
    LEFTOVER_GRACE = timedelta(minutes=5)

    def __init__(self, audit_url: str, *, actor: str | None = None, batch_size: int = 1000) -> None:
        self.audit_url = audit_url
        self.actor = actor
        self.batch_size = batch_size
        self.store: LedgerBackend | None = None
        self._buffer: list[AuditEvent] = []  # milestones (and events of an unbound sink)
        self._committed: list[OutboxEntry] = []  # in the outbox, to publish
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._leftovers_due = 0.0
        self.files_written: list[str] = []

    def bind(self, store: LedgerBackend) -> None:
        """Called by :class:`~ocp_ingest.ledger.Ledger`: events go to this backend's outbox from now on."""
        self.store = store

    # -- the ledger's observer -----------------------------------------------------------------
    def outbox_entry(
        self, transition: Transition, old: CallRecord | None, new: CallRecord
    ) -> OutboxEntry | None:
        """The event of a transition about to be written, for the same transaction (None: unbound)."""
        if self.store is None:
            return None
        return outbox.entry_for(event_from_transition(transition, old, new, self.actor))

    def recorded(self, entry: OutboxEntry) -> None:
        """Its transition (and so the entry) was committed: publish it at the next flush."""
        with self._lock:
            self._committed.append(entry)
            full = len(self._committed) >= self.batch_size
        if full:
            self._flush_quietly()

    def record_transition(self, transition: Transition, old: CallRecord | None, new: CallRecord) -> None:
        """An unbound sink's path (no outbox): buffered and written at the next flush."""
        self.emit(event_from_transition(transition, old, new, self.actor))

    def emit(self, event: AuditEvent) -> None:
        """Buffer one event (export milestones are emitted directly by reconciliation)."""
        if event.actor is None and self.actor is not None:
            event = AuditEvent(**{**event.__dict__, "actor": self.actor})
        with self._lock:
            self._buffer.append(event)
            full = len(self._buffer) >= self.batch_size
        if full:
            self._flush_quietly()

    def _flush_quietly(self) -> None:
        try:
            self.flush()
        except Exception:  # the ledger write already happened: the events wait for the next flush
            log.exception("audit flush failed; %d events wait", self.pending())

    def pending(self) -> int:
        with self._lock:
            return len(self._buffer) + len(self._committed)

    def flush(self) -> list[str]:
        """Publish this process's events; returns the files written.

        Events in the outbox stay there if publishing fails (a later publish gets them): that failure is
        logged, not raised. Buffered milestones are put in the outbox first (raises if that fails, and they
        stay buffered).
        """
        if self.store is None:
            return self._write_buffer()
        self.persist()
        with self._lock:
            entries, self._committed = self._committed, []
        result = outbox.Published()
        try:
            outbox.publish_entries(self.store, self.audit_url, entries, result)
            if time.monotonic() >= self._leftovers_due:  # the first flush, then every few minutes
                self._leftovers_due = time.monotonic() + self.LEFTOVER_INTERVAL_S
                outbox.publish_leftovers(self.store, self.audit_url, grace=self.LEFTOVER_GRACE, into=result)
        except Exception:  # durable in the outbox: a later publish writes them
            log.exception("audit publish failed; events wait in the ledger's outbox")
        self.files_written.extend(result.files)
        return result.files

    def persist(self) -> None:
        """Make the buffered milestones durable now: in the ledger's outbox (one transaction), published at
        the next flush. Raises if that fails (they stay buffered). Unbound: written to files at once."""
        if self.store is None:
            self._write_buffer()
            return
        with self._lock:
            buffered, self._buffer = self._buffer, []
        milestones = [outbox.entry_for(e) for e in buffered]
        if not milestones:
            return
        try:
            self.store.outbox_add(milestones)
        except Exception:
            with self._lock:
                self._buffer[:0] = buffered
            raise
        with self._lock:
            self._committed.extend(milestones)

    def publish_leftovers(self, grace: timedelta = LEFTOVER_GRACE) -> outbox.Published:
        """Publish what any process left in the outbox more than ``grace`` ago."""
        if self.store is None:
            return outbox.Published()
        result = outbox.publish_leftovers(self.store, self.audit_url, grace=grace)
        self.files_written.extend(result.files)
        return result

    def _write_buffer(self) -> list[str]:
        """Unbound: write buffered events straight to new files, one per (dt, lob)."""
        with self._flush_lock:
            with self._lock:
                events, self._buffer = self._buffer, []
            if not events:
                return []
            groups: dict[tuple[str, str], list[AuditEvent]] = defaultdict(list)
            for event in events:
                groups[(f"{event.event_ts:%Y-%m-%d}", partition_lob(event.lob))].append(event)
            written: list[str] = []
            try:
                for (day, lob), group in sorted(groups.items()):
                    dest = new_audit_events_file(self.audit_url, day, lob)
                    write_create_only(dest, [parquet_bytes(events_table([e.to_json() for e in group]))])
                    written.append(str(dest))
                    groups[(day, lob)] = []
            except Exception:
                leftover = [e for g in groups.values() for e in g]
                with self._lock:
                    self._buffer[:0] = leftover
                raise
            self.files_written.extend(written)
            return written

    def close(self) -> None:
        self.flush()
