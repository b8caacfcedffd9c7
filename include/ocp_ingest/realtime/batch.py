"""The realtime batch: validate and store landed recordings whose dialog_end has come."""

from __future__ import annotations

import contextlib
import logging
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import timedelta

from airflow.sdk import ObjectStoragePath

from ocp_ingest.config import Settings
from ocp_ingest.ingest import RecordingIngestor
from ocp_ingest.ledger import IngestionSource, Ledger
from ocp_ingest.ledger.model import CallRecord, parse_ts, utcnow
from ocp_ingest.realtime.landing import Arrival, remove
from ocp_ingest.storage import ObjectExists, StorageLayout, write_create_only

log = logging.getLogger(__name__)


@dataclass
class BatchSummary:
    """What one realtime run did; its return value and log line."""

    stored: int = 0
    already_stored: int = 0
    rejected: int = 0
    conflicts: int = 0
    waiting_for_cdr: int = 0
    orphaned: list[str] = field(default_factory=list)
    cdr_events_rolled: int = 0
    bytes_stored: int = 0
    reasons: Counter[str] = field(default_factory=Counter)

    def to_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["reasons"] = dict(self.reasons)
        return data


@dataclass
class RealtimeProcessor:
    """Validates and stores landed recordings; one instance per batch."""

    settings: Settings
    ledger: Ledger
    layout: StorageLayout
    #: Audio whose CDR has not come after this long is reported as orphaned (and kept).
    orphan_after: timedelta = timedelta(hours=1)

    def __post_init__(self) -> None:
        self.ingestor = RecordingIngestor(self.settings, self.ledger, self.layout)

    def process(self, arrivals: Iterable[Arrival], workers: int = 4) -> BatchSummary:
        """Process arrivals in parallel threads (hashing and file I/O release the GIL)."""
        arrivals = list(arrivals)
        summary = BatchSummary()
        records = self.ledger.get_many([a.dialog_id for a in arrivals])
        with ThreadPoolExecutor(max_workers=workers) as pool:
            outcomes = list(pool.map(lambda a: self._one(a, records.get(a.dialog_id)), arrivals))
        for arrival, (kind, detail) in zip(arrivals, outcomes, strict=True):
            if kind == "stored":
                summary.stored += 1
                summary.bytes_stored += arrival.size_bytes
            elif kind == "already_stored":
                summary.already_stored += 1
            elif kind == "rejected":
                summary.rejected += 1
                summary.reasons[detail] += 1
            elif kind == "conflict":
                summary.conflicts += 1
            elif kind == "orphan":
                summary.orphaned.append(arrival.dialog_id)
            else:
                summary.waiting_for_cdr += 1
        return summary

    def _one(self, arrival: Arrival, record: CallRecord | None) -> tuple[str, str]:
        ready = record is not None and (
            record.s3_stored
            or (record.has_cdr_end and record.lob is not None and record.ocp_group is not None)
        )
        if not ready:
            return self._waiting(arrival)
        outcome = self.ingestor.ingest(
            ObjectStoragePath(arrival.audio_url),
            arrival.sha256,
            arrival.size_bytes,
            record,
            IngestionSource.REALTIME,
        )
        self._clear(arrival)
        return outcome.kind, outcome.detail

    def _waiting(self, arrival: Arrival) -> tuple[str, str]:
        if arrival.sidecar.exists():  # park it, so the trigger only wakes the DAG for new arrivals
            with contextlib.suppress(ObjectExists):
                write_create_only(arrival.waiting_sidecar, [arrival.to_json()])
            remove(arrival.sidecar)
        received = parse_ts(arrival.received_at)
        if received is not None and utcnow() - received > self.orphan_after:
            log.warning(
                "recording %s has waited since %s for its dialog_end; kept in landing",
                arrival.dialog_id,
                arrival.received_at,
            )
            return "orphan", ""
        return "waiting", ""

    def _clear(self, arrival: Arrival) -> None:
        # Sidecars first: once they are gone the DAG will not pick the audio up again.
        remove(arrival.sidecar)
        remove(arrival.waiting_sidecar)
        remove(ObjectStoragePath(arrival.audio_url))
