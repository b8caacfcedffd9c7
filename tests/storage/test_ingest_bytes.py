"""The in-memory ingest (reconciliation downloads): every byte hashed once, the same verdicts and stores."""

from __future__ import annotations

import hashlib
import io
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ocp_ingest.audio import validate_audio
from ocp_ingest.config import Settings
from ocp_ingest.ingest import IngestOutcome, IngestResult, RecordingIngestor
from ocp_ingest.ledger import IngestionSource, open_ledger
from ocp_ingest.ledger.transitions import CallIdentity, CdrEnd
from ocp_ingest.storage import ChecksumMismatch, StorageLayout, write_create_only
from ocp_ingest_dev.simulator import audio

DIALOG = "0123456789ABCDEF0123456789ABCDEF"
OTHER = "FEDCBA9876543210FEDCBA9876543210"
END = datetime(2026, 11, 24, 10, 0, 30, tzinfo=UTC)


@pytest.fixture
def setup(ingest_home):
    settings = Settings.from_env()
    with open_ledger(settings) as ledger:
        identity = CallIdentity(ocp_group="ocp-g1", lob="retail")
        for dialog_id in (DIALOG, OTHER):
            ledger.apply(CdrEnd(dialog_id, END, 3000, "NORMAL", identity))
        yield RecordingIngestor(settings, ledger, StorageLayout.from_settings(settings)), ledger


def test_validator_reports_a_known_digest_without_hashing_and_checks_it_is_one() -> None:
    body = audio.wav_bytes(DIALOG, 3000)
    sha = hashlib.sha256(body).hexdigest()
    hashed = validate_audio(io.BytesIO(body), expected_duration_s=3.0)
    trusted = validate_audio(io.BytesIO(body), expected_duration_s=3.0, known_sha256=sha)
    assert hashed == trusted and trusted.ok and trusted.sha256 == sha
    truncated = validate_audio(io.BytesIO(body[:-100]), known_sha256=sha)
    assert not truncated.ok  # the structural checks still read every byte
    with pytest.raises(ValueError, match="known_sha256"):
        validate_audio(io.BytesIO(body), known_sha256="ABC")


def test_a_precomputed_digest_is_checked_and_reported_like_a_computed_one(tmp_path) -> None:
    from airflow.sdk import ObjectStoragePath

    dest = ObjectStoragePath((tmp_path / "x.wav").as_uri())
    body = b"RIFF" + b"a" * 1000
    sha = hashlib.sha256(body).hexdigest()
    with pytest.raises(ChecksumMismatch):
        write_create_only(dest, [body], expected_sha256="0" * 64, precomputed_sha256=sha)
    assert not dest.exists()
    first = write_create_only(dest, [body], expected_sha256=sha, precomputed_sha256=sha)
    assert first.created and first.sha256 == sha and dest.read_bytes() == body
    again = write_create_only(dest, [body], expected_sha256=sha, precomputed_sha256=sha)
    assert not again.created


def test_ingest_bytes_stores_once_marks_in_a_batch_and_quarantines_bad_audio(setup) -> None:
    ingestor, ledger = setup
    body = audio.wav_bytes(DIALOG, 3000)
    sha = hashlib.sha256(body).hexdigest()

    written = ingestor.ingest_bytes(body, sha, ledger.get(DIALOG), IngestionSource.RECONCILIATION, mark=False)
    assert written.kind == "written" and not ledger.get(DIALOG).s3_stored  # stored, not marked yet
    (final,) = ingestor.marked([written])
    record = ledger.get(DIALOG)
    assert final.kind == "stored" and record.s3_stored and record.sha256 == sha
    assert record.ingestion_source is IngestionSource.RECONCILIATION
    assert hashlib.sha256(Path(final.object_url.removeprefix("file://")).read_bytes()).hexdigest() == sha

    # A repeat (a re-run) finds the call stored: nothing is written again.
    again = ingestor.ingest_bytes(body, sha, record, IngestionSource.RECONCILIATION)
    assert again.kind == "already_stored" and again.object_url == record.object_url

    # Not audio: rejected, the bytes are kept in quarantine, the call stays pending.
    junk = b"<html>503 Service Unavailable</html>"
    junk_sha = hashlib.sha256(junk).hexdigest()
    rejected = ingestor.ingest_bytes(junk, junk_sha, ledger.get(OTHER), IngestionSource.RECONCILIATION)
    assert rejected.kind == "rejected" and not ledger.get(OTHER).s3_stored
    kept = ingestor.layout.quarantine_path(OTHER, junk_sha, "invalid_audio")
    assert kept.read_bytes() == junk


def test_outcome_kinds_are_an_enum_equal_to_their_old_strings() -> None:
    assert IngestOutcome("error", "no ledger record").kind is IngestResult.ERROR  # a string is converted
    assert IngestOutcome(IngestResult.STORED).kind == "stored" and f"{IngestResult.ALREADY_STORED}" == (
        "already_stored"
    )
    assert json.dumps({IngestResult.CONFLICT: IngestResult.EXPIRED}) == '{"conflict": "expired"}'
    with pytest.raises(ValueError, match="'stord'"):
        IngestOutcome("stord")


def test_a_batch_makes_its_names_durable_before_the_ledger_marks_them(setup, monkeypatch) -> None:
    """``mark=False`` leaves each name's directory fsync to ``marked``, which does it once for the batch
    and before any ``Stored`` mark: the ledger never points at a name a power cut could take back."""
    from ocp_ingest.storage import write as storage_write

    ingestor, ledger = setup
    events: list[str] = []
    real_sync, real_apply_many = storage_write._sync_directory, ledger.apply_many

    def sync(dir_fd: int) -> None:
        events.append("sync")
        real_sync(dir_fd)

    def apply_many(transitions, known=None):
        events.append(f"mark {len(transitions)}")
        return real_apply_many(transitions, known)

    monkeypatch.setattr(storage_write, "_sync_directory", sync)
    monkeypatch.setattr(ledger, "apply_many", apply_many)
    written = []
    for dialog_id in (DIALOG, OTHER):
        body = audio.wav_bytes(dialog_id, 3000)
        record = ledger.get(dialog_id)
        written.append(
            ingestor.ingest_bytes(
                body, hashlib.sha256(body).hexdigest(), record, IngestionSource.RECONCILIATION, mark=False
            )
        )
    assert events == []  # written, names not yet synced, nothing marked
    final = ingestor.marked(written)
    assert [o.kind for o in final] == ["stored", "stored"]
    assert events == ["sync", "mark 2"]  # both calls' recordings share a directory: one fsync
