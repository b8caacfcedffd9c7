"""Stage 1, realtime: what happens to a CDR event and to a pushed recording. No Airflow in here.

The receiver calls :func:`record_cdr_event` and :func:`land_recording` the moment something arrives; the
continuous DAG calls :func:`process_arrivals` on batches of landed recordings. Landing layout:

- ``landing/audio/{dialog_id}.{sha16}.wav``: the pushed bytes, written create-only;
- ``landing/audio/{dialog_id}.{sha16}.json``: the arrival's sidecar, written after the bytes, so a sidecar
  always describes a complete file (the DAG only looks at sidecars);
- ``landing/audio/waiting/{dialog_id}.{sha16}.json``: the sidecar of audio whose dialog_end has not come yet.
  The trigger does not count these (so an idle DAG does not spin on them); every run re-checks them;
- ``landing/cdr/{event_id}.json``: one file per accepted CDR event (create-only: the key is the de-dup);
  the DAG rolls them into the hourly CDR manifest ``cdr_manifest/dt=YYYY-MM-DD/hour=HH/*.ndjson``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import uuid
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta

from airflow.sdk import ObjectStoragePath

from ocp_ingest import ids
from ocp_ingest.config import Settings
from ocp_ingest.ingest import RecordingIngestor, quarantine_copy
from ocp_ingest.ledger import IngestionSource, Ledger, Outcome
from ocp_ingest.ledger.model import CallRecord, format_ts, from_epoch_ms, parse_ts, utcnow
from ocp_ingest.ledger.transitions import (
    CallIdentity,
    CdrEnd,
    CdrStart,
    ConflictingAudio,
    FileReceived,
    IvrEnd,
    Transition,
)
from ocp_ingest.ocp.wire import CdrEvent, MessageType, RecordingName
from ocp_ingest.routing import LobRouter
from ocp_ingest.storage import (
    ObjectExists,
    StorageLayout,
    write_create_only,
)

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------- CDR events
def cdr_transition(event: CdrEvent, router: LobRouter) -> Transition | None:
    """The ledger transition a CDR event stands for (None for steps that change nothing)."""
    identity = CallIdentity(
        dialog_group=event.group,
        ocp_group=event.ocp_group,
        account_id=event.flow.account_id,
        flow_name=event.flow.name,
        destination_uri=event.destination_uri or None,
        lob=router.lob_for(
            ocp_group=event.ocp_group, flow_name=event.flow.name, destination_uri=event.destination_uri
        ),
    )
    at = from_epoch_ms(event.time)
    if event.message_type is MessageType.DIALOG_START:
        return CdrStart(event.dialog_id, at, identity)
    if event.message_type is MessageType.DIALOG_END:
        end_type = event.end_type.value if event.end_type is not None else None
        return CdrEnd(event.dialog_id, at, event.duration, end_type, identity)
    if event.is_ivr_end:
        return IvrEnd(event.dialog_id, at, event.duration, event.reason, identity)
    return None


def record_cdr_event(event: CdrEvent, ledger: Ledger, layout: StorageLayout, router: LobRouter) -> bool:
    """Apply one accepted event to the ledger, then append it to the manifest.

    Ledger first: if we crash between the two, the redelivered event re-applies idempotently and is then
    written to the manifest. Returns False when the event id was already in the manifest (a duplicate).
    """
    transition = cdr_transition(event, router)
    if transition is not None:
        ledger.apply(transition)
    dest = ObjectStoragePath(layout.landing_url) / "cdr" / f"{ids.token('event_id', event.event_id)}.json"
    return write_create_only(dest, [event.to_json()]).created


def roll_cdr_manifest(layout: StorageLayout, limit: int = 5000) -> int:
    """Move accepted CDR events from landing into the hourly manifest; returns how many were rolled.

    Each output file is named after the hash of the event ids it holds, so a retried roll of the same
    events writes nothing new. The manifest is at-least-once across runs; ``event_id`` is its key.
    """
    folder = ObjectStoragePath(layout.landing_url) / "cdr"
    if not folder.exists():
        return 0
    files = sorted(folder.glob("*.json"), key=lambda p: p.name)[:limit]
    by_hour: dict[datetime, list[tuple[str, bytes]]] = {}
    for path in files:
        body = path.read_bytes()
        event = CdrEvent.model_validate_json(body)
        hour = from_epoch_ms(event.time).replace(minute=0, second=0, microsecond=0)
        by_hour.setdefault(hour, []).append((event.event_id, body.strip()))
    for hour, events in by_hour.items():
        events.sort()
        name = hashlib.sha256("\n".join(e for e, _ in events).encode()).hexdigest()[:32]
        write_create_only(layout.cdr_manifest_path(hour, name), [b"\n".join(b for _, b in events) + b"\n"])
    for path in files:
        _remove(path)
    return len(files)


# -------------------------------------------------------------------------------------- arrivals
@dataclass(frozen=True)
class Arrival:
    """A pushed recording waiting in the landing area."""

    dialog_id: str
    sha256: str
    size_bytes: int
    received_at: str
    audio_url: str
    filename: str
    ocp_group: str | None = None
    account_id: str | None = None
    dialog_timestamp_ms: int | None = None

    @property
    def sidecar(self) -> ObjectStoragePath:
        """Where the DAG finds a new arrival's sidecar."""
        return ObjectStoragePath(self.audio_url.rsplit(".", 1)[0] + ".json")

    @property
    def waiting_sidecar(self) -> ObjectStoragePath:
        """Where the sidecar of an arrival that waits for its dialog_end is parked."""
        return self.sidecar.parent / "waiting" / self.sidecar.name

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()


def land_sidecar(arrival: Arrival) -> None:
    """Publish an arrival to the DAG (after its bytes are complete). A repeat keeps the first sidecar."""
    with contextlib.suppress(ObjectExists):
        write_create_only(arrival.sidecar, [arrival.to_json()])


class RecordingTooLarge(ValueError):
    """The pushed body exceeds the configured maximum; nothing was kept."""


@dataclass(frozen=True)
class LandingResult:
    #: received | duplicate (same bytes already landed) | already_stored | conflict (quarantined)
    status: str
    arrival: Arrival
    detail: str = ""


def _bounded(chunks: Iterable[bytes], max_bytes: int) -> Iterable[bytes]:
    total = 0
    for chunk in chunks:
        total += len(chunk)
        if total > max_bytes:
            raise RecordingTooLarge(f"body exceeds the maximum recording size of {max_bytes} bytes")
        yield chunk


def land_recording(
    name: RecordingName,
    chunks: Iterable[bytes],
    *,
    ledger: Ledger,
    layout: StorageLayout,
    max_bytes: int,
    expected_sha256: str | None = None,
) -> LandingResult:
    """Stream a pushed recording into landing, then set FILE_RECEIVED at once.

    With a sender checksum the landing key is content-addressed, so a repeated push of the same bytes is
    an idempotent success; the bytes are verified against it before anything becomes visible. Different
    bytes for a call that is already stored are quarantined and the call flagged; nothing is overwritten.
    """
    token = expected_sha256 or uuid.uuid4().hex
    landing = layout.landing_path(name.dialog_id, token)
    written = write_create_only(landing, _bounded(chunks, max_bytes), expected_sha256=expected_sha256)
    arrival = Arrival(
        dialog_id=name.dialog_id,
        sha256=written.sha256,
        size_bytes=written.size,
        received_at=format_ts(utcnow()),
        audio_url=str(landing),
        filename=name.filename,
        ocp_group=name.ocp_group,
        account_id=name.account_id,
        dialog_timestamp_ms=name.dialog_timestamp,
    )
    outcome = ledger.apply(FileReceived(name.dialog_id, written.sha256, written.size)).outcome
    if outcome is Outcome.ALREADY_STORED:
        _remove(landing)
        return LandingResult("already_stored", arrival, "identical recording already stored")
    if outcome is Outcome.CONFLICT:
        quarantined = quarantine_copy(layout, landing, name.dialog_id, written.sha256, "conflicting_audio")
        ledger.apply(ConflictingAudio(name.dialog_id, written.sha256, str(quarantined)))
        _remove(landing)
        return LandingResult(
            "conflict", arrival, f"a different recording is already stored; kept at {quarantined}"
        )
    land_sidecar(arrival)
    return LandingResult("received" if written.created else "duplicate", arrival)


def list_arrivals(layout: StorageLayout, limit: int) -> list[Arrival]:
    """New arrivals first, then those waiting for their dialog_end; sorted by name within each (stable)."""
    folder = ObjectStoragePath(layout.landing_url) / "audio"
    found: list[Arrival] = []
    for sub in (folder, folder / "waiting"):
        if not sub.exists():
            continue
        for sidecar in sorted(sub.glob("*.json"), key=lambda p: p.name):
            if len(found) >= limit:
                return found
            try:
                found.append(Arrival(**json.loads(sidecar.read_bytes())))
            except (ValueError, TypeError) as exc:  # a damaged sidecar is reported, never crashes the batch
                log.error("unreadable arrival sidecar %s: %s", sidecar, exc)
    return found


def count_arrivals(landing_url: str) -> int:
    """How many new recordings and CDR events wait in landing (the trigger's test; parked ones excluded)."""
    root = ObjectStoragePath(landing_url)
    total = 0
    for sub in ("audio", "cdr"):
        folder = root / sub
        if folder.exists():
            total += sum(1 for _ in folder.glob("*.json"))
    return total


def _storable(record: CallRecord) -> bool:
    """A call can be stored once its dialog_end gave the duration to check and the key's parts."""
    return record.has_cdr_end and record.lob is not None and record.ocp_group is not None


def _remove(path: ObjectStoragePath) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


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
            _remove(arrival.sidecar)
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
        _remove(arrival.sidecar)
        _remove(arrival.waiting_sidecar)
        _remove(ObjectStoragePath(arrival.audio_url))
