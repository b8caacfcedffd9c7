"""End to end: simulator -> receiver (real HTTP) -> dag.test() of ocp_realtime_ingest."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from airflow.sdk.api.client import get_hostname

from ocp_ingest.ledger import CallStatus, IngestionSource
from ocp_ingest.realtime import count_arrivals
from ocp_ingest_dev.simulator import audio
from ocp_ingest_dev.simulator.push import Pusher, PushFaults, PushPlan, plan_pushes, push_calls
from tests.conftest import load_dag, return_value_of, return_values_of
from tests.realtime.conftest import SECRET, Receiver

pytestmark = pytest.mark.usefixtures("airflow_db")


def run_realtime_dag() -> None:
    dag_run = load_dag("ocp_realtime_ingest").test()
    assert dag_run.state == "success", dag_run.state


def push(receiver: Receiver, calls, faults: PushFaults) -> dict[str, PushPlan]:
    pusher = Pusher(receiver.url, signing_secret=SECRET, concurrency=4)
    try:
        return push_calls(calls, plan_pushes(calls, faults, seed=3), pusher)
    finally:
        pusher.close()


def stored_sha(url: str) -> str:
    return hashlib.sha256(Path(url.removeprefix("file://")).read_bytes()).hexdigest()


def test_every_pushed_call_is_completed_with_the_ground_truth_bytes(receiver: Receiver, calls) -> None:
    plans = push(receiver, calls, PushFaults.none())
    run_realtime_dag()
    for call in calls:
        record = receiver.ledger.get(call.dialog_id)
        if not call.has_recording:
            assert plans[call.dialog_id].audio == "none" and not record.s3_stored
            continue
        truth_sha, truth_size = audio.wav_digest(call.dialog_id, call.duration_ms)
        assert record.call_status is CallStatus.COMPLETED
        assert (record.has_cdr_end, record.file_received, record.post_process_ok, record.s3_stored) == (
            True,
        ) * 4
        assert record.ingestion_source is IngestionSource.REALTIME
        assert record.sha256 == truth_sha and record.size_bytes == truth_size
        assert stored_sha(record.object_url) == truth_sha
        assert record.cdr_end_at <= record.s3_stored_at and record.file_received_at <= record.s3_stored_at
        assert f"/{record.lob}/" in record.object_url and record.object_url.endswith(f"/{call.dialog_id}.wav")
        assert abs(record.audio_duration_s - call.duration_ms / 1000) < 0.01
    assert receiver.landing_files() == []  # processed arrivals are cleared
    manifest = list((receiver.home / "audit" / "cdr_manifest").rglob("*.ndjson"))
    lines = [ln for f in manifest for ln in f.read_text().splitlines()]
    assert len(lines) == sum(len(c.events()) for c in calls)
    assert receiver.cdr_inbox() == []  # every accepted event rolled
    assert not (receiver.home / "landing" / "cdr_waiting").exists()  # nothing left to wake the DAG

    before = {c.dialog_id: receiver.ledger.get(c.dialog_id) for c in calls}
    push(receiver, calls, PushFaults.none())  # OCP redelivers everything
    run_realtime_dag()  # and the DAG runs again: nothing is duplicated or regressed
    for call in calls:
        after = receiver.ledger.get(call.dialog_id)
        assert (after.s3_stored, after.sha256, after.object_url, after.s3_stored_at) == (
            before[call.dialog_id].s3_stored,
            before[call.dialog_id].sha256,
            before[call.dialog_id].object_url,
            before[call.dialog_id].s3_stored_at,
        )
    assert len(list((receiver.home / "recordings").rglob("*.wav"))) == sum(c.has_recording for c in calls)
    assert receiver.landing_files() == []


def test_corrupt_audio_is_quarantined_and_left_pending(receiver: Receiver, calls) -> None:
    call = next(c for c in calls if c.has_recording)
    receiver.post_events(call.events())
    wav = bytearray(audio.wav_bytes(call.dialog_id, call.duration_ms))
    half = bytes(wav[: len(wav) // 2])  # truncated: the header still claims the full length
    assert receiver.put_audio(call, half).json()["status"] == "received"
    run_realtime_dag()
    record = receiver.ledger.get(call.dialog_id)
    assert record.file_received and not record.post_process_ok and not record.s3_stored
    assert record.last_error.startswith("realtime audio rejected:")
    assert record.is_pending
    quarantined = list((receiver.home / "quarantine" / "invalid_audio").iterdir())
    assert [q.read_bytes() for q in quarantined] == [half]
    assert receiver.landing_files() == []
    assert not (receiver.home / "recordings").exists() or not list(
        (receiver.home / "recordings").rglob("*.wav")
    )


def test_audio_before_its_cdr_waits_in_landing_then_is_stored(receiver: Receiver, calls) -> None:
    call = next(c for c in calls if c.has_recording)
    sha = audio.wav_digest(call.dialog_id, call.duration_ms)[0]
    assert receiver.put_audio(call).json()["status"] == "received"
    run_realtime_dag()
    # Kept, not lost, not stored without a CDR, and parked: an idle DAG must not wake up for it again.
    assert sorted(str(p.relative_to(receiver.home)) for p in (receiver.home / "landing").rglob("*.*")) == [
        f"landing/audio/{call.dialog_id}.{sha[:16]}.wav",
        f"landing/audio/waiting/{call.dialog_id}.{sha[:16]}.json",
    ]
    assert count_arrivals(receiver.settings.landing_url) == 0
    assert not receiver.ledger.get(call.dialog_id).s3_stored
    receiver.post_events(list(reversed(call.events())))  # and out of order
    run_realtime_dag()
    record = receiver.ledger.get(call.dialog_id)
    assert record.s3_stored and record.call_status is CallStatus.COMPLETED
    assert not list((receiver.home / "landing" / "audio").rglob("*.*"))


def test_two_different_recordings_for_one_call_store_one_and_quarantine_the_other(
    receiver: Receiver,
    calls,
) -> None:
    call = next(c for c in calls if c.has_recording)
    receiver.post_events(call.events())
    first = audio.wav_bytes(call.dialog_id, call.duration_ms)
    second = bytearray(first)
    second[-64:] = bytes(range(64))  # same length and header, other samples: both valid
    assert receiver.put_audio(call, first).json()["status"] == "received"
    refused = receiver.put_audio(call, bytes(second))  # the first complete body wins
    assert (refused.status_code, refused.json()["status"]) == (409, "conflict")
    run_realtime_dag()
    record = receiver.ledger.get(call.dialog_id)
    assert record.s3_stored
    assert stored_sha(record.object_url) == record.sha256
    assert record.sha256 == hashlib.sha256(first).hexdigest()
    assert "conflicting audio" in (record.last_error or "")
    assert len(list((receiver.home / "quarantine" / "conflicting_audio").iterdir())) == 1
    assert receiver.landing_files() == []


def test_faulty_pushes_still_store_every_whole_recording(receiver: Receiver, calls) -> None:
    faults = PushFaults(
        audio_drop_share=0.3,
        duplicate_share=0.5,
        out_of_order_share=0.5,
        delay_share=0.0,
        truncate_share=0.0,
        corrupt_share=0.0,
        lost_dialog_end_share=0.0,
        reset_share=0.0,
    )
    plans = push(receiver, calls, faults)
    run_realtime_dag()
    for call in calls:
        record = receiver.ledger.get(call.dialog_id)
        if plans[call.dialog_id].audio == "pushed":
            assert record.s3_stored and record.sha256 == audio.wav_digest(call.dialog_id, call.duration_ms)[0]
        else:
            assert not record.s3_stored and record.has_cdr_end  # left for reconciliation


def test_a_run_fans_out_into_shards_that_together_store_every_call(
    receiver: Receiver, calls, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OCP_INGEST_REALTIME_SHARD_SIZE", "2")
    monkeypatch.setenv("OCP_INGEST_REALTIME_MAX_SHARDS", "3")
    push(receiver, calls, PushFaults.none())
    dag_run = load_dag("ocp_realtime_ingest").test()
    assert dag_run.state == "success"
    shards = [ti for ti in dag_run.get_task_instances() if ti.task_id == "store_shard"]
    assert sorted(ti.map_index for ti in shards) == [0, 1, 2]  # bounded by the setting, not one per call
    assert {ti.rendered_map_index for ti in shards} == {"shard 1/3", "shard 2/3", "shard 3/3"}
    with_audio = [c for c in calls if c.has_recording]
    for call in with_audio:
        assert receiver.ledger.get(call.dialog_id).call_status is CallStatus.COMPLETED
    assert receiver.landing_files() == []
    # every shard says which worker stored its calls; the run's summary adds them up per worker
    per_shard = return_values_of(dag_run, "store_shard")
    workers = {s["worker"] for s in per_shard}
    assert len(per_shard) == 3 and workers == {get_hostname()}
    summary = return_value_of(dag_run, "summarize")
    assert summary["stored"] == len(with_audio)
    assert summary["stored_by_worker"] == {get_hostname(): len(with_audio)}
