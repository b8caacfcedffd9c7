"""validate_audio as a whole: non-audio bodies, sources, limits, CDR tolerance, verdict shape, memory."""

from __future__ import annotations

import hashlib
import io
import json
import tracemalloc

import pytest
from audio_fixtures import build_wav, frame_offsets, pcm16

from ocp_ingest.audio import AudioVerdict, sniff_format, validate_audio

EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


class _Pipe(io.RawIOBase):
    """A non-seekable source that returns short reads, like a socket or an HTTP body."""

    def __init__(self, data: bytes, step: int = 1000) -> None:
        self._data = memoryview(data)
        self._pos = 0
        self._step = step

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = min(len(buffer), self._step, len(self._data) - self._pos)
        buffer[:n] = self._data[self._pos : self._pos + n]
        self._pos += n
        return n


class _Failing(io.RawIOBase):
    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        raise OSError("connection reset by peer")


# -- sniffing ----------------------------------------------------------------------------------------------
def test_sniff_format(mp3_cbr, mp3_telephony, wav60):
    assert sniff_format(wav60[:12]) == "wav"
    assert sniff_format(mp3_cbr[:10]) == "mp3"  # ID3v2
    assert sniff_format(mp3_telephony[45:49]) == "mp3"  # bare frame header
    assert sniff_format(b"RF64\xff\xff\xff\xffWAVE") == "wav"
    for head in (
        b"",
        b"RIFF",
        b"RIFF\x00\x00\x00\x00AVI ",
        b"<html>",
        b"\xff\xfd\x94\x00",
        b"\xff\xf1\x50\x80",
        b"ID3\x09\x00\x00\x00\x00\x00\x00",
        b"OggS\x00\x02",
    ):
        assert sniff_format(head) is None, head


# -- not audio at all --------------------------------------------------------------------------------------
def test_empty_file(write):
    verdict = validate_audio(write("empty.wav", b""))
    assert not verdict.ok
    assert verdict.reasons == ("empty file (0 bytes)",)
    assert (verdict.format, verdict.size_bytes, verdict.sha256, verdict.duration_s) == (
        None,
        0,
        EMPTY_SHA256,
        None,
    )


def test_html_error_page_named_wav(write):
    page = (
        b"<!DOCTYPE html>\n<html><head><title>503 Service Unavailable</title></head>"
        b"<body><h1>Service Unavailable</h1></body></html>\n"
    )
    verdict = validate_audio(write("recording.wav", page))
    assert not verdict.ok
    assert verdict.format is None
    assert verdict.reasons == ("looks like an HTML error page, not audio (title: '503 Service Unavailable')",)
    assert verdict.sha256 == hashlib.sha256(page).hexdigest()
    assert verdict.size_bytes == len(page)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (
            b'{"error": "recording not found", "status": 404}',
            'looks like a JSON body, not audio: \'{"error": "recording not found", "status": 404}\'',
        ),
        (
            b'<?xml version="1.0"?><Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>',
            "looks like an XML document (e.g. an HTTP/S3 error response), not audio "
            "(error code: 'AccessDenied')",
        ),
        (b"  <HTML><BODY>Gateway Timeout</BODY></HTML>", "looks like an HTML error page, not audio"),
        (b"Internal Server Error\n", "looks like a text body, not audio: 'Internal Server Error'"),
        (
            b"JUNK\x00\x01\x02\x03\xfe\xed\xfa\xce",
            "unknown format (first bytes: 4a 55 4e 4b 00 01 02 03 ...)",
        ),
        (b"\x01\x02\x03", "unknown format (first bytes: 01 02 03)"),
        (b"OggS\x00\x02" + bytes(60), "unsupported format: Ogg (Vorbis/Opus), not WAV or MP3"),
        (
            b"\xff\xfd\x94\x00" + bytes(60),
            "MPEG-1 Layer II audio, not MP3 (only MPEG Layer III is supported)",
        ),
        (b"RIFF\x10\x00\x00\x00AVI LIST", "RIFF container of type 'AVI ', not WAVE"),
    ],
)
def test_non_audio_bodies_are_named(body, reason):
    verdict = validate_audio(io.BytesIO(body))
    assert not verdict.ok
    assert verdict.reasons == (reason,)


def test_format_comes_from_bytes_not_the_name(mp3_cbr, wav60, write):
    assert validate_audio(write("actually-mp3.wav", mp3_cbr)).format == "mp3"
    assert validate_audio(write("actually-wav.mp3", wav60)).format == "wav"


# -- sources -----------------------------------------------------------------------------------------------
def test_path_file_object_and_pipe_agree(mp3_vbr, write):
    path = write("x.mp3", mp3_vbr)
    from_path = validate_audio(path)
    from_str = validate_audio(str(path))
    with open(path, "rb") as handle:
        from_handle = validate_audio(handle)
    from_pipe = validate_audio(_Pipe(mp3_vbr, step=777))
    for verdict in (from_str, from_handle, from_pipe):
        assert verdict == from_path  # metadata (mutagen needs seeking) is not part of equality
    assert from_path.ok and from_path.sha256 == hashlib.sha256(mp3_vbr).hexdigest()
    assert "header_duration_s" in from_path.metadata and "header_duration_s" not in from_pipe.metadata


def test_file_object_is_read_from_its_current_position(wav60):
    handle = io.BytesIO(b"prefix" + wav60)
    handle.seek(6)
    verdict = validate_audio(handle)
    assert verdict.ok, verdict.reasons
    assert verdict.sha256 == hashlib.sha256(wav60).hexdigest()


def test_missing_path_raises(tmp_path):
    with pytest.raises(FileNotFoundError):
        validate_audio(tmp_path / "nope.wav")


def test_source_errors_propagate():
    with pytest.raises(OSError, match="connection reset"):
        validate_audio(_Failing())


@pytest.mark.parametrize(
    "kwargs",
    [
        {"expected_duration_s": -1.0},
        {"expected_duration_s": float("nan")},
        {"tolerance_s": -0.5},
        {"tolerance_ratio": float("inf")},
        {"max_bytes": -1},
    ],
)
def test_invalid_arguments_raise(kwargs):
    with pytest.raises(ValueError):
        validate_audio(io.BytesIO(b""), **kwargs)


# -- max_bytes ---------------------------------------------------------------------------------------------
def test_max_bytes_on_a_sized_file_is_checked_before_reading(wav60, write):
    verdict = validate_audio(write("big.wav", wav60), max_bytes=1000)
    assert not verdict.ok
    assert verdict.reasons == (f"input is {len(wav60)} bytes, more than max_bytes=1000; not read",)
    assert (verdict.size_bytes, verdict.sha256) == (len(wav60), "")


def test_max_bytes_on_a_stream_stops_reading(wav60):
    pipe = _Pipe(wav60, step=4096)
    verdict = validate_audio(pipe, max_bytes=100_000)
    assert not verdict.ok
    assert verdict.reasons == ("input is larger than max_bytes=100000; stopped reading after 100001 bytes",)
    assert verdict.sha256 == "" and verdict.duration_s is None
    assert pipe._pos < 200_000  # it really stopped


def test_max_bytes_equal_to_the_size_is_fine(wav60):
    assert validate_audio(_Pipe(wav60), max_bytes=len(wav60)).ok


# -- CDR duration ------------------------------------------------------------------------------------------
def test_duration_mismatch_with_cdr(wav60, mp3_vbr):
    verdict = validate_audio(io.BytesIO(wav60), expected_duration_s=75.0)
    assert not verdict.ok
    assert verdict.reasons == (
        "measured duration 60.00 s differs from the CDR duration 75.00 s by 15.00 s (allowed 2.00 s)",
    )
    assert verdict.metadata["duration_difference_s"] == pytest.approx(15.0)
    verdict = validate_audio(io.BytesIO(mp3_vbr), expected_duration_s=12.0)
    assert not verdict.ok
    assert verdict.reasons[0].startswith("measured duration 5.04 s differs from the CDR duration 12.00 s")


def test_tolerance_is_the_larger_of_absolute_and_relative():
    wav = build_wav(pcm16(10, 8000), rate=8000, channels=1, bits=16)
    # 10 s measured against 11.9 s: 1.9 s off; allowed max(2.0, 0.02 * 11.9) = 2.0 -> ok.
    assert validate_audio(io.BytesIO(wav), expected_duration_s=11.9).ok
    assert not validate_audio(io.BytesIO(wav), expected_duration_s=12.1).ok
    # A tighter absolute tolerance; the ratio then decides: 0.1 * 11 = 1.1 s allowed for 1.0 s off.
    assert validate_audio(io.BytesIO(wav), expected_duration_s=11.0, tolerance_s=0.5, tolerance_ratio=0.1).ok
    verdict = validate_audio(io.BytesIO(wav), expected_duration_s=11.0, tolerance_s=0.5, tolerance_ratio=0.05)
    assert verdict.reasons == (
        "measured duration 10.00 s differs from the CDR duration 11.00 s by 1.00 s (allowed 0.55 s)",
    )
    # Long calls: 2 % of an hour is 72 s.
    hour = build_wav(b"\x00" * 8000 * 3600, rate=8000, channels=1, bits=8)
    assert validate_audio(io.BytesIO(hour), expected_duration_s=3600 + 70).ok
    assert not validate_audio(io.BytesIO(hour), expected_duration_s=3600 + 75).ok


# -- verdict shape -----------------------------------------------------------------------------------------
def test_verdict_is_frozen_and_serialisable(mp3_cbr):
    verdict = validate_audio(io.BytesIO(mp3_cbr), expected_duration_s=5)
    assert isinstance(verdict, AudioVerdict)
    with pytest.raises(AttributeError):
        verdict.ok = False  # type: ignore[misc]
    as_dict = verdict.to_dict()
    assert json.loads(json.dumps(as_dict)) == as_dict
    assert set(as_dict) == {
        "ok",
        "format",
        "codec",
        "sample_rate",
        "channels",
        "duration_s",
        "size_bytes",
        "sha256",
        "reasons",
        "metadata",
    }
    hash(verdict)


def test_reasons_are_capped(mp3_cbr):
    # Damage every 10th frame header: dozens of damaged regions, a bounded list of reasons.
    damaged = bytearray(mp3_cbr)
    for offset, _, _ in frame_offsets(mp3_cbr)[5::10]:
        damaged[offset : offset + 2] = b"\x00\x00"
    verdict = validate_audio(io.BytesIO(bytes(damaged)), decode_mp3=False)
    assert not verdict.ok
    assert len(verdict.reasons) <= 8
    assert any(r.startswith("... ") and "more damaged regions" in r for r in verdict.reasons)


# -- memory ------------------------------------------------------------------------------------------------
def test_memory_stays_flat_on_a_large_wav(tmp_path):
    # 64 MiB of audio (sparse on disk): Python-side allocations stay near the 1 MiB read size.
    data_size = 64 << 20
    header = build_wav(b"", rate=8000, channels=1, bits=16, data_size=data_size, riff_size=36 + data_size)
    path = tmp_path / "big.wav"
    with open(path, "wb") as out:
        out.write(header)
        out.truncate(len(header) + data_size)
    tracemalloc.start()
    try:
        verdict = validate_audio(path, expected_duration_s=data_size / 16000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert verdict.ok, verdict.reasons
    assert peak < 4 << 20, f"peak Python allocation {peak} bytes"


def test_memory_stays_flat_on_a_large_mp3(mp3_telephony):
    frames = frame_offsets(mp3_telephony)
    body = mp3_telephony[frames[1][0] :]  # audio frames only (no ID3, no Info frame)
    data = body * 800  # ~8 MiB, ~58k frames, streamed through a pipe
    tracemalloc.start()
    try:
        verdict = validate_audio(_Pipe(data, step=65536))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert verdict.ok, verdict.reasons
    assert verdict.metadata["frames"] == (len(frames) - 1) * 800
    assert peak < 4 << 20, f"peak Python allocation {peak} bytes"


def test_without_the_header_view_the_verdict_is_the_same_minus_mutagens_reading(wav60, mp3_vbr):
    for data in (wav60, mp3_vbr):
        full = validate_audio(io.BytesIO(data))
        lean = validate_audio(io.BytesIO(data), header_view=False)
        assert lean == full and lean.ok  # the judgement never depends on mutagen
        assert "header_duration_s" in full.metadata and "header_duration_s" not in lean.metadata
        assert "mutagen_bitrate" not in lean.metadata
