"""Two different bodies for one call, and one event id for two events: the outcome never depends on timing."""

from __future__ import annotations

import hashlib
import threading
from datetime import UTC, datetime

import httpx

from ocp_ingest.realtime import RealtimeProcessor, list_arrivals
from ocp_ingest.storage import StorageLayout
from ocp_ingest_dev.simulator import audio
from ocp_ingest_dev.simulator.calls import generate_calls
from tests.realtime.conftest import Receiver


def _two_bodies(dialog_id: str, duration_ms: int) -> tuple[bytes, bytes]:
    first = audio.wav_bytes(dialog_id, duration_ms)
    second = bytearray(first)
    second[-64:] = bytes(range(64))  # same length and header, other samples: both valid audio
    return first, bytes(second)


def test_concurrent_different_bodies_one_wins_the_other_is_a_conflict(receiver: Receiver) -> None:
    rounds = [
        c
        for c in generate_calls(
            seed=11, count=16, window_start=datetime(2026, 11, 24, 12, tzinfo=UTC), max_duration_s=4
        )
        if c.has_recording
    ]
    winners: dict[str, str] = {}
    for call in rounds:
        assert receiver.post_events(call.events()).status_code == 200
        bodies = _two_bodies(call.dialog_id, call.duration_ms)
        start = threading.Barrier(2)
        answers: dict[bytes, httpx.Response] = {}

        def push(body: bytes, call=call, start=start, answers=answers) -> None:  # type: ignore[no-untyped-def]
            start.wait()
            answers[body] = receiver.put_audio(call, body)

        threads = [threading.Thread(target=push, args=(b,)) for b in bodies]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        statuses = sorted((a.status_code, a.json()["status"]) for a in answers.values())
        assert statuses == [(200, "received"), (409, "conflict")], statuses
        won = next(b for b, a in answers.items() if a.status_code == 200)
        lost = next(b for b, a in answers.items() if a.status_code == 409)
        assert "was received first" in answers[lost].json()["detail"]
        record = receiver.ledger.get(call.dialog_id)
        assert record.received_sha256 == hashlib.sha256(won).hexdigest()
        assert record.last_error.startswith("conflicting audio sha256=" + hashlib.sha256(lost).hexdigest())
        winners[call.dialog_id] = hashlib.sha256(won).hexdigest()

    layout = StorageLayout.from_settings(receiver.settings)
    summary = RealtimeProcessor(receiver.settings, receiver.ledger, layout).process(
        list_arrivals(layout, 100)
    )
    assert (summary.stored, summary.conflicts) == (len(rounds), 0)  # one arrival per call reached the DAG
    for dialog_id, sha in winners.items():
        record = receiver.ledger.get(dialog_id)
        assert record.s3_stored and record.sha256 == sha
        assert record.last_error.startswith("conflicting audio")  # storing keeps the call flagged
    quarantined = list((receiver.home / "quarantine" / "conflicting_audio").iterdir())
    assert len(quarantined) == len(rounds)
    assert receiver.landing_files() == []


def test_a_rejected_first_body_releases_the_call_for_a_later_one(receiver: Receiver, calls) -> None:
    call = next(c for c in calls if c.has_recording)
    receiver.post_events(call.events())
    whole = audio.wav_bytes(call.dialog_id, call.duration_ms)
    assert receiver.put_audio(call, whole[: len(whole) // 2]).json()["status"] == "received"
    layout = StorageLayout.from_settings(receiver.settings)
    processor = RealtimeProcessor(receiver.settings, receiver.ledger, layout)
    assert processor.process(list_arrivals(layout, 10)).rejected == 1
    assert receiver.ledger.get(call.dialog_id).received_sha256 is None
    assert receiver.put_audio(call, whole).json()["status"] == "received"  # OCP redelivers the whole file
    assert processor.process(list_arrivals(layout, 10)).stored == 1
    assert receiver.ledger.get(call.dialog_id).sha256 == hashlib.sha256(whole).hexdigest()


def test_an_event_id_reused_for_another_event_is_409_and_writes_nothing(receiver: Receiver, calls) -> None:
    first, other = calls[0], calls[1]
    start = first.dialog_start()
    assert receiver.post_events([start]).status_code == 200
    before = receiver.ledger.backend.cdr_inbox_list(10)
    assert [event_id for event_id, _ in before] == [start.event_id]

    reused = other.dialog_start().model_copy(update={"event_id": start.event_id})
    answer = receiver.post_events([reused])
    assert answer.status_code == 409, answer.text
    assert answer.json()["accepted"] == 0
    assert "already names a different event" in answer.json()["rejected"][0]["reason"]
    assert receiver.ledger.get(other.dialog_id) is None  # no ledger row for the refused event
    assert receiver.ledger.backend.cdr_inbox_list(10) == before

    again = receiver.post_events([start])  # the same event again: an idempotent success
    assert again.status_code == 200 and again.json()["duplicates"] == 1

    mixed = receiver.post_events([reused, other.dialog_end()])
    assert mixed.status_code == 207
    assert [r["index"] for r in mixed.json()["rejected"]] == [0]
    record = receiver.ledger.get(other.dialog_id)
    assert record is not None and record.has_cdr_end and record.call_start_ts is not None
