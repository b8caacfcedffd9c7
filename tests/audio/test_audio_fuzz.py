"""Hostile bytes never make validate_audio raise: deterministic random mutations of valid files."""

from __future__ import annotations

import hashlib
import io
import random
import time

import pytest
from audio_fixtures import build_wav, frame_offsets, g711, pcm16

from ocp_ingest.audio import AudioVerdict, mp3, validate_audio

MUTATIONS_PER_FILE = 120


def _mutate(data: bytes, rnd: random.Random) -> bytes:
    buf = bytearray(data)
    for _ in range(rnd.randint(1, 3)):
        kind = rnd.choice(("flip", "flip", "truncate", "insert", "zero", "delete", "duplicate", "header"))
        at = rnd.randrange(len(buf)) if buf else 0
        if kind == "flip" and buf:
            for _ in range(rnd.randint(1, 8)):
                buf[rnd.randrange(len(buf))] ^= 1 << rnd.randrange(8)
        elif kind == "truncate":
            del buf[at:]
        elif kind == "insert":
            buf[at:at] = rnd.randbytes(rnd.randint(1, 600))
        elif kind == "zero":
            length = rnd.randint(1, 5000)
            buf[at : at + length] = bytes(len(buf[at : at + length]))
        elif kind == "delete":
            del buf[at : at + rnd.randint(1, 2000)]
        elif kind == "duplicate":
            buf[at:at] = buf[at : at + rnd.randint(1, 3000)]
        elif kind == "header" and len(buf) > 64:
            # Hit the headers, where sizes and formats live.
            spot = rnd.randrange(64)
            buf[spot : spot + 4] = rnd.choice((b"\xff\xff\xff\xff", b"\x00\x00\x00\x00", rnd.randbytes(4)))
    return bytes(buf)


def _check(data: bytes, **kwargs) -> AudioVerdict:
    verdict = validate_audio(io.BytesIO(data), **kwargs)
    assert isinstance(verdict, AudioVerdict)
    assert verdict.sha256 == hashlib.sha256(data).hexdigest()
    assert verdict.size_bytes == len(data)
    assert verdict.ok == (not verdict.reasons)
    if verdict.ok:
        assert verdict.format in ("wav", "mp3") and verdict.duration_s is not None
    assert all(isinstance(r, str) and r for r in verdict.reasons)
    assert not any(r.startswith("validator could not parse") for r in verdict.reasons), verdict.reasons
    verdict.to_dict()
    return verdict


@pytest.mark.parametrize("fixture", ["mp3_cbr", "mp3_vbr", "mp3_telephony", "mp3_stereo_vbr"])
def test_mutated_mp3_never_raises(request, fixture):
    original = request.getfixturevalue(fixture)
    rnd = random.Random(f"mp3-{fixture}")
    rejected = 0
    for _ in range(MUTATIONS_PER_FILE):
        verdict = _check(_mutate(original, rnd), expected_duration_s=5.0)
        rejected += not verdict.ok
    assert rejected > MUTATIONS_PER_FILE // 2  # most mutations are caught


@pytest.mark.parametrize("codec", ["pcm", "mulaw"])
def test_mutated_wav_never_raises(codec):
    pcm = pcm16(1, 8000)
    if codec == "pcm":
        original = build_wav(pcm, rate=8000, channels=1, bits=16, after_data=((b"LIST", b"INFOtest"),))
    else:
        original = build_wav(g711(pcm, "mulaw"), rate=8000, channels=1, bits=8, format_tag=7, fact=True)
    rnd = random.Random(f"wav-{codec}")
    for _ in range(MUTATIONS_PER_FILE):
        _check(_mutate(original, rnd), expected_duration_s=1.0)


def test_random_bytes_behind_every_magic_never_raise():
    rnd = random.Random("blobs")
    prefixes = (
        b"",
        b"RIFF",
        b"RIFF\x24\x00\x00\x00WAVE",
        b"RF64\xff\xff\xff\xffWAVEds64",
        b"ID3\x03\x00\x00",
        b"ID3\x04\x00\x10\x00\x00\x01\x00",
        b"\xff\xfb\x90\x64",
        b"\xff\xe3\x18\xc4",
        b"<html>",
        b"{",
    )
    for i in range(200):
        blob = rnd.choice(prefixes) + rnd.randbytes(rnd.choice((0, 1, 3, 50, 700, 5000, 40000)))
        if i % 4 == 0:  # runs of one byte value defeat naive parsers differently than noise does
            blob += bytes([rnd.randrange(256)]) * rnd.randint(1, 3000)
        _check(blob, decode_mp3=bool(i % 2))


# -- bounded work on crafted input -------------------------------------------------------------------------
def test_near_miss_headers_exhaust_a_budget_not_the_clock(mp3_cbr, monkeypatch):
    # Headers every 4 bytes that never chain into frames: each is a resync candidate.
    monkeypatch.setattr(mp3, "MAX_RESYNC_CANDIDATES", 20_000)
    data = mp3_cbr[:2000] + b"\xff\xfb\x90\xc4" * 50_000
    started = time.perf_counter()
    verdict = _check(data)
    assert time.perf_counter() - started < 5
    assert any(
        r.startswith("gave up looking for frame sync after 20000 false candidates") for r in verdict.reasons
    )


def test_endless_damage_gives_up_after_a_number_of_regions(mp3_cbr, monkeypatch):
    monkeypatch.setattr(mp3, "MAX_DAMAGED_REGIONS", 50)
    frames = frame_offsets(mp3_cbr)
    two_frames = mp3_cbr[frames[1][0] : frames[3][0]]
    verdict = _check((two_frames + b"\x00") * 200, decode_mp3=False)
    assert any(r.startswith("gave up after 50 damaged regions") for r in verdict.reasons)
    assert len(verdict.reasons) <= 8


def test_megabytes_of_ff_after_a_frame_are_scanned_quickly(mp3_cbr):
    started = time.perf_counter()
    verdict = _check(mp3_cbr[:2000] + b"\xff" * (8 << 20), decode_mp3=False)
    assert time.perf_counter() - started < 5
    assert any("bytes of non-MP3 data until the end of the file" in r for r in verdict.reasons)
