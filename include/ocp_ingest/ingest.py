"""The step both stages share: validate a received recording, store it create-only, mark the call.

Realtime (pushed audio in landing) and reconciliation (audio downloaded from an OCP export) both end
here, so "validated, stored, S3_STORED, COMPLETED" happens in exactly one way; only the
``IngestionSource`` differs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

from airflow.sdk import ObjectStoragePath

from ocp_ingest.audio import AudioVerdict, validate_audio
from ocp_ingest.config import Settings
from ocp_ingest.ledger import IngestionSource, Ledger, Outcome
from ocp_ingest.ledger.model import CallRecord
from ocp_ingest.ledger.transitions import AudioRejected, ConflictingAudio, Stored
from ocp_ingest.storage import (
    ObjectExists,
    StorageLayout,
    is_local,
    iter_file,
    local_path,
    write_create_only,
)


@dataclass(frozen=True)
class IngestOutcome:
    #: stored | already_stored | rejected | conflict
    kind: str
    detail: str = ""
    object_url: str | None = None


def quarantine_copy(
    layout: StorageLayout, source: ObjectStoragePath, dialog_id: str, sha256: str, reason_code: str
) -> str:
    """Keep rejected or conflicting bytes for inspection (create-only, verified); returns where."""
    dest = layout.quarantine_path(dialog_id, sha256, reason_code)
    with source.open("rb") as handle:
        write_create_only(dest, iter_file(handle), expected_sha256=sha256)
    return str(dest)


@dataclass
class RecordingIngestor:
    settings: Settings
    ledger: Ledger
    layout: StorageLayout

    def ingest(
        self,
        received: ObjectStoragePath,
        sha256: str,
        size_bytes: int,
        record: CallRecord,
        source: IngestionSource,
    ) -> IngestOutcome:
        """Validate ``received`` against the call's CDR, store it at the call's key, mark the ledger.

        The caller removes ``received`` afterwards, whatever the outcome (rejected and conflicting bytes
        have been copied to quarantine by then).
        """
        if record.s3_stored:
            if record.sha256 == sha256:
                return IngestOutcome("already_stored", object_url=record.object_url)
            return self._conflict(received, record.dialog_id, sha256)
        verdict = self.validate(received, record)
        if verdict.ok and verdict.sha256 != sha256:
            # The bytes are not the ones that were checked on arrival: never store them.
            verdict = replace(verdict, ok=False, reasons=("file changed after it was received",))
        if not verdict.ok:
            reason = "; ".join(verdict.reasons) or "invalid audio"
            quarantine_copy(self.layout, received, record.dialog_id, sha256, "invalid_audio")
            self.ledger.apply(
                AudioRejected(record.dialog_id, f"{source.value.lower()} audio rejected: {reason}")
            )
            return IngestOutcome(
                "rejected", verdict.reasons[0].split(":")[0][:60] if verdict.reasons else "invalid"
            )
        if record.lob is None or record.ocp_group is None:
            raise ValueError(f"call {record.dialog_id} has no LOB/OCP group yet; it cannot be stored")
        dest = self.layout.recording_path(
            lob=record.lob,
            ocp_group=record.ocp_group,
            dialog_id=record.dialog_id,
            call_start=record.call_start_ts or record.call_end_ts,
            extension=verdict.format or "wav",
        )
        try:
            self._store(received, dest, sha256, record.lob)
        except ObjectExists:
            return self._conflict(received, record.dialog_id, sha256)
        result = self.ledger.apply(
            Stored(
                record.dialog_id,
                str(dest),
                sha256,
                size_bytes,
                source,
                verdict.format,
                verdict.duration_s,
            )
        )
        if result.outcome is Outcome.CONFLICT:
            return self._conflict(received, record.dialog_id, sha256)
        kind = "stored" if result.outcome is Outcome.APPLIED else "already_stored"
        return IngestOutcome(kind, object_url=str(dest))

    def validate(self, received: ObjectStoragePath, record: CallRecord) -> AudioVerdict:
        expected = record.duration_ms / 1000 if record.duration_ms is not None else None
        kwargs = {
            "expected_duration_s": expected,
            "tolerance_s": self.settings.duration_tolerance_s,
            "tolerance_ratio": self.settings.duration_tolerance_ratio,
            "max_bytes": self.settings.max_recording_bytes,
        }
        if is_local(received):
            return validate_audio(local_path(received), **kwargs)
        with received.open("rb") as handle:
            return validate_audio(handle, **kwargs)

    def _store(
        self, received: ObjectStoragePath, dest: ObjectStoragePath, sha256: str, lob: str | None = None
    ) -> None:
        """Create-only store of verified bytes. Same local filesystem: an atomic hard link, no copy."""
        if is_local(received) and is_local(dest):
            target = local_path(dest)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            try:
                # The validator has just hashed these exact bytes, and received files are never modified.
                os.link(local_path(received), target)
                return
            except OSError:
                pass  # taken (compare below) or another filesystem (stream a copy)
        with received.open("rb") as handle:
            write_create_only(
                dest,
                iter_file(handle),
                expected_sha256=sha256,
                sse_kms_key_id=self.layout.sse_kms_key_id,
                metadata={"sha256": sha256},
                object_lock=self.layout.object_lock_for(lob),
            )

    def _conflict(self, received: ObjectStoragePath, dialog_id: str, sha256: str) -> IngestOutcome:
        quarantined = quarantine_copy(self.layout, received, dialog_id, sha256, "conflicting_audio")
        self.ledger.apply(ConflictingAudio(dialog_id, sha256, quarantined))
        return IngestOutcome("conflict", quarantined)
