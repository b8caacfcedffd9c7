"""The receiver over real HTTP: events, audio pushes, auth, limits and hostile input."""

from __future__ import annotations

import hashlib
import json
import socket
import time

from ocp_ingest.ledger import CallStatus
from ocp_ingest.ledger.model import IngestionSource
from ocp_ingest.ledger.transitions import Stored
from ocp_ingest.receiver import auth as signing
from ocp_ingest_dev.simulator import audio
from tests.receiver.conftest import SECRET, Receiver


def test_events_reach_the_ledger_and_the_manifest_once(receiver: Receiver, calls) -> None:
    call = calls[0]
    response = receiver.post_events(call.events())
    assert response.status_code == 200, response.text
    assert response.json() == {"accepted": len(call.events()), "duplicates": 0, "rejected": []}
    record = receiver.ledger.get(call.dialog_id)
    assert record.has_cdr_end and record.call_status in (CallStatus.FINISHED_IVR, CallStatus.FINISHED_AGENT)
    assert record.ocp_group == call.ocp_group and record.lob not in (None, "")
    assert record.duration_ms == call.duration_ms
    assert receiver.cdr_inbox() == sorted(e.event_id for e in call.events())

    again = receiver.post_events(list(reversed(call.events())), kind="ndjson")  # duplicates, out of order
    assert again.json()["duplicates"] == len(call.events())
    assert receiver.cdr_inbox() == sorted(e.event_id for e in call.events())
    assert receiver.ledger.get(call.dialog_id) == record  # nothing moved


def test_a_single_object_body_is_accepted(receiver: Receiver, calls) -> None:
    body = calls[1].dialog_start().to_json()
    response = receiver.client.post(
        f"{receiver.url}/v1/events", content=body, headers=signing.event_headers(SECRET, body)
    )
    assert response.status_code == 200 and response.json()["accepted"] == 1
    assert receiver.ledger.get(calls[1].dialog_id).call_status is CallStatus.ACTIVE


def test_a_batch_with_bad_records_keeps_the_good_ones(receiver: Receiver, calls) -> None:
    good = json.loads(calls[2].dialog_end().to_json())
    bad_id = {**good, "id": "../../etc/passwd", "event_id": "e-bad-1"}
    no_type = {k: v for k, v in good.items() if k != "message_type"} | {"event_id": "e-bad-2"}
    body = json.dumps([bad_id, good, no_type, "not an object"]).encode()
    response = receiver.client.post(
        f"{receiver.url}/v1/events", content=body, headers=signing.event_headers(SECRET, body)
    )
    assert response.status_code == 207
    data = response.json()
    assert data["accepted"] == 1
    assert [r["index"] for r in data["rejected"]] == [0, 2, 3]
    assert "id" in data["rejected"][0]["reason"] and "message_type" in data["rejected"][1]["reason"]
    assert receiver.ledger.get(calls[2].dialog_id).has_cdr_end


def test_malformed_json_is_a_400(receiver: Receiver) -> None:
    body = b'{"message_type": "dialog_start",'
    response = receiver.client.post(
        f"{receiver.url}/v1/events", content=body, headers=signing.event_headers(SECRET, body)
    )
    assert response.status_code == 400 and "JSON" in response.json()["error"]


def test_wrong_or_missing_signatures_are_401_and_write_nothing(receiver: Receiver, calls) -> None:
    body = calls[0].dialog_start().to_json()
    forged = signing.event_headers("whsec_" + "d3Jvbmc=", body)
    old = signing.event_headers(SECRET, body, now=time.time() - 3600)  # replayed an hour later
    for headers in ({}, forged, old):
        response = receiver.client.post(f"{receiver.url}/v1/events", content=body, headers=headers)
        assert response.status_code == 401
        assert SECRET not in response.text
    wav = audio.wav_bytes(calls[0].dialog_id, calls[0].duration_ms)
    bad_audio = signing.audio_headers(
        "other-secret", calls[0].recording_filename, hashlib.sha256(wav).hexdigest()
    )
    url = f"{receiver.url}/v1/recordings/{calls[0].recording_filename}"
    assert receiver.client.put(url, content=wav, headers=bad_audio).status_code == 401
    assert receiver.ledger.get(calls[0].dialog_id) is None
    assert not (receiver.home / "landing").exists() or receiver.landing_files() == []


def test_audio_push_lands_and_sets_file_received_at_once(receiver: Receiver, calls) -> None:
    call = calls[0]
    wav = audio.wav_bytes(call.dialog_id, call.duration_ms)
    response = receiver.put_audio(call, wav)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "received"
    record = receiver.ledger.get(call.dialog_id)  # audio before any CDR: kept, flagged
    assert record.file_received and record.file_received_at is not None and not record.has_cdr_end
    sha = hashlib.sha256(wav).hexdigest()
    assert receiver.landing_files() == [
        f"{call.dialog_id}.{sha[:16]}.json",
        f"{call.dialog_id}.{sha[:16]}.wav",
    ]
    sidecar = json.loads(
        (receiver.home / "landing" / "audio" / f"{call.dialog_id}.{sha[:16]}.json").read_text()
    )
    assert (
        sidecar["sha256"] == sha
        and sidecar["size_bytes"] == len(wav)
        and sidecar["ocp_group"] == call.ocp_group
    )

    again = receiver.put_audio(call, wav)
    assert again.status_code == 200 and again.json()["status"] == "duplicate"
    assert len(receiver.landing_files()) == 2


def test_checksum_mismatch_is_refused_and_leaves_nothing(receiver: Receiver, calls) -> None:
    call = calls[0]
    wav = audio.wav_bytes(call.dialog_id, call.duration_ms)
    headers = signing.audio_headers(SECRET, call.recording_filename, hashlib.sha256(wav + b"x").hexdigest())
    url = f"{receiver.url}/v1/recordings/{call.recording_filename}"
    response = receiver.client.put(url, content=wav, headers=headers)
    assert response.status_code == 400 and "checksum" in response.json()["error"]
    assert receiver.landing_files() == []
    assert receiver.ledger.get(call.dialog_id) is None


def test_oversized_bodies_are_413_declared_or_streamed(receiver: Receiver, calls) -> None:
    call = calls[0]
    big = audio.wav_bytes(call.dialog_id, 3 * 60 * 1000)  # ~2.9 MB > the 2 MiB limit of this fixture
    assert receiver.put_audio(call, big).status_code == 413
    headers = signing.audio_headers(SECRET, call.recording_filename, hashlib.sha256(big).hexdigest())

    def chunked():  # no Content-Length: the limit must hold while streaming
        for i in range(0, len(big), 65536):
            yield big[i : i + 65536]

    url = f"{receiver.url}/v1/recordings/{call.recording_filename}"
    response = receiver.client.put(url, content=chunked(), headers=headers)
    assert response.status_code == 413
    assert receiver.landing_files() == []
    events = b"[" + b",".join([call.dialog_start().to_json()] * 2000) + b"]"
    response = receiver.client.post(
        f"{receiver.url}/v1/events", content=events, headers=signing.event_headers(SECRET, events)
    )
    assert response.status_code == 413


def test_non_audio_bodies_are_415_whatever_their_name(receiver: Receiver, calls) -> None:
    for body in (b"<!DOCTYPE html><html><body>502 Bad Gateway</body></html>", b'{"error": "export failed"}'):
        response = receiver.put_audio(calls[0], body)
        assert response.status_code == 415, response.text
        assert "not audio" in response.json()["error"]
    assert receiver.put_audio(calls[0], b"").status_code == 400
    assert receiver.landing_files() == []


def test_hostile_file_names_never_touch_storage(receiver: Receiver, calls) -> None:
    wav = audio.wav_bytes(calls[0].dialog_id, calls[0].duration_ms)
    for name in (
        "..%2F..%2Fetc%2Fpasswd",
        f"grp~acc~1~{calls[0].dialog_id}.wav%00.txt",
        f"..~acc~1~{calls[0].dialog_id}.wav",
        "grp~acc~1~NOTHEX.wav",
        f"grp~acc~notanumber~{calls[0].dialog_id}.wav",
    ):
        headers = signing.audio_headers(SECRET, name, hashlib.sha256(wav).hexdigest())
        response = receiver.client.put(f"{receiver.url}/v1/recordings/{name}", content=wav, headers=headers)
        assert response.status_code in (400, 404), (name, response.status_code)
    assert receiver.landing_files() == []
    assert not (receiver.home / "etc").exists()


def test_different_bytes_for_a_stored_call_are_quarantined_never_overwritten(
    receiver: Receiver, calls
) -> None:
    call = calls[0]
    wav = audio.wav_bytes(call.dialog_id, call.duration_ms)
    receiver.ledger.apply(
        Stored(
            call.dialog_id,
            "file:///rec/x.wav",
            hashlib.sha256(wav).hexdigest(),
            len(wav),
            IngestionSource.REALTIME,
        )
    )
    same = receiver.put_audio(call, wav)
    assert same.status_code == 200 and same.json()["status"] == "already_stored"
    other = bytearray(wav)
    other[-100:] = b"\x01" * 100
    response = receiver.put_audio(call, bytes(other))
    assert response.status_code == 409 and response.json()["status"] == "conflict"
    record = receiver.ledger.get(call.dialog_id)
    assert record.sha256 == hashlib.sha256(wav).hexdigest() and record.s3_stored
    assert "conflicting audio" in record.last_error
    quarantined = list((receiver.home / "quarantine" / "conflicting_audio").iterdir())
    assert len(quarantined) == 1 and quarantined[0].read_bytes() == bytes(other)
    assert receiver.landing_files() == []


def test_connection_reset_mid_upload_keeps_nothing(receiver: Receiver, calls) -> None:
    call = calls[0]
    wav = audio.wav_bytes(call.dialog_id, 60_000)
    headers = signing.audio_headers(SECRET, call.recording_filename, hashlib.sha256(wav).hexdigest())
    host, port = receiver.url.removeprefix("http://").split(":")
    request = (
        f"PUT /v1/recordings/{call.recording_filename} HTTP/1.1\r\nHost: {host}\r\n"
        f"Content-Length: {len(wav)}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    ).encode()
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(request + wav[: len(wav) // 3])
    deadline = time.monotonic() + 5
    while (
        time.monotonic() < deadline
        and "ocp_receiver_uploads_aborted_total" not in receiver.client.get(f"{receiver.url}/metrics").text
    ):
        time.sleep(0.05)
    assert receiver.landing_files() == []
    assert receiver.ledger.get(call.dialog_id) is None
    # A clean retry of the same push afterwards succeeds.
    assert receiver.put_audio(call, wav).json()["status"] == "received"


def test_shared_secret_mode(ingest_home, monkeypatch, calls) -> None:
    import httpx

    from ocp_ingest.config import Settings
    from ocp_ingest.ledger import open_ledger
    from ocp_ingest.receiver.app import create_app
    from ocp_ingest_dev.simulator.server import start_asgi

    monkeypatch.setenv("OCP_INGEST_RECEIVER_AUTH", "shared")
    settings = Settings.from_env()
    with open_ledger(settings) as ledger:
        server = start_asgi(create_app(settings, secret="s3cret-value", ledger=ledger))
        try:
            body = calls[0].dialog_start().to_json()
            url = f"{server.url}/v1/events"
            assert httpx.post(url, content=body).status_code == 401
            assert (
                httpx.post(url, content=body, headers={signing.SHARED_SECRET_HEADER: "nope"}).status_code
                == 401
            )
            ok = httpx.post(url, content=body, headers={signing.SHARED_SECRET_HEADER: "s3cret-value"})
            assert ok.status_code == 200
            wav = audio.wav_bytes(calls[0].dialog_id, calls[0].duration_ms)
            pushed = httpx.put(
                f"{server.url}/v1/recordings/{calls[0].recording_filename}",
                content=wav,
                headers={signing.SHARED_SECRET_HEADER: "s3cret-value"},
            )
            assert pushed.status_code == 200 and pushed.json()["sha256"] == hashlib.sha256(wav).hexdigest()
        finally:
            server.stop()


def test_health_metrics_and_openapi(receiver: Receiver, calls) -> None:
    receiver.post_events(calls[0].events())
    health = receiver.client.get(f"{receiver.url}/healthz")
    assert health.status_code == 200 and health.json()["ledger"] == "ok"
    metrics = receiver.client.get(f"{receiver.url}/metrics").text
    assert f"ocp_receiver_events_accepted_total {len(calls[0].events())}" in metrics
    spec = receiver.client.get(f"{receiver.url}/openapi.json").json()
    assert {"/v1/events", "/v1/recordings/{filename}", "/healthz", "/metrics"} <= set(spec["paths"])
