"""One call's data never fails the realtime batch: it is quarantined and flagged, the rest goes on."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ocp_ingest.audit.tables import read_events
from ocp_ingest.ingest import RecordingIngestor
from ocp_ingest.ledger import CallStatus
from ocp_ingest.ledger.cdr import cdr_transition
from ocp_ingest.ledger.transitions import CdrEnd
from ocp_ingest.realtime import (
    list_arrivals,
    record_cdr_event,
    roll_cdr_manifest,
)
from ocp_ingest.routing import LobRouter
from ocp_ingest.storage import StorageLayout
from ocp_ingest_dev.simulator import audio
from ocp_ingest_dev.simulator.calls import SimCall
from tests.realtime.conftest import Embedded, Receiver
from tests.realtime.test_realtime_dag import run_realtime_dag


def _accept_with_impossible_duration(receiver: Receiver, call: SimCall) -> None:
    """The call's CDRs reach the ledger with a negative duration (as before the receiver refused such
    values, or through any path that lets one in): data that makes validating its audio raise."""
    router = LobRouter.load(receiver.settings.lob_routing_file)
    for event in call.events():
        transition = cdr_transition(event, router)
        if isinstance(transition, CdrEnd):
            transition = dataclasses.replace(transition, duration_ms=-5_000)
        if transition is not None:
            receiver.ledger.apply(transition)


@pytest.mark.slow  # the whole DAG under dag.test(); the fast checks below run the batch directly
@pytest.mark.usefixtures("airflow_db")
def test_a_call_whose_data_makes_storing_raise_never_fails_the_run(receiver: Receiver, calls) -> None:
    with_audio = [c for c in calls if c.has_recording]
    bad, good = with_audio[0], with_audio[1:]
    assert good
    _accept_with_impossible_duration(receiver, bad)
    for call in good:
        assert receiver.post_events(call.events()).status_code == 200
    for call in with_audio:
        assert receiver.put_audio(call).json()["status"] == "received"

    run_realtime_dag()  # asserts the run succeeded

    for call in good:
        record = receiver.ledger.get(call.dialog_id)
        assert record.s3_stored and record.call_status is CallStatus.COMPLETED
        assert record.sha256 == audio.wav_digest(call.dialog_id, call.duration_ms)[0]
    flagged = receiver.ledger.get(bad.dialog_id)
    assert not flagged.s3_stored and flagged.is_pending  # left to reconciliation, with the reason
    assert flagged.last_error.startswith("realtime processing failed: ValueError")
    assert "quarantined at" in flagged.last_error
    kept = list((receiver.home / "quarantine" / "processing_error").iterdir())
    assert [k.read_bytes() for k in kept] == [audio.wav_bytes(bad.dialog_id, bad.duration_ms)]
    assert receiver.landing_files() == []  # out of landing: the next run does not meet it again
    today = datetime.now(UTC).date()
    events = read_events(receiver.settings.audit_url, today - timedelta(days=1), today + timedelta(days=1))
    rejected = [
        row
        for row in events.to_pylist()
        if row["dialog_id"] == bad.dialog_id and row["event_type"] == "AUDIO_REJECTED"
    ]
    assert len(rejected) == 1 and rejected[0]["detail"] == flagged.last_error

    # the next run has nothing of it to meet (a second DAG run here would only idle out its wait)
    assert list_arrivals(StorageLayout.from_settings(receiver.settings), 100) == []


def test_any_exception_of_one_call_leaves_the_others_stored(
    embedded: Embedded, calls, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever a call's data makes raise (not a platform fault) is that call's: here storing it raises."""
    with_audio = [c for c in calls if c.has_recording]
    bad = with_audio[0]
    for call in with_audio:
        embedded.record_cdrs(call)
        embedded.land(call)
    real_store = RecordingIngestor._store

    def store(self, received, dest, sha256, lob=None):  # type: ignore[no-untyped-def]
        if bad.dialog_id in str(received):
            raise TypeError("unexpected value in this call's data")
        return real_store(self, received, dest, sha256, lob)

    monkeypatch.setattr(RecordingIngestor, "_store", store)
    summary = embedded.run_batch()
    assert (summary.stored, summary.failed) == (len(with_audio) - 1, 1)
    assert summary.reasons == {"processing_error": 1}
    assert "TypeError: unexpected value" in embedded.ledger.get(bad.dialog_id).last_error
    assert all(embedded.ledger.get(c.dialog_id).s3_stored for c in with_audio[1:])
    assert list_arrivals(embedded.layout, 100) == []


def test_a_platform_fault_still_fails_the_run(
    embedded: Embedded, calls, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A disk or network fault is not the call's: the run fails (Airflow retries it), nothing is flagged."""
    call = next(c for c in calls if c.has_recording)
    embedded.record_cdrs(call)
    embedded.land(call)

    def store(self, received, dest, sha256, lob=None):  # type: ignore[no-untyped-def]
        raise ConnectionError("object store unreachable")

    monkeypatch.setattr(RecordingIngestor, "_store", store)
    with pytest.raises(ConnectionError):
        embedded.run_batch()
    assert embedded.ledger.get(call.dialog_id).last_error is None
    assert len(list_arrivals(embedded.layout, 100)) == 1  # still there for the retry


def test_a_sidecar_whose_audio_vanished_is_flagged_not_retried(embedded: Embedded, calls) -> None:
    call = next(c for c in calls if c.has_recording)
    embedded.record_cdrs(call)
    arrival = embedded.land(call)
    Path(arrival.audio_url.removeprefix("file://")).unlink()
    assert embedded.run_batch().failed == 1
    last_error = embedded.ledger.get(call.dialog_id).last_error
    assert last_error == "realtime processing failed: landed audio is missing"
    assert list_arrivals(embedded.layout, 100) == []


def test_a_kept_event_that_no_longer_reads_is_quarantined_and_the_roll_goes_on(
    embedded: Embedded, ingest_home: Path, calls
) -> None:
    events = [e for c in calls[:2] for e in c.events()]
    for event in events:
        record_cdr_event(event, embedded.ledger, embedded.layout, embedded.router)
    unreadable = '{"id": "x", "time": 99999999999999999999}'  # e.g. accepted before a stricter rule
    embedded.ledger.backend.cdr_inbox_add([("damaged", unreadable)], "2026-12-05T00:00:00.000000Z")
    cdr = ingest_home / "landing" / "cdr"  # and a damaged file landed by a version before the inbox
    cdr.mkdir(parents=True)
    (cdr / "0000damaged.json").write_text(unreadable + " ")
    assert roll_cdr_manifest(embedded.layout, embedded.ledger) == len(events) + 2
    manifest = list((ingest_home / "audit" / "cdr_manifest").rglob("*.ndjson"))
    assert sum(len(f.read_text().splitlines()) for f in manifest) == len(events)
    kept = list((ingest_home / "quarantine" / "invalid_cdr_event").iterdir())
    assert sorted(k.read_text() for k in kept) == [unreadable, unreadable + " "]
    assert list(cdr.iterdir()) == [] and embedded.ledger.backend.cdr_inbox_list(10) == []
    assert roll_cdr_manifest(embedded.layout, embedded.ledger) == 0
