"""Wire shapes and push signing, without HTTP."""

from __future__ import annotations

import hashlib
import json
import time
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from ocp_ingest import ids
from ocp_ingest.ocp import wire
from ocp_ingest.receiver import auth as signing
from ocp_ingest_dev.simulator.calls import generate_calls
from tests.sim_support import valid_cdrs


def _t(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_window_is_truncated_to_the_hour() -> None:
    start, end = wire.align_window(_t("2025-01-01T10:59:59"), _t("2025-01-01T12:00:01"))
    assert (start, end) == (_t("2025-01-01T10:00:00"), _t("2025-01-01T12:00:00"))


@pytest.mark.parametrize(
    ("start", "end", "ok"),
    [
        ("2025-01-01T10:00", "2025-01-01T11:00", True),  # exactly 1 h
        ("2025-01-01T10:30", "2025-01-01T11:10", True),  # 10:00..11:00 after truncation
        ("2025-01-01T10:10", "2025-01-01T10:50", False),  # 0 h after truncation
        ("2025-01-01T10:00", "2025-01-03T10:00", True),  # exactly 2 days
        ("2025-01-01T10:00", "2025-01-03T11:00", False),  # 2 days + 1 h
        ("2025-01-01T12:00", "2025-01-01T10:00", False),  # reversed
    ],
)
def test_window_bounds(start: str, end: str, ok: bool) -> None:
    if ok:
        wire.align_window(_t(start), _t(end))
    else:
        with pytest.raises(ValueError, match="export window"):
            wire.align_window(_t(start), _t(end))


def test_recording_filename_round_trip_and_hostile_names() -> None:
    name = wire.recording_filename("ocp-banking", "acc-1", 1700000000000, "ab" * 16)
    assert name == f"ocp-banking~acc-1~1700000000000~{'AB' * 16}.wav"
    parsed = wire.parse_recording_filename(name)
    assert (parsed.ocp_group, parsed.dialog_id, parsed.dialog_timestamp) == (
        "ocp-banking",
        "AB" * 16,
        1700000000000,
    )
    for bad in ("../x~a~1~" + "A" * 32 + ".wav", "g~a~1~" + "A" * 31 + ".wav", "g~a~x~" + "A" * 32 + ".wav"):
        with pytest.raises(ids.InvalidIdentifier):
            wire.parse_recording_filename(bad)


def test_generated_events_parse_and_carry_stable_event_ids() -> None:
    calls = generate_calls(seed=3, count=20, window_start=_t("2025-01-01T00:00"))
    assert calls == generate_calls(seed=3, count=20, window_start=_t("2025-01-01T00:00"))  # deterministic
    body = wire.event_body([e for c in calls for e in c.events()], "ndjson")
    events = valid_cdrs(body.splitlines())
    assert {e.message_type for e in events} == set(wire.MessageType)
    assert len({e.event_id for e in events}) == len(events)
    ivr = [e for e in events if e.is_ivr_end]
    assert ivr and all(e.reason for e in ivr)
    ends = [e for e in events if e.message_type is wire.MessageType.DIALOG_END]
    assert all(e.end_type and e.duration for e in ends)
    assert calls[0].dialog_end().event_id == calls[0].dialog_end().event_id
    assert len(wire.parse_event_body(wire.event_body(events[:3]))) == 3
    assert {c.flow_name for c in calls} >= {"retail_banking_main", "cards_support"}


def test_event_signature_round_trip_and_tampering() -> None:
    body = b'[{"id": 1}]'
    headers = signing.event_headers("s3cret", body, now=1000)
    assert signing.verify_body("s3cret", headers, body, now=1010) == headers[signing.ID_HEADER]
    with pytest.raises(signing.SignatureError):
        signing.verify_body("s3cret", headers, body + b" ", now=1010)
    with pytest.raises(signing.SignatureError):
        signing.verify_body("other", headers, body, now=1010)
    with pytest.raises(signing.SignatureError, match="replay window"):
        signing.verify_body("s3cret", headers, body, now=1000 + 301)


NAME = wire.recording_filename("ocp-banking", "acc-1", 1_700_000_000_000, "AB" * 16)


def test_audio_signature_covers_the_digest() -> None:
    sha = hashlib.sha256(b"RIFF....").hexdigest()
    headers = signing.audio_headers("s3cret", NAME, sha, now=50)
    assert signing.verify_digest("s3cret", headers, NAME, now=50) == (headers[signing.ID_HEADER], sha)
    forged = dict(headers, **{signing.CONTENT_SHA256_HEADER: hashlib.sha256(b"other").hexdigest()})
    with pytest.raises(signing.SignatureError):
        signing.verify_digest("s3cret", forged, NAME, now=50)
    signing.verify_shared_secret("pw", {signing.SHARED_SECRET_HEADER: "pw"})
    with pytest.raises(signing.SignatureError) as info:
        signing.verify_shared_secret("pw", {signing.SHARED_SECRET_HEADER: "wrong"})
    assert "pw" not in str(info.value).replace(signing.SHARED_SECRET_HEADER, "")


def test_a_malformed_whsec_secret_is_a_clear_configuration_error() -> None:
    from ocp_ingest.receiver import auth as signing

    with pytest.raises(ValueError, match="standard base64") as raised:
        signing.event_headers("whsec_not-base64_!", b"{}")
    assert "not-base64" not in str(raised.value)


def test_new_secrets_are_fresh_and_usable() -> None:
    from ocp_ingest.receiver import auth as signing

    first, second = signing.new_secret(), signing.new_secret()
    assert first != second and first.startswith("whsec_")
    headers = signing.event_headers(first, b"[]")
    assert signing.verify_body(first, headers, b"[]") == headers[signing.ID_HEADER]
    with pytest.raises(signing.SignatureError):
        signing.verify_body(second, headers, b"[]")


@pytest.mark.parametrize(
    "other",
    [
        wire.recording_filename("ocp-cards", "acc-1", 1_700_000_000_000, "AB" * 16),  # another group
        wire.recording_filename("ocp-banking", "acc-2", 1_700_000_000_000, "AB" * 16),  # another account
        wire.recording_filename("ocp-banking", "acc-1", 1_700_000_000_001, "AB" * 16),  # another time
        wire.recording_filename("ocp-banking", "acc-1", 1_700_000_000_000, "CD" * 16),  # another call
    ],
)
def test_audio_signature_covers_where_the_bytes_go(other: str) -> None:
    """A signed push replayed (within the window) to any other file name does not verify."""
    sha = hashlib.sha256(b"RIFF....").hexdigest()
    headers = signing.audio_headers("s3cret", NAME, sha, now=50)
    with pytest.raises(signing.SignatureError, match="does not match"):
        signing.verify_digest("s3cret", headers, other, now=50)


@pytest.mark.parametrize("raw", ["", "-50", " 50", "5_0", "\u0665\u0660", "\u00b2", "50.0", "9" * 5000])
def test_signature_timestamps_are_ascii_digits_only(raw: str) -> None:
    headers = signing.event_headers("s3cret", b"[]", now=50) | {signing.TIMESTAMP_HEADER: raw}
    with pytest.raises(signing.SignatureError, match="malformed"):
        signing.verify_body("s3cret", headers, b"[]", now=50)


def _event(**changes: object) -> dict[str, object]:
    event = generate_calls(seed=3, count=1, window_start=_t("2025-01-01T00:00"))[0].dialog_end()
    return json.loads(event.to_json()) | changes


DAY_MS = 24 * 3600 * 1000


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"duration": -1}, "duration"),
        ({"duration": DAY_MS + 1}, "duration"),
        ({"duration": 10**30}, "duration"),
        ({"time": -1}, "time"),
        ({"time": 0}, "time"),
        ({"time": wire.MIN_EVENT_TIME_MS - 1}, "time"),
        ({"time": int(time.time() * 1000) + 2 * DAY_MS}, "time"),
        ({"time": 10**30}, "time"),
        ({"time": 2**63}, "time"),
    ],
)
def test_impossible_values_are_refused_with_the_field(changes: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        wire.CdrEvent.model_validate(_event(**changes))
    assert info.value.errors()[0]["loc"] == (field,)


def test_plausible_bounds_are_accepted() -> None:
    now_ms = int(time.time() * 1000)
    edges = ({"duration": 0}, {"duration": DAY_MS}, {"time": wire.MIN_EVENT_TIME_MS}, {"time": now_ms})
    for changes in edges:
        wire.CdrEvent.model_validate(_event(**changes))


def test_a_malformed_ndjson_line_is_one_malformed_record() -> None:
    good = json.dumps(_event())
    records = wire.parse_event_body(f"{good}\n{{not json\n\n{good}\n".encode())
    assert len(records) == 3
    assert isinstance(records[1], wire.MalformedRecord) and "line 2" in records[1].reason
    assert records[0] == records[2] == json.loads(good)
    for body in (b'{"message_type": "dialog_start",', b"{nope\n[also not\n", b"\xff\xfe"):
        with pytest.raises(ValueError):
            wire.parse_event_body(body)


@pytest.mark.parametrize("depth", [wire.MAX_JSON_DEPTH + 1, 900, 50_000])
def test_deep_json_is_refused_never_a_recursion_error(depth: int) -> None:
    deep = "[" * depth + "]" * depth
    as_field = '{"x": ' + deep + "}"
    try:
        records = wire.parse_event_body(as_field.encode())
    except ValueError as exc:  # too deep for the decoder: the whole body is refused
        assert "nested" in str(exc)
    else:
        assert len(records) == 1 and isinstance(records[0], wire.MalformedRecord)
    lines = wire.parse_event_body((json.dumps(_event()) + "\n" + as_field).encode())
    assert isinstance(lines[0], dict) and isinstance(lines[1], wire.MalformedRecord)


@pytest.mark.parametrize(
    "timestamp",
    [
        "\u0661\u0667\u0660\u0660\u0660\u0660\u0660\u0660\u0660\u0660\u0660\u0660\u0660",  # Arabic-Indic
        "\u00b9\u2077",  # superscripts: isdigit() is True, int() fails
        "\uff11\uff17\uff10\uff10\uff10\uff10\uff10\uff10\uff10\uff10\uff10\uff10\uff10",  # fullwidth
        "1700000000000\n",
        "+1700000000000",
        "1_700_000_000_000",
        "0",
        "9" * 17,
        "9" * 5000,
        str(int(time.time() * 1000) + 2 * DAY_MS),
    ],
)
def test_file_name_timestamps_are_plausible_ascii_epoch_ms(timestamp: str) -> None:
    with pytest.raises(ids.InvalidIdentifier):
        wire.parse_recording_filename(f"grp~acc~{timestamp}~{'A' * 32}.wav")


def test_overlong_file_names_are_refused_quoting_a_short_part() -> None:
    with pytest.raises(ids.InvalidIdentifier) as info:
        wire.parse_recording_filename("g" * 100_000 + ".wav")
    assert len(str(info.value)) < 200


def test_a_cdr_file_keeps_its_valid_lines_and_says_which_lines_it_refused() -> None:
    calls = generate_calls(seed=5, count=3, window_start=_t("2025-01-01T00:00"))
    good = [c.dialog_end().to_json() for c in calls]
    surrogate = json.loads(good[0]) | {"origin_uri": "sip:x\ud800"}
    impossible = json.loads(good[1]) | {"duration": -5}
    lines = [
        good[0],
        json.dumps(surrogate).encode(),  # valid JSON, no Unicode text
        b'{"message_type": "dialog_end", "id":',  # not JSON
        json.dumps(impossible).encode(),
        b"\xff\xfe not UTF-8",
        b"",
        good[1],
        good[2],
    ]
    events, refused = wire.parse_cdr_ndjson(lines)
    assert [e.dialog_id for e in events] == [c.dialog_id for c in calls]
    assert [r.split(":")[0] for r in refused] == ["line 2", "line 3", "line 4", "line 5"]
    assert "duration" in refused[2]
    assert not any("sip:x" in r or "dialog_end" in r for r in refused)  # reasons never quote the line
