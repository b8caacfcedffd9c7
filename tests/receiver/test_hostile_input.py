"""Hostile input over real HTTP: impossible values, replayed signatures, malformed and deep bodies.

Every case gets a 4xx with a reason and writes nothing (no ledger row, no landing file); a fault of ours is
a logged 500.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time

import pytest

from ocp_ingest.ocp import wire
from ocp_ingest.receiver import auth as signing
from ocp_ingest_dev.simulator import audio
from tests.receiver.conftest import SECRET, Receiver

DAY_MS = 24 * 3600 * 1000


def _end(call, **changes: object) -> dict[str, object]:
    return json.loads(call.dialog_end().to_json()) | changes


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"duration": -30_000}, "duration"),
        ({"duration": 10 * DAY_MS}, "duration"),
        ({"duration": 10**30}, "duration"),
        ({"time": -1}, "time"),
        ({"time": 1}, "time"),
        ({"time": 10**30}, "time"),  # overflowed the ledger's integer: a 500 after a write, before
        ({"time": int(time.time() * 1000) + 3 * DAY_MS}, "time"),
        ({"time": 1.7e12 + 0.5}, "time"),
        ({"time": "soon"}, "time"),
    ],
)
def test_impossible_values_are_422_with_a_reason_and_write_nothing(
    receiver: Receiver, calls, changes: dict[str, object], field: str
) -> None:
    response = receiver.post_body(json.dumps([_end(calls[0], **changes)]).encode())
    assert response.status_code == 422, response.text
    (rejection,) = response.json()["rejected"]
    assert rejection["index"] == 0 and rejection["reason"].startswith(field)
    assert receiver.ledger.get(calls[0].dialog_id) is None
    assert receiver.cdr_inbox() == []


def test_an_impossible_event_does_not_block_the_good_ones_of_its_batch(receiver: Receiver, calls) -> None:
    good = [json.loads(e.to_json()) for e in calls[1].events()]
    body = json.dumps([_end(calls[0], duration=-1), *good]).encode()
    response = receiver.post_body(body)
    assert response.status_code == 207
    assert response.json()["accepted"] == len(good)
    assert [r["index"] for r in response.json()["rejected"]] == [0]
    assert receiver.ledger.get(calls[0].dialog_id) is None
    assert receiver.ledger.get(calls[1].dialog_id).has_cdr_end
    assert len(receiver.cdr_inbox()) == len(good)


def test_a_malformed_ndjson_line_is_refused_alone_and_the_rest_kept(receiver: Receiver, calls) -> None:
    lines = [e.to_json() for e in calls[2].events()]
    body = b"\n".join([lines[0], b'{"message_type": "dialog_end", "id":', *lines[1:], b"42"]) + b"\n"
    response = receiver.post_body(body)
    assert response.status_code == 207, response.text
    data = response.json()
    assert data["accepted"] == len(lines)
    assert [r["index"] for r in data["rejected"]] == [1, len(lines) + 1]
    assert "line 2 is not JSON" in data["rejected"][0]["reason"]
    assert "JSON object" in data["rejected"][1]["reason"]
    assert receiver.ledger.get(calls[2].dialog_id).has_cdr_end


@pytest.mark.parametrize("depth", [40, 900, 25_000])
def test_deeply_nested_json_is_a_4xx_never_a_500(receiver: Receiver, calls, depth: int) -> None:
    nested = "[" * depth + "]" * depth
    event = json.dumps(_end(calls[0])).removesuffix("}") + f', "extra": {nested}}}'
    for body in (event.encode(), nested.encode(), f"[{event}]".encode()):
        response = receiver.post_body(body)
        assert response.status_code in (400, 422), (depth, response.status_code, response.text[:200])
        assert len(response.content) < 2000
    assert receiver.ledger.get(calls[0].dialog_id) is None
    assert receiver.cdr_inbox() == []


def test_a_flood_of_bad_records_is_answered_in_bounded_form(receiver: Receiver) -> None:
    body = json.dumps([1] * 5000).encode()
    response = receiver.post_body(body)
    assert response.status_code == 422
    data = response.json()
    assert data["rejected_total"] == 5000 and len(data["rejected"]) == 100
    too_many = json.dumps([{}] * 10_001).encode()
    assert receiver.post_body(too_many).status_code == 413


@pytest.mark.parametrize(
    "timestamp",
    [
        "\u0661\u0667\u0660\u0660\u0660\u0660\u0660\u0660\u0660\u0660\u0660\u0660\u0660",  # Arabic-Indic
        "\u00b9\u2077",  # superscripts: str.isdigit() says yes, int() raises
        "\uff11\uff17\uff10\uff10\uff10\uff10\uff10\uff10\uff10\uff10\uff10\uff10\uff10",  # fullwidth
        "9" * 5000,  # int() refuses more than 4300 digits
        "0",
        str(int(time.time() * 1000) + 3 * DAY_MS),
    ],
)
def test_file_name_timestamps_that_are_not_plausible_ascii_epoch_ms_are_400(
    receiver: Receiver, calls, timestamp: str
) -> None:
    call = calls[0]
    name = f"{call.ocp_group}~{call.account_id}~{timestamp}~{call.dialog_id}.wav"
    wav = audio.wav_bytes(call.dialog_id, call.duration_ms)
    headers = signing.audio_headers(SECRET, name, hashlib.sha256(wav).hexdigest())
    response = receiver.client.put(
        f"{receiver.url}{wire.push_recording_path(name)}", content=wav, headers=headers
    )
    assert response.status_code == 400, response.text
    assert len(response.text) < 400  # the name is quoted back cut short
    assert receiver.landing_files() == [] and receiver.ledger.get(call.dialog_id) is None


@pytest.mark.parametrize("part", ["ocp_group", "account_id", "dialog_timestamp", "dialog_id"])
def test_a_signed_push_replayed_to_another_file_name_is_401(receiver: Receiver, calls, part: str) -> None:
    """Replaying a genuine push within the window to another call's name must not land its bytes there."""
    victim, attacker = calls[0], calls[1]
    wav = audio.wav_bytes(attacker.dialog_id, attacker.duration_ms)
    genuine = signing.audio_headers(SECRET, attacker.recording_filename, hashlib.sha256(wav).hexdigest())
    parts = {
        "ocp_group": attacker.ocp_group,
        "account_id": attacker.account_id,
        "dialog_timestamp": attacker.start,
        "dialog_id": attacker.dialog_id,
    }
    parts[part] = {
        "ocp_group": "another-group",
        "account_id": "another-account",
        "dialog_timestamp": attacker.start + 1000,
        "dialog_id": victim.dialog_id,
    }[part]
    target = wire.recording_filename(**parts)
    response = receiver.client.put(
        f"{receiver.url}{wire.push_recording_path(target)}", content=wav, headers=genuine
    )
    assert response.status_code == 401, response.text
    assert receiver.landing_files() == []
    assert receiver.ledger.get(victim.dialog_id) is None and receiver.ledger.get(attacker.dialog_id) is None
    # The genuine push to its own name still lands.
    ok = receiver.client.put(
        f"{receiver.url}{wire.push_recording_path(attacker.recording_filename)}", content=wav, headers=genuine
    )
    assert ok.status_code == 200 and ok.json()["dialog_id"] == attacker.dialog_id


def test_long_paths_and_reasons_are_not_echoed_whole(receiver: Receiver, caplog) -> None:
    long_name = "A" * 20_000
    with caplog.at_level(logging.INFO):
        response = receiver.client.put(f"{receiver.url}/v1/recordings/{long_name}.wav", content=b"RIFF")
    assert response.status_code == 400 and len(response.text) < 400
    assert all(long_name not in r.getMessage() for r in caplog.records)
    assert all(len(r.getMessage()) < 1000 for r in caplog.records)


def test_our_own_fault_is_a_logged_500_not_a_4xx(receiver: Receiver, calls, caplog) -> None:
    receiver.ledger.close()  # the ledger goes away under the receiver: not the sender's fault
    with caplog.at_level(logging.ERROR, logger="ocp_ingest.receiver"):
        response = receiver.post_events(calls[0].events())
    assert response.status_code == 500
    assert response.json() == {"error": "internal error; the push was not acknowledged"}
    assert any(r.exc_info and "unexpected error" in r.getMessage() for r in caplog.records)
    assert receiver.client.get(f"{receiver.url}/healthz").status_code == 503  # and health says so


@pytest.mark.parametrize("field", ["origin_uri", "flow.name", "end_type", "vendor_note"])
def test_text_that_is_not_unicode_is_422_and_the_rest_of_the_batch_kept(
    receiver: Receiver, calls, field: str
) -> None:
    # "\ud800" is valid JSON but no Unicode text (a lone surrogate): nothing can store it as UTF-8, so
    # taken in it would fail the ledger's write or every later audit publish.
    bad = _end(calls[0])
    key, _, sub = field.partition(".")
    if sub:
        bad[key] = {**bad[key], sub: "Bankin\ud800g"}
    else:
        bad[key] = f"{bad.get(key, '')}\ud800"  # vendor_note: a field OCP may add (extra, kept)
    good = [json.loads(e.to_json()) for e in calls[1].events()]
    response = receiver.post_body(json.dumps([bad, *good]).encode())
    assert response.status_code == 207, response.text
    (rejection,) = response.json()["rejected"]
    assert rejection["index"] == 0 and rejection["reason"].startswith(field.split(".")[0])
    assert receiver.ledger.get(calls[0].dialog_id) is None
    assert receiver.ledger.get(calls[1].dialog_id).has_cdr_end
    receiver.ledger.flush_audit()
    assert receiver.ledger.audit_pending() == 0
