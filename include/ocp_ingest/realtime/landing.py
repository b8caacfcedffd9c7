"""Pushed recordings in landing: stream a push in, publish it to the DAG, list and count what waits.

- ``landing/audio/{dialog_id}.{sha16}.wav``: the pushed bytes, written create-only;
- ``landing/audio/{dialog_id}.{sha16}.json``: the arrival's sidecar, written after the bytes, so a sidecar
  always describes a complete file (the DAG only looks at sidecars);
- ``landing/audio/waiting/{dialog_id}.{sha16}.json``: the sidecar of audio whose dialog_end has not come yet.
  The trigger does not count these (so an idle DAG does not spin on them); every run re-checks them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from enum import StrEnum

from ocp_ingest.ingest import quarantine_copy
from ocp_ingest.ledger import Ledger, Outcome
from ocp_ingest.ledger.model import format_ts, utcnow
from ocp_ingest.ledger.transitions import ConflictingAudio, FileReceived
from ocp_ingest.ocp.wire import RecordingName
from ocp_ingest.realtime.shards import Shard
from ocp_ingest.storage import ObjectExists, StorageLayout, write_create_only
from ocp_ingest.storage.layout import cdr_waiting_marker, landing_audio_folder, landing_cdr_folder
from ocp_ingest.storage.objects import ObjectPath, object_path

log = logging.getLogger(__name__)


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
    def sidecar(self) -> ObjectPath:
        """Where the DAG finds a new arrival's sidecar."""
        return object_path(self.audio_url.rsplit(".", 1)[0] + ".json")

    @property
    def waiting_sidecar(self) -> ObjectPath:
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


class LandingStatus(StrEnum):
    """The receiver's answer to one push (its JSON ``status``)."""

    RECEIVED = "received"
    #: The same bytes had already landed.
    DUPLICATE = "duplicate"
    ALREADY_STORED = "already_stored"
    #: Other bytes came first or are stored: these were quarantined and the call flagged.
    CONFLICT = "conflict"


@dataclass(frozen=True)
class LandingResult:
    status: LandingStatus
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
    an idempotent success; the bytes are verified against it before anything becomes visible.

    The first complete body wins (its ledger claim is set atomically with FILE_RECEIVED). A later body
    with other bytes, for a call that is already stored or whose first body is still being processed,
    is quarantined and the call flagged; its status is ``conflict`` (the receiver answers 409) and the
    detail says where it was kept. Nothing is overwritten. If the first body is rejected, its claim is
    released and a later push may be stored.
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
    try:
        result = ledger.apply(FileReceived(name.dialog_id, written.sha256, written.size))
    except BaseException:
        # Not acknowledged, so the sender pushes again: leave no landed bytes without their ledger row
        # (an identical earlier landing, created=False, may be another push's and stays).
        if written.created:
            remove(landing)
        raise
    if result.outcome is Outcome.ALREADY_STORED:
        remove(landing)
        return LandingResult(LandingStatus.ALREADY_STORED, arrival, "identical recording already stored")
    if result.outcome is Outcome.CONFLICT:
        quarantined = quarantine_copy(layout, landing, name.dialog_id, written.sha256, "conflicting_audio")
        ledger.apply(ConflictingAudio(name.dialog_id, written.sha256, str(quarantined)))
        remove(landing)
        stored = result.record is not None and result.record.s3_stored
        first = "is already stored" if stored else "was received first"
        return LandingResult(
            LandingStatus.CONFLICT, arrival, f"a different recording {first}; this one kept at {quarantined}"
        )
    land_sidecar(arrival)
    return LandingResult(LandingStatus.RECEIVED if written.created else LandingStatus.DUPLICATE, arrival)


def _sidecars(layout: StorageLayout) -> Iterator[ObjectPath]:
    """Every arrival's sidecar: new ones first, then those waiting for their dialog_end; by name in each."""
    folder = layout.landing_audio_folder()
    for sub in (folder, folder / "waiting"):
        if sub.exists():
            yield from sorted(sub.glob("*.json"), key=lambda p: p.name)


def _dialog_id(sidecar: ObjectPath) -> str:
    return sidecar.name.split(".", 1)[0]  # sidecars are named {dialog_id}.{token}.json


def list_arrivals(layout: StorageLayout, limit: int, shard: Shard | None = None) -> list[Arrival]:
    """New arrivals first, then those waiting for their dialog_end; sorted by name within each (stable).

    With ``shard``, only that shard's arrivals (chosen by name, before any sidecar is read).
    """
    found: list[Arrival] = []
    for sidecar in _sidecars(layout):
        if shard is not None and not shard.holds(_dialog_id(sidecar)):
            continue
        if len(found) >= limit:
            break
        try:
            found.append(Arrival(**json.loads(sidecar.read_bytes())))
        except (ValueError, TypeError) as exc:  # a damaged sidecar is reported, never crashes the batch
            log.error("unreadable arrival sidecar %s: %s", sidecar, exc)
    return found


def count_landed_recordings(layout: StorageLayout) -> int:
    """Recordings in landing, new and waiting for their dialog_end (names only: nothing is read)."""
    return sum(1 for _ in _sidecars(layout))


def count_arrivals(landing_url: str) -> int:
    """How many new recordings and landed CDR event files wait in landing, plus one when events wait in
    the ledger's CDR inbox (the trigger's test; parked recordings excluded)."""
    total = int(cdr_waiting_marker(landing_url).exists())
    for folder in (landing_audio_folder(landing_url), landing_cdr_folder(landing_url)):
        if folder.exists():
            total += sum(1 for _ in folder.glob("*.json"))
    return total


def remove(path: ObjectPath) -> None:
    """Delete a landing file; one already gone (a retried run) is fine."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
