"""MP3 layer: strict frame walk to the end, decoding, and durations that do not come from headers."""

from __future__ import annotations

import hashlib
import io

import mutagen.mp3
import pytest
from audio_fixtures import frame_offsets, has_vbr_header

from ocp_ingest.audio import validate_audio


def _audio_frames(data: bytes) -> int:
    frames = frame_offsets(data)
    return len(frames) - (1 if has_vbr_header(data) else 0)


# -- valid files -------------------------------------------------------------------------------------------
def test_valid_cbr_mp3(mp3_cbr, write):
    verdict = validate_audio(write("call.mp3", mp3_cbr))
    assert verdict.ok, verdict.reasons
    assert (verdict.format, verdict.codec, verdict.sample_rate, verdict.channels) == ("mp3", "mp3", 44100, 1)
    frames = _audio_frames(mp3_cbr)
    assert verdict.duration_s == pytest.approx(frames * 1152 / 44100)
    assert verdict.duration_s == pytest.approx(5.0, abs=0.1)
    assert verdict.sha256 == hashlib.sha256(mp3_cbr).hexdigest()
    meta = verdict.metadata
    assert (meta["bitrate_mode"], meta["bitrate_kbps_min"], meta["bitrate_kbps_max"]) == ("CBR", 128, 128)
    assert meta["vbr_header"] == "Info" and meta["vbr_header_frames"] == frames == meta["frames"]
    assert meta["decoded_samples"] == frames * 1152
    assert meta["mutagen_bitrate"] == 128000 and meta["channel_mode"] == "mono"


def test_valid_vbr_mp3(mp3_vbr):
    bitrates = {kbps for _, _, kbps in frame_offsets(mp3_vbr)[1:]}
    assert len(bitrates) > 1, "fixture must really be VBR"
    verdict = validate_audio(io.BytesIO(mp3_vbr))
    assert verdict.ok, verdict.reasons
    assert verdict.metadata["bitrate_mode"] == "VBR"
    assert verdict.metadata["vbr_header"] == "Xing"
    assert verdict.duration_s == pytest.approx(_audio_frames(mp3_vbr) * 1152 / 44100)


def test_vbr_without_xing_is_measured_by_counting_frames(mp3_vbr_no_xing):
    assert not has_vbr_header(mp3_vbr_no_xing)
    assert len({kbps for _, _, kbps in frame_offsets(mp3_vbr_no_xing)}) > 1
    # Without a Xing header mutagen extrapolates from the first frame's bitrate: far off.
    claimed = mutagen.mp3.MP3(io.BytesIO(mp3_vbr_no_xing)).info.length
    assert claimed < 2.5

    verdict = validate_audio(io.BytesIO(mp3_vbr_no_xing), expected_duration_s=5.0, tolerance_s=0.1)
    assert verdict.ok, verdict.reasons
    assert verdict.duration_s == pytest.approx(len(frame_offsets(mp3_vbr_no_xing)) * 1152 / 44100)
    assert verdict.duration_s == pytest.approx(5.0, abs=0.1)
    assert verdict.metadata["header_duration_s"] == pytest.approx(claimed)
    assert "vbr_header" not in verdict.metadata


def test_valid_telephony_mpeg25_mp3(mp3_telephony):
    verdict = validate_audio(io.BytesIO(mp3_telephony))
    assert verdict.ok, verdict.reasons
    assert (verdict.sample_rate, verdict.channels) == (8000, 1)
    assert verdict.metadata["mpeg_version"] == "2.5"
    assert verdict.metadata["samples_per_frame"] == 576
    assert verdict.duration_s == pytest.approx(_audio_frames(mp3_telephony) * 576 / 8000)


def test_valid_mpeg2_stereo_vbr_mp3(mp3_stereo_vbr):
    verdict = validate_audio(io.BytesIO(mp3_stereo_vbr))
    assert verdict.ok, verdict.reasons
    assert (verdict.sample_rate, verdict.channels) == (22050, 2)
    assert verdict.metadata["mpeg_version"] == "2"
    assert verdict.duration_s == pytest.approx(_audio_frames(mp3_stereo_vbr) * 576 / 22050)


def test_trailing_tags_are_accepted(mp3_cbr):
    id3v1 = b"TAG" + b"title".ljust(30, b"\x00") + bytes(95)
    ape_items = b"\x05\x00\x00\x00\x00\x00\x00\x00Title\x00hello"
    ape_footer = (
        b"APETAGEX"
        + (2000).to_bytes(4, "little")
        + (len(ape_items) + 32).to_bytes(4, "little")
        + (1).to_bytes(4, "little")
        + bytes(4)
        + bytes(8)
    )
    verdict = validate_audio(io.BytesIO(mp3_cbr + ape_items + ape_footer + id3v1))
    assert verdict.ok, verdict.reasons
    assert verdict.metadata["trailing_tags"] == ["APEv2", "ID3v1"]


def test_decoding_can_be_skipped(mp3_vbr):
    verdict = validate_audio(io.BytesIO(mp3_vbr), decode_mp3=False)
    assert verdict.ok, verdict.reasons
    assert "decoded_samples" not in verdict.metadata
    assert verdict.duration_s == pytest.approx(_audio_frames(mp3_vbr) * 1152 / 44100)


# -- damaged files -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("decode", [True, False])
@pytest.mark.parametrize("fixture", ["mp3_cbr", "mp3_vbr", "mp3_vbr_no_xing", "mp3_telephony"])
def test_truncated_mp3_is_rejected(request, fixture, decode):
    data = request.getfixturevalue(fixture)
    cut = data[: int(len(data) * 0.6)]
    verdict = validate_audio(io.BytesIO(cut), decode_mp3=decode)
    assert not verdict.ok
    assert any(r.startswith("last frame at byte offset") and "is truncated" in r for r in verdict.reasons)
    assert verdict.duration_s == pytest.approx(3.0, abs=0.2)  # what is really there
    if has_vbr_header(data):
        assert any("header announces" in r and "missing frames" in r for r in verdict.reasons)


def test_truncated_exactly_at_a_frame_boundary(mp3_cbr, mp3_vbr_no_xing):
    # With an Info header the frame count gives it away...
    offset, length, _ = frame_offsets(mp3_cbr)[100]
    verdict = validate_audio(io.BytesIO(mp3_cbr[: offset + length]))
    assert not verdict.ok
    assert any("Info header announces" in r for r in verdict.reasons)
    # ...without one, structurally it is a shorter valid MP3: only the CDR duration can tell.
    offset, length, _ = frame_offsets(mp3_vbr_no_xing)[100]
    cut = mp3_vbr_no_xing[: offset + length]
    assert validate_audio(io.BytesIO(cut)).ok
    verdict = validate_audio(io.BytesIO(cut), expected_duration_s=5.0)
    assert not verdict.ok
    assert any(
        r.startswith("measured duration 2.64 s differs from the CDR duration 5.00 s") for r in verdict.reasons
    )


@pytest.mark.parametrize("decode", [True, False])
@pytest.mark.parametrize("fixture", ["mp3_cbr", "mp3_vbr", "mp3_vbr_no_xing", "mp3_telephony"])
def test_mp3_with_4k_zeroed_in_the_middle_is_rejected(request, fixture, decode):
    data = request.getfixturevalue(fixture)
    middle = len(data) // 2
    damaged = data[:middle] + bytes(4096) + data[middle + 4096 :]
    verdict = validate_audio(io.BytesIO(damaged), decode_mp3=decode)
    assert not verdict.ok
    sync = [r for r in verdict.reasons if r.startswith("lost frame sync at byte offset")]
    assert len(sync) == 1, verdict.reasons
    assert "00 00)" in sync[0] and "before the next valid frame" in sync[0]
    # The frames after the hole are still walked and counted.
    assert 0.5 < verdict.duration_s < 5.0


def test_spliced_stream_with_other_parameters(mp3_cbr, mp3_telephony):
    verdict = validate_audio(io.BytesIO(mp3_cbr + mp3_telephony[45:]))
    assert not verdict.ok
    assert any(
        "MPEG-2.5 Layer III 8000 Hz mono, unlike the stream's MPEG-1 Layer III 44100 Hz mono" in r
        for r in verdict.reasons
    )


def test_junk_appended_after_the_last_frame(mp3_cbr):
    verdict = validate_audio(io.BytesIO(mp3_cbr + b"<html>oops</html>"))
    assert not verdict.ok
    assert verdict.reasons[0].endswith("17 bytes of non-MP3 data until the end of the file")


def test_id3_tag_without_audio():
    tag = b"ID3\x04\x00\x00\x00\x00\x00\x0a" + bytes(10)
    verdict = validate_audio(io.BytesIO(tag))
    assert not verdict.ok
    assert "no MPEG Layer III audio frames found" in verdict.reasons


def test_id3_tag_claiming_more_than_the_file():
    tag = b"ID3\x04\x00\x00\x7f\x7f\x7f\x7f" + b"x" * 100
    verdict = validate_audio(io.BytesIO(tag))
    assert verdict.format == "mp3"
    assert verdict.reasons == (
        "ID3v2 tag at byte offset 0 claims 268435465 bytes but the file ends after 110",
    )


def test_leading_junk_before_the_first_frame(mp3_cbr):
    frames = frame_offsets(mp3_cbr)
    body = mp3_cbr[frames[1][0] :]  # drop the ID3 tag and the Info frame
    verdict = validate_audio(io.BytesIO(b"ID3\x04\x00\x00\x00\x00\x00\x00" + b"\x01junk" + body))
    assert not verdict.ok
    assert verdict.reasons[0] == (
        "no MPEG Layer III frame header at byte offset 10 (found 01 6a 75 6e): 5 bytes of non-MP3 data "
        "before the next valid frame at byte offset 15 (corrupt, zeroed or spliced region)"
    )
    assert verdict.duration_s == pytest.approx((len(frames) - 1) * 1152 / 44100)


def test_frame_with_damaged_side_info_is_reported_by_the_decoder(mp3_cbr):
    # Damage one frame's side information (not its header): the frame walk cannot see it, the decoder can.
    offset = frame_offsets(mp3_cbr)[50][0]
    damaged = bytearray(mp3_cbr)
    damaged[offset + 7] = 0xFF  # part2_3_length / big_values of granule 0: more bits than the frame holds
    assert validate_audio(io.BytesIO(bytes(damaged)), decode_mp3=False).ok
    verdict = validate_audio(io.BytesIO(bytes(damaged)))
    assert not verdict.ok
    assert len(verdict.reasons) == 1
    assert verdict.reasons[0].startswith(
        f"decoder (FFmpeg) failed on 1 of 193 frames; first at byte offset {offset}:"
    )
