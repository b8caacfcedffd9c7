"""The audit sink: buffers audit events and writes them as immutable Parquet files, Hive-partitioned.

``{audit_url}/audit_events/dt=YYYY-MM-DD/lob=<lob>/part-<uuid>.parquet``, one file per partition per flush,
written create-only (:func:`~ocp_ingest.storage.write_create_only`), never rewritten. Flushes happen when the
buffer reaches ``batch_size``, when a task or request batch ends (:meth:`flush`) and on :meth:`close`.
"""

from __future__ import annotations

import io
import logging
import threading
from collections import defaultdict
from collections.abc import Iterable

import pyarrow as pa
import pyarrow.parquet as pq

from ocp_ingest import ids
from ocp_ingest.audit.events import AuditEvent, event_from_transition
from ocp_ingest.audit.schema import AUDIT_EVENT_SCHEMA, NO_LOB
from ocp_ingest.ledger.model import CallRecord
from ocp_ingest.ledger.transitions import Transition
from ocp_ingest.storage import write_create_only
from ocp_ingest.storage.layout import new_audit_events_file

log = logging.getLogger(__name__)


def partition_lob(lob: str | None) -> str:
    """The ``lob=`` partition value: the validated LOB, or ``none`` before routing knows it."""
    return ids.lob(lob) if lob else NO_LOB


def events_table(events: Iterable[AuditEvent]) -> pa.Table:
    return pa.Table.from_pylist([e.row() for e in events], schema=AUDIT_EVENT_SCHEMA)


def parquet_bytes(table: pa.Table) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd")
    return buffer.getvalue()


class AuditSink:
    """Collects events (thread-safe: the receiver and the realtime batch apply from worker threads)."""

    def __init__(self, audit_url: str, *, actor: str | None = None, batch_size: int = 1000) -> None:
        self.audit_url = audit_url
        self.actor = actor
        self.batch_size = batch_size
        self._buffer: list[AuditEvent] = []
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self.files_written: list[str] = []

    # -- the ledger's observer -----------------------------------------------------------------
    def record_transition(self, transition: Transition, old: CallRecord | None, new: CallRecord) -> None:
        """Called by :meth:`Ledger.apply` after every applied transition."""
        self.emit(event_from_transition(transition, old, new, self.actor))

    def emit(self, event: AuditEvent) -> None:
        """Buffer one event (export milestones are emitted directly by reconciliation)."""
        if event.actor is None and self.actor is not None:
            event = AuditEvent(**{**event.__dict__, "actor": self.actor})
        with self._lock:
            self._buffer.append(event)
            full = len(self._buffer) >= self.batch_size
        if full:
            try:
                self.flush()
            except Exception:  # the ledger write already happened: keep the events for the next flush
                log.exception("audit flush failed; %d events stay buffered", len(self._buffer))

    def pending(self) -> int:
        with self._lock:
            return len(self._buffer)

    def flush(self) -> list[str]:
        """Write buffered events, one new Parquet file per (dt, lob). Unwritten events stay buffered."""
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
                    write_create_only(dest, [parquet_bytes(events_table(group))])
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
