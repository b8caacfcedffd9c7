"""The realtime batch: validate and store landed recordings whose dialog_end has come.

One call's data never fails the batch: when validating or storing one arrival raises for a reason that is
not the platform's (see :data:`INFRASTRUCTURE_ERRORS`), its bytes are quarantined, the call is flagged with
the reason (ledger and audit) and the arrival leaves landing, so the next run does not meet it again. The
call stays pending: reconciliation may still fetch its recording from OCP.
"""

from __future__ import annotations

import contextlib
import logging
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from enum import StrEnum

from ocp_ingest.config import Settings
from ocp_ingest.infrastructure import INFRASTRUCTURE_ERRORS
from ocp_ingest.ingest import IngestResult, RecordingIngestor, quarantine_copy
from ocp_ingest.ledger import IngestionSource, Ledger
from ocp_ingest.ledger.model import CallRecord, parse_ts, utcnow
from ocp_ingest.ledger.transitions import AudioRejected, ConflictingAudio
from ocp_ingest.realtime.landing import Arrival, remove
from ocp_ingest.storage import ObjectExists, StorageLayout, write_create_only
from ocp_ingest.storage.objects import object_path

log = logging.getLogger(__name__)


class ArrivalState(StrEnum):
    """An arrival the batch leaves in landing (its outcomes otherwise are :class:`IngestResult`)."""

    #: Its dialog_end has not come yet.
    WAITING = "waiting"
    #: Still no dialog_end after ``orphan_after``: reported, and kept.
    ORPHAN = "orphan"
    #: Its data made validating or storing raise: quarantined, flagged, out of landing.
    FAILED = "failed"


ArrivalOutcome = tuple[IngestResult | ArrivalState, str]


@dataclass
class BatchSummary:
    """What one realtime run did; its return value and log line."""

    stored: int = 0
    already_stored: int = 0
    rejected: int = 0
    conflicts: int = 0
    waiting_for_cdr: int = 0
    #: Calls whose data made validation or storing raise: quarantined and flagged, out of landing.
    failed: int = 0
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
        # Register the object-store filesystems here, not first inside a worker thread (where importing
        # the providers' filesystems can stall the batch).
        _ = object_path(self.layout.landing_url).fs
        with ThreadPoolExecutor(max_workers=workers) as pool:
            outcomes = list(pool.map(lambda a: self._isolated(a, records.get(a.dialog_id)), arrivals))
        for arrival, (kind, detail) in zip(arrivals, outcomes, strict=True):
            if kind is IngestResult.STORED:
                summary.stored += 1
                summary.bytes_stored += arrival.size_bytes
            elif kind is IngestResult.ALREADY_STORED:
                summary.already_stored += 1
            elif kind is IngestResult.REJECTED:
                summary.rejected += 1
                summary.reasons[detail] += 1
            elif kind is IngestResult.CONFLICT:
                summary.conflicts += 1
            elif kind is ArrivalState.FAILED:
                summary.failed += 1
                summary.reasons[detail] += 1
            elif kind is ArrivalState.ORPHAN:
                summary.orphaned.append(arrival.dialog_id)
            elif kind is ArrivalState.WAITING:
                summary.waiting_for_cdr += 1
            else:  # an ingest outcome realtime never produces: fail loudly rather than lose count
                raise ValueError(f"call {arrival.dialog_id}: unexpected outcome {kind!r} ({detail})")
        return summary

    def _isolated(self, arrival: Arrival, record: CallRecord | None) -> ArrivalOutcome:
        """One arrival; an exception its data causes is this call's outcome, not the batch's."""
        try:
            return self._one(arrival, record)
        except FileNotFoundError:
            if object_path(arrival.audio_url).exists():
                raise
            return self._failed(arrival, "landed audio is missing", keep=False)
        except INFRASTRUCTURE_ERRORS:
            raise
        except Exception as exc:
            return self._failed(arrival, f"{type(exc).__name__}: {exc}")

    def _failed(self, arrival: Arrival, error: str, keep: bool = True) -> ArrivalOutcome:
        reason = f"realtime processing failed: {error}"[:500]
        if keep:
            try:
                reason += f"; bytes quarantined at {self._quarantine(arrival)}"
            except INFRASTRUCTURE_ERRORS:
                raise
            except Exception as exc:  # the landed bytes are not the pushed ones: nothing worth keeping
                reason += f"; bytes not kept ({type(exc).__name__}: {exc})"[:200]
        log.error("call %s left out of the batch: %s", arrival.dialog_id, reason)
        self.ledger.apply(AudioRejected(arrival.dialog_id, reason))
        self._clear(arrival)
        return ArrivalState.FAILED, "processing_error"

    def _quarantine(self, arrival: Arrival) -> str:
        source = object_path(arrival.audio_url)
        return quarantine_copy(self.layout, source, arrival.dialog_id, arrival.sha256, "processing_error")

    def _one(self, arrival: Arrival, record: CallRecord | None) -> ArrivalOutcome:
        ready = record is not None and (
            record.s3_stored
            or (record.has_cdr_end and record.lob is not None and record.ocp_group is not None)
        )
        if not ready:
            return self._waiting(arrival)
        assert record is not None
        if not record.s3_stored and record.received_sha256 not in (None, arrival.sha256):
            return self._not_claimed(arrival, record)
        outcome = self.ingestor.ingest(
            object_path(arrival.audio_url),
            arrival.sha256,
            arrival.size_bytes,
            record,
            IngestionSource.REALTIME,
        )
        self._clear(arrival)
        return outcome.kind, outcome.detail

    def _not_claimed(self, arrival: Arrival, record: CallRecord) -> ArrivalOutcome:
        """Other bytes hold the call's claim (this arrival outlived a released claim): never store it."""
        quarantined = quarantine_copy(
            self.layout,
            object_path(arrival.audio_url),
            arrival.dialog_id,
            arrival.sha256,
            "conflicting_audio",
        )
        self.ledger.apply(ConflictingAudio(arrival.dialog_id, arrival.sha256, quarantined))
        self._clear(arrival)
        return IngestResult.CONFLICT, quarantined

    def _waiting(self, arrival: Arrival) -> ArrivalOutcome:
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
            return ArrivalState.ORPHAN, ""
        return ArrivalState.WAITING, ""

    def _clear(self, arrival: Arrival) -> None:
        # Sidecars first: once they are gone the DAG will not pick the audio up again.
        remove(arrival.sidecar)
        remove(arrival.waiting_sidecar)
        remove(object_path(arrival.audio_url))
