"""WAV layer: chunk sizes against real bytes, codecs, and the header lies mutagen believes."""

from __future__ import annotations

import hashlib
import io
import struct

import av
import mutagen.wave
import pytest
from audio_fixtures import SIXTY_S_SIZE, build_rf64, build_wav, g711, pcm16, pcm_wav

from ocp_ingest.audio import validate_audio


def _decoded_samples(path) -> int:
    """Samples per channel according to FFmpeg: an independent check of the hand-written headers."""
    with av.open(str(path)) as container:
        return sum(frame.samples for frame in container.decode(audio=0))


# -- valid files -------------------------------------------------------------------------------------------
def test_valid_pcm_mono_wav(wav60, write):
    path = write("call.wav", wav60)
    verdict = validate_audio(path)
    assert verdict.ok, verdict.reasons
    assert (verdict.format, verdict.codec, verdict.sample_rate, verdict.channels) == (
        "wav",
        "pcm_s16le",
        8000,
        1,
    )
    assert verdict.duration_s == pytest.approx(60.0)
    assert verdict.size_bytes == len(wav60)
    assert verdict.sha256 == hashlib.sha256(wav60).hexdigest()
    assert verdict.reasons == ()
    assert verdict.metadata["header_duration_s"] == pytest.approx(60.0)


def test_valid_pcm_stereo_wav(tmp_path):
    data = pcm_wav(tmp_path / "stereo.wav", 3, rate=44100, channels=2)
    verdict = validate_audio(tmp_path / "stereo.wav")
    assert verdict.ok, verdict.reasons
    assert (verdict.codec, verdict.sample_rate, verdict.channels) == ("pcm_s16le", 44100, 2)
    assert verdict.duration_s == pytest.approx(3.0)
    assert verdict.size_bytes == len(data)


@pytest.mark.parametrize(("sampwidth", "codec"), [(1, "pcm_u8"), (3, "pcm_s24le")])
def test_valid_pcm_other_depths(tmp_path, sampwidth, codec):
    pcm_wav(tmp_path / "x.wav", 2, rate=16000, sampwidth=sampwidth)
    verdict = validate_audio(tmp_path / "x.wav")
    assert verdict.ok, verdict.reasons
    assert verdict.codec == codec
    assert verdict.duration_s == pytest.approx(2.0)


@pytest.mark.parametrize(("kind", "tag", "codec"), [("mulaw", 7, "pcm_mulaw"), ("alaw", 6, "pcm_alaw")])
def test_valid_g711_wav(write, kind, tag, codec):
    data = g711(pcm16(4, 8000), kind)
    path = write("g711.wav", build_wav(data, rate=8000, channels=1, bits=8, format_tag=tag, fact=True))
    verdict = validate_audio(path)
    assert verdict.ok, verdict.reasons
    assert (verdict.codec, verdict.sample_rate, verdict.channels) == (codec, 8000, 1)
    assert verdict.duration_s == pytest.approx(4.0)
    assert _decoded_samples(path) == 32000  # FFmpeg reads the same header the same way


@pytest.mark.parametrize(("tag", "bits", "codec"), [(1, 16, "pcm_s16le"), (7, 8, "pcm_mulaw")])
def test_valid_extensible_wav(write, tag, bits, codec):
    pcm = pcm16(2, 8000, channels=2)
    data = pcm if bits == 16 else g711(pcm, "mulaw")
    path = write(
        "ext.wav", build_wav(data, rate=8000, channels=2, bits=bits, format_tag=tag, extensible=True)
    )
    verdict = validate_audio(path)
    assert verdict.ok, verdict.reasons
    assert (verdict.codec, verdict.channels) == (codec, 2)
    assert verdict.duration_s == pytest.approx(2.0)
    assert _decoded_samples(path) == 16000


def test_odd_sized_chunks_are_padded(write):
    # 8-bit mono with an odd sample count -> odd data chunk; an odd LIST chunk before it.
    data = bytes(range(256)) * 31 + b"\x80"
    wav = build_wav(data, rate=8000, channels=1, bits=8, before_data=((b"LIST", b"INFOISFT\x03\x00\x00ab"),))
    verdict = validate_audio(io.BytesIO(wav))
    assert verdict.ok, verdict.reasons
    assert verdict.duration_s == pytest.approx(len(data) / 8000)
    assert verdict.metadata["chunks"] == ["fmt ", "LIST", "data"]


def test_missing_pad_byte_after_last_chunk_is_tolerated():
    data = bytes(range(255))  # odd length, pad byte omitted at the end of the file as many writers do
    wav = build_wav(data, rate=8000, channels=1, bits=8)[:-1]
    wav = wav[:4] + struct.pack("<I", len(wav) - 8 + 1) + wav[8:]
    verdict = validate_audio(io.BytesIO(wav))
    assert verdict.ok, verdict.reasons


def test_rf64_with_ds64_sizes_is_accepted():
    data = pcm16(2, 8000)
    verdict = validate_audio(io.BytesIO(build_rf64(data, rate=8000, channels=1)))
    assert verdict.ok, verdict.reasons
    assert verdict.duration_s == pytest.approx(2.0)


# -- the motivating lies -------------------------------------------------------------------------------------
def test_mutagen_believes_the_headers_but_the_validator_does_not(wav60, write):
    half = write("half.wav", wav60[: len(wav60) // 2])
    huge = write("huge.wav", wav60[:40] + struct.pack("<I", 0xFFFFFFFF) + wav60[44:])

    # What the issue reports: header-only tools claim the full minute, and 268,435 s.
    assert mutagen.wave.WAVE(half).info.length == pytest.approx(60.0)
    assert mutagen.wave.WAVE(huge).info.length == pytest.approx(268435.456, abs=0.01)

    half_verdict = validate_audio(half)
    assert not half_verdict.ok
    assert half_verdict.duration_s == pytest.approx(30.0, abs=0.01)
    assert (
        f"data chunk claims {SIXTY_S_SIZE} bytes but only {len(wav60) // 2 - 44} follow"
        in half_verdict.reasons
    )
    assert any("RIFF header claims" in r and "truncated" in r for r in half_verdict.reasons)
    assert half_verdict.metadata["header_duration_s"] == pytest.approx(60.0)  # kept for the record only

    huge_verdict = validate_audio(huge)
    assert not huge_verdict.ok
    assert huge_verdict.duration_s == pytest.approx(60.0)
    assert huge_verdict.reasons[0].startswith(
        f"data chunk claims 4294967295 bytes but only {SIXTY_S_SIZE} follow"
    )
    assert "placeholder" in huge_verdict.reasons[0]


def test_data_size_zero_with_audio_following_is_rejected(wav60):
    wav = wav60[:40] + struct.pack("<I", 0) + wav60[44:]
    verdict = validate_audio(io.BytesIO(wav))
    assert not verdict.ok
    assert verdict.reasons == (
        f"data chunk claims 0 bytes but {SIXTY_S_SIZE} bytes follow it "
        "(header never finalized: size placeholder)",
    )
    assert verdict.duration_s == pytest.approx(60.0)  # what is really there, measured


def test_empty_data_chunk_is_rejected():
    verdict = validate_audio(io.BytesIO(build_wav(b"", rate=8000, channels=1, bits=16)))
    assert not verdict.ok
    assert verdict.reasons == ("data chunk holds no audio (0 bytes)",)


def test_riff_size_placeholder_is_rejected(wav60):
    wav = wav60[:4] + struct.pack("<I", 0xFFFFFFFF) + wav60[8:]
    verdict = validate_audio(io.BytesIO(wav))
    assert not verdict.ok
    assert verdict.reasons == (
        "RIFF size field is 0xFFFFFFFF, a streaming placeholder: the writer never finalized the header",
    )


def test_data_not_a_multiple_of_block_align():
    data = pcm16(1, 8000, channels=2) + b"\x01"  # a partial stereo sample frame
    verdict = validate_audio(io.BytesIO(build_wav(data, rate=8000, channels=2, bits=16)))
    assert not verdict.ok
    assert any("not a multiple of the 4-byte sample frame" in r for r in verdict.reasons)


def test_junk_after_the_data_chunk_is_reported(wav60):
    verdict = validate_audio(io.BytesIO(wav60 + b"\x00\x01\x02\x03\x04\x05\x06\x07garbage"))
    assert not verdict.ok
    assert any("15 bytes of unparseable data at byte offset 960044" in r for r in verdict.reasons)
    assert any("bytes after the end of the RIFF chunk" in r for r in verdict.reasons)


def test_truncated_metadata_chunk_before_data():
    wav = build_wav(b"\x00" * 100, rate=8000, channels=1, bits=8, before_data=((b"LIST", b"x" * 1000),))
    verdict = validate_audio(io.BytesIO(wav[:500]))
    assert not verdict.ok
    assert any("'LIST' chunk at byte offset 36 claims 1000 bytes but only" in r for r in verdict.reasons)
    assert any("no data chunk" in r for r in verdict.reasons)


def test_unsupported_codec_and_bad_fmt_fields():
    gsm = build_wav(b"\x00" * 650, rate=8000, channels=1, bits=0, format_tag=0x31)
    verdict = validate_audio(io.BytesIO(gsm))
    assert not verdict.ok
    assert "unsupported WAV codec: format tag 0x0031 (GSM 6.10)" in verdict.reasons

    bad_align = bytearray(build_wav(pcm16(1, 8000), rate=8000, channels=1, bits=16))
    struct.pack_into("<H", bad_align, 32, 3)  # block_align
    verdict = validate_audio(io.BytesIO(bytes(bad_align)))
    assert any("block_align is 3" in r for r in verdict.reasons)

    zero_rate = bytearray(build_wav(pcm16(1, 8000), rate=8000, channels=1, bits=16))
    struct.pack_into("<I", zero_rate, 24, 0)
    verdict = validate_audio(io.BytesIO(bytes(zero_rate)))
    assert not verdict.ok
    assert any("sample rate of 0 Hz" in r for r in verdict.reasons)
    assert verdict.duration_s is None

    low_rate = bytearray(build_wav(pcm16(1, 8000), rate=8000, channels=1, bits=16))
    low_rate[25] = 0  # 8000 Hz -> 64 Hz: a flipped byte, not a recording
    verdict = validate_audio(io.BytesIO(bytes(low_rate)))
    assert "fmt declares a sample rate of 64 Hz (implausible)" in verdict.reasons


def test_missing_fmt_chunk():
    wav = b"RIFF" + struct.pack("<I", 4 + 8 + 10) + b"WAVE" + b"data" + struct.pack("<I", 10) + b"\x00" * 10
    verdict = validate_audio(io.BytesIO(wav))
    assert not verdict.ok
    assert "no fmt chunk: the sample format is unknown" in verdict.reasons


def test_big_endian_rifx_is_named():
    verdict = validate_audio(io.BytesIO(b"RIFX\x00\x00\x00\x24WAVEfmt " + b"\x00" * 40))
    assert verdict.format == "wav"
    assert verdict.reasons == ("big-endian RIFX WAV is not supported",)


def test_thousands_of_tiny_chunks_are_cut_short():
    wav = b"RIFF" + struct.pack("<I", 4 + 8 * 5000) + b"WAVE" + b"JUNK\x00\x00\x00\x00" * 5000
    verdict = validate_audio(io.BytesIO(wav))
    assert not verdict.ok
    assert "more than 1000 RIFF chunks: not a plausible recording" in verdict.reasons
    assert verdict.sha256 == hashlib.sha256(wav).hexdigest()  # still hashed to the end
