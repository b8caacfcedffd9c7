"""The step both stages share: validate a received recording, store it create-only, mark the call.

Realtime (pushed audio in landing) and reconciliation (audio downloaded from an OCP export) both end
here, so "validated, stored, S3_STORED, COMPLETED" happens in exactly one way; only the
``IngestionSource`` differs.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import BinaryIO, Protocol

from ocp_ingest.audio import AudioVerdict, validate_audio
from ocp_ingest.ledger import IngestionSource, Ledger, Outcome
from ocp_ingest.ledger.model import CallRecord
from ocp_ingest.ledger.transitions import AudioRejected, ConflictingAudio, Stored
from ocp_ingest.storage import (
    ObjectExists,
    ObjectPath,
    StorageLayout,
    is_local,
    is_object_path,
    iter_file,
    link_create_only,
    local_path,
    object_path,
    sync_names,
    write_create_only,
)


class IngestResult(StrEnum):
    """What became of one recording. A ``str``: it compares equal to its value and serialises as it."""

    STORED = "stored"
    #: The call was already stored with these bytes (a repeat), or was stored meanwhile.
    ALREADY_STORED = "already_stored"
    #: ``ingest_bytes(mark=False)``: the object is stored; its ledger mark is still to be applied.
    WRITTEN = "written"
    REJECTED = "rejected"
    CONFLICT = "conflict"
    #: Reconciliation: the export expired before this file was downloaded.
    EXPIRED = "expired"
    #: Reconciliation: the file could not be downloaded or stored (retried by a later run).
    ERROR = "error"


@dataclass(frozen=True)
class IngestOutcome:
    #: For ``written``, ``mark`` is the ``Stored`` transition to apply through
    #: :meth:`RecordingIngestor.marked`. A plain string is accepted and converted.
    kind: IngestResult
    detail: str = ""
    object_url: str | None = None
    mark: Stored | None = field(default=None, compare=False, repr=False)
    #: For ``written``: the object, whose name :meth:`RecordingIngestor.marked` makes durable.
    written_to: ObjectPath | None = field(default=None, compare=False, repr=False)
    #: For ``written``: the ledger record the mark was made from (the batch need not read it again).
    basis: CallRecord | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", IngestResult(self.kind))


def quarantine_copy(
    layout: StorageLayout, source: ObjectPath, dialog_id: str, sha256: str, reason_code: str
) -> str:
    """Keep rejected or conflicting bytes for inspection (create-only, verified); returns where."""
    dest = layout.quarantine_path(dialog_id, sha256, reason_code)
    with source.open("rb") as handle:
        write_create_only(dest, iter_file(handle), expected_sha256=sha256)
    return str(dest)


class AudioLimits(Protocol):
    """What a recording is judged against; :class:`~ocp_ingest.config.Settings` provides it."""

    @property
    def duration_tolerance_s(self) -> float: ...

    @property
    def duration_tolerance_ratio(self) -> float: ...

    @property
    def max_recording_bytes(self) -> int: ...


@dataclass
class RecordingIngestor:
    limits: AudioLimits
    ledger: Ledger
    layout: StorageLayout

    def ingest(
        self,
        received: ObjectPath,
        sha256: str,
        size_bytes: int,
        record: CallRecord,
        source: IngestionSource,
    ) -> IngestOutcome:
        """Validate ``received`` against the call's CDR, store it at the call's key, mark the ledger.

        The caller removes ``received`` afterwards, whatever the outcome (rejected and conflicting bytes
        have been copied to quarantine by then).
        """

        def keep(reason_code: str) -> str:
            return quarantine_copy(self.layout, received, record.dialog_id, sha256, reason_code)

        if record.s3_stored:
            return self._already_there(record, sha256, keep)
        verdict = self.validate(received, record)
        if verdict.ok and verdict.sha256 != sha256:
            # The bytes are not the ones that were checked on arrival: never store them.
            verdict = replace(verdict, ok=False, reasons=("file changed after it was received",))
        if not verdict.ok:
            return self._reject(record, verdict, source, keep)
        dest = self._destination(record, verdict)
        try:
            self._store(received, dest, sha256, record.lob)
        except ObjectExists:
            return self._conflict(record.dialog_id, sha256, keep)
        return self._mark_stored(record, dest, sha256, size_bytes, source, verdict, keep)

    def ingest_bytes(
        self, data: bytes, sha256: str, record: CallRecord, source: IngestionSource, *, mark: bool = True
    ) -> IngestOutcome:
        """The same step for a recording held in memory, whose SHA-256 the caller has just computed over
        exactly ``data`` (a download verified against the export's listing).

        No landing file: the bytes are validated from memory and written once, create-only, to the
        call's key. The validator and the write use the caller's digest, so every byte is hashed once;
        the validator's structural checks still read every byte.

        ``mark=False`` (a batch): once the object is stored the outcome is ``written`` and carries its
        ``Stored`` transition; the caller applies many at once with :meth:`marked`. Until then the call
        is not marked stored, which is safe: storing is create-only, so a repeat (a re-run, or the realtime
        path with the same bytes) finds the identical object at the same key and only marks it. The
        object's bytes are durable; its name becomes durable in :meth:`marked`, with the batch's others
        (one directory fsync per directory, not per file).
        """

        def keep(reason_code: str) -> str:
            dest = self.layout.quarantine_path(record.dialog_id, sha256, reason_code)
            write_create_only(dest, [data], expected_sha256=sha256, precomputed_sha256=sha256)
            return str(dest)

        if record.s3_stored:
            return self._already_there(record, sha256, keep)
        verdict = self.validate(io.BytesIO(data), record, known_sha256=sha256)
        if not verdict.ok:
            return self._reject(record, verdict, source, keep)
        dest = self._destination(record, verdict)
        try:
            write_create_only(
                dest,
                [data],
                expected_sha256=sha256,
                precomputed_sha256=sha256,
                sse_kms_key_id=self.layout.sse_kms_key_id,
                metadata={"sha256": sha256},
                object_lock=self.layout.object_lock_for(record.lob),
                sync_name=mark,
            )
        except ObjectExists:
            return self._conflict(record.dialog_id, sha256, keep)
        if not mark:
            stored = self._stored(record, dest, sha256, len(data), source, verdict)
            return IngestOutcome(
                IngestResult.WRITTEN, object_url=str(dest), mark=stored, written_to=dest, basis=record
            )
        return self._mark_stored(record, dest, sha256, len(data), source, verdict, keep)

    def marked(self, written: Sequence[IngestOutcome]) -> list[IngestOutcome]:
        """Apply the ``Stored`` marks of ``written`` outcomes in one ledger batch; the final outcomes.

        Their objects' names are made durable first: the ledger never calls a recording stored under a
        name a power cut could take back."""
        sync_names([o.written_to for o in written if o.written_to is not None])
        known = {o.basis.dialog_id: o.basis for o in written if o.basis is not None}
        results = self.ledger.apply_many([o.mark for o in written if o.mark is not None], known)
        final: list[IngestOutcome] = []
        for outcome, result in zip([o for o in written if o.mark is not None], results, strict=True):
            assert outcome.mark is not None and outcome.object_url is not None
            if result.outcome is Outcome.CONFLICT:  # stored meanwhile with other bytes (another key)
                mark = outcome.mark
                source = object_path(outcome.object_url)

                def keep(reason_code: str, mark: Stored = mark, source: ObjectPath = source) -> str:
                    return quarantine_copy(self.layout, source, mark.dialog_id, mark.sha256, reason_code)

                final.append(self._conflict(mark.dialog_id, mark.sha256, keep))
            else:
                kind = (
                    IngestResult.STORED if result.outcome is Outcome.APPLIED else IngestResult.ALREADY_STORED
                )
                final.append(IngestOutcome(kind, object_url=outcome.object_url))
        return final

    def validate(
        self, received: ObjectPath | BinaryIO, record: CallRecord, *, known_sha256: str | None = None
    ) -> AudioVerdict:
        expected = record.duration_ms / 1000 if record.duration_ms is not None else None

        def check(source: str | BinaryIO) -> AudioVerdict:
            return validate_audio(
                source,
                expected_duration_s=expected,
                tolerance_s=self.limits.duration_tolerance_s,
                tolerance_ratio=self.limits.duration_tolerance_ratio,
                max_bytes=self.limits.max_recording_bytes,
                known_sha256=known_sha256,
                header_view=False,  # informational metadata the ledger does not keep
            )

        if not is_object_path(received):
            return check(received)
        if is_local(received):
            return check(local_path(received))
        with received.open("rb") as handle:
            return check(handle)

    def _already_there(self, record: CallRecord, sha256: str, keep: Callable[[str], str]) -> IngestOutcome:
        if record.sha256 == sha256:
            return IngestOutcome(IngestResult.ALREADY_STORED, object_url=record.object_url)
        return self._conflict(record.dialog_id, sha256, keep)

    def _reject(
        self, record: CallRecord, verdict: AudioVerdict, source: IngestionSource, keep: Callable[[str], str]
    ) -> IngestOutcome:
        reason = "; ".join(verdict.reasons) or "invalid audio"
        keep("invalid_audio")
        self.ledger.apply(AudioRejected(record.dialog_id, f"{source.value.lower()} audio rejected: {reason}"))
        return IngestOutcome(
            IngestResult.REJECTED, verdict.reasons[0].split(":")[0][:60] if verdict.reasons else "invalid"
        )

    def _destination(self, record: CallRecord, verdict: AudioVerdict) -> ObjectPath:
        if record.lob is None or record.ocp_group is None:
            raise ValueError(f"call {record.dialog_id} has no LOB/OCP group yet; it cannot be stored")
        call_start = record.call_start_ts or record.call_end_ts
        if call_start is None:
            raise ValueError(f"call {record.dialog_id} has no start or end time yet; it cannot be stored")
        return self.layout.recording_path(
            lob=record.lob,
            ocp_group=record.ocp_group,
            dialog_id=record.dialog_id,
            call_start=call_start,
            extension=verdict.format or "wav",
        )

    def _mark_stored(
        self,
        record: CallRecord,
        dest: ObjectPath,
        sha256: str,
        size_bytes: int,
        source: IngestionSource,
        verdict: AudioVerdict,
        keep: Callable[[str], str],
    ) -> IngestOutcome:
        result = self.ledger.apply(self._stored(record, dest, sha256, size_bytes, source, verdict))
        if result.outcome is Outcome.CONFLICT:
            return self._conflict(record.dialog_id, sha256, keep)
        kind = IngestResult.STORED if result.outcome is Outcome.APPLIED else IngestResult.ALREADY_STORED
        return IngestOutcome(kind, object_url=str(dest))

    @staticmethod
    def _stored(
        record: CallRecord,
        dest: ObjectPath,
        sha256: str,
        size_bytes: int,
        source: IngestionSource,
        verdict: AudioVerdict,
    ) -> Stored:
        return Stored(
            record.dialog_id, str(dest), sha256, size_bytes, source, verdict.format, verdict.duration_s
        )

    def _store(self, received: ObjectPath, dest: ObjectPath, sha256: str, lob: str | None = None) -> None:
        """Create-only store of verified bytes. Same local filesystem: an atomic hard link, no copy."""
        if is_local(received) and is_local(dest):
            try:
                # The validator has just hashed these exact bytes, and received files are never modified.
                link_create_only(received, dest)
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

    def _conflict(self, dialog_id: str, sha256: str, keep: Callable[[str], str]) -> IngestOutcome:
        quarantined = keep("conflicting_audio")
        self.ledger.apply(ConflictingAudio(dialog_id, sha256, quarantined))
        return IngestOutcome(IngestResult.CONFLICT, quarantined)
