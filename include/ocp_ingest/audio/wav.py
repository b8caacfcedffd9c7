"""Streaming WAV (RIFF/WAVE, RF64) check: every chunk size is compared with the bytes that really follow.

The file is walked chunk by chunk from the stream; the data chunk is read through to its end (hashing it),
never trusted. Duration = real data bytes / block_align / sample_rate.

Streaming-style placeholder sizes (RIFF or data size 0 or 0xFFFFFFFF) are rejected on purpose: they mean
the writer never went back to finalise the header, so nothing in the file says how long the recording was
meant to be and a cut-off recording cannot be told from a complete one. RF64/BW64 files, where 0xFFFFFFFF
is the documented "see the ds64 chunk" marker, are supported.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from ocp_ingest.audio.stream import ByteStream
from ocp_ingest.audio.verdict import Findings

# Real recordings have a handful of chunks; a file with thousands is hostile and would only burn time.
MAX_CHUNKS = 1000
# Above this many chunks mutagen (which lists them all) is not asked for its view.
MUTAGEN_MAX_CHUNKS = 100
# fmt is 16, 18 or 40 bytes in practice; a huge one is garbage and must not be read into memory.
MAX_FMT_BYTES = 4096
MAX_CHANNELS = 32
# Outside this range a rate is a corrupted field, not a recording (telephony starts at 8 kHz).
MIN_SAMPLE_RATE = 1000
MAX_SAMPLE_RATE = 768_000

WAVE_FORMAT_PCM = 0x0001
WAVE_FORMAT_IEEE_FLOAT = 0x0003
WAVE_FORMAT_ALAW = 0x0006
WAVE_FORMAT_MULAW = 0x0007
WAVE_FORMAT_EXTENSIBLE = 0xFFFE
# KSDATAFORMAT_SUBTYPE_* GUIDs are the format tag followed by this fixed tail.
_GUID_TAIL = bytes.fromhex("000000001000800000aa00389b71")

_CODECS: dict[tuple[int, int], str] = {
    (WAVE_FORMAT_PCM, 8): "pcm_u8",
    (WAVE_FORMAT_PCM, 16): "pcm_s16le",
    (WAVE_FORMAT_PCM, 24): "pcm_s24le",
    (WAVE_FORMAT_PCM, 32): "pcm_s32le",
    (WAVE_FORMAT_IEEE_FLOAT, 32): "pcm_f32le",
    (WAVE_FORMAT_IEEE_FLOAT, 64): "pcm_f64le",
    (WAVE_FORMAT_ALAW, 8): "pcm_alaw",
    (WAVE_FORMAT_MULAW, 8): "pcm_mulaw",
}
_TAG_NAMES = {
    WAVE_FORMAT_PCM: "PCM",
    WAVE_FORMAT_IEEE_FLOAT: "IEEE float",
    WAVE_FORMAT_ALAW: "A-law",
    WAVE_FORMAT_MULAW: "mu-law",
    0x0002: "Microsoft ADPCM",
    0x0011: "IMA ADPCM",
    0x0022: "TrueSpeech",
    0x0031: "GSM 6.10",
    0x0050: "MPEG audio",
    0x0055: "MPEG Layer III",
    0x0161: "Windows Media Audio",
}
# Chunks that may legitimately follow an empty data chunk (used to tell them from unframed audio).
_KNOWN_CHUNKS = frozenset(
    {b"LIST", b"id3 ", b"ID3 ", b"JUNK", b"junk", b"PAD ", b"FLLR", b"fact", b"cue ", b"bext", b"smpl",
     b"inst", b"iXML", b"axml", b"acid", b"plst", b"labl", b"note", b"ltxt", b"afsp", b"DISP", b"PEAK",
     b"umid", b"cart", b"fmt ", b"data"}
)  # fmt: skip


@dataclass
class WavFormat:
    format_tag: int
    codec: str | None
    channels: int
    sample_rate: int
    byte_rate: int
    block_align: int
    bits_per_sample: int


@dataclass
class _State:
    fmt: WavFormat | None = None
    fmt_seen: bool = False
    data_declared: int | None = None
    data_real: int = 0
    data_claim_reported: bool = False
    ds64_riff_size: int | None = None
    ds64_data_size: int | None = None
    missing_final_pad: bool = False
    chunk_count: int = 0
    fmt_too_big: bool = False
    chunk_ids: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _u32(data: bytes, offset: int) -> int:
    return int.from_bytes(data[offset : offset + 4], "little")


def _chunk_name(cid: bytes) -> str:
    return cid.decode("latin-1")


def _printable_id(cid: bytes) -> bool:
    return len(cid) == 4 and all(0x20 <= b <= 0x7E for b in cid)


def check_wav(stream: ByteStream, found: Findings) -> None:
    """Walk a RIFF/WAVE file from ``stream`` (positioned at its first byte), recording into ``found``."""
    found.format = "wav"
    start = stream.pos
    header = stream.read(12)
    magic, riff_size = header[:4], _u32(header, 4)
    if magic == b"RIFX":
        found.reject("big-endian RIFX WAV is not supported")
        return
    is_rf64 = magic in (b"RF64", b"BW64")
    state = _State()
    _walk_chunks(stream, start, is_rf64, state, found)
    stream.drain()  # whatever a walk stopped short of still counts towards the real size
    total = stream.pos - start
    _check_riff_size(riff_size, total, is_rf64, state, found)
    _finish(state, found)
    found.mutagen_safe = state.chunk_count <= MUTAGEN_MAX_CHUNKS and not state.fmt_too_big


def _walk_chunks(stream: ByteStream, start: int, is_rf64: bool, state: _State, found: Findings) -> None:
    for _ in range(MAX_CHUNKS + 1):
        offset = stream.pos - start
        head = stream.read(8)
        if not head:
            return
        if len(head) < 8:
            found.reject(f"{len(head)} stray bytes at byte offset {offset} (too short for a chunk header)")
            return
        cid, size = head[:4], _u32(head, 4)
        padded_size = size
        if not _printable_id(cid):
            junk = 8 + stream.drain()
            found.reject(
                f"{junk} bytes of unparseable data at byte offset {offset} "
                f"(invalid chunk id {cid.hex(' ')}): junk, or audio beyond the declared chunk sizes"
            )
            return
        state.chunk_count += 1
        if len(state.chunk_ids) < 32:
            state.chunk_ids.append(_chunk_name(cid))
        if cid == b"data" and state.data_declared is None:
            if not _data_chunk(stream, size, is_rf64, state, found):
                return
            padded_size = state.data_declared or 0
        elif cid == b"fmt " and not state.fmt_seen:
            if not _fmt_chunk(stream, offset, size, state, found):
                return
        elif cid == b"ds64" and is_rf64 and offset == 12:
            body = stream.read(size) if size <= MAX_FMT_BYTES else b""
            if size > MAX_FMT_BYTES or len(body) < size or size < 24:
                found.reject(f"ds64 chunk at byte offset {offset} is malformed ({size} bytes declared)")
                return
            state.ds64_riff_size, state.ds64_data_size = struct.unpack_from("<QQ", body)
        else:
            if cid in (b"data", b"fmt "):
                found.reject(f"second {_chunk_name(cid)!r} chunk at byte offset {offset} (only one allowed)")
            skipped = stream.skip(size)
            if skipped < size:
                found.reject(
                    f"{_chunk_name(cid)!r} chunk at byte offset {offset} claims {size} bytes "
                    f"but only {skipped} follow (file truncated)"
                )
                return
        if padded_size % 2 and stream.skip(1) == 0:
            # RIFF pads odd chunks to even length; writers often omit the pad after the last chunk.
            state.missing_final_pad = True
            return
    found.reject(f"more than {MAX_CHUNKS} RIFF chunks: not a plausible recording")


def _data_chunk(stream: ByteStream, size: int, is_rf64: bool, state: _State, found: Findings) -> bool:
    """Measure the data chunk; False when the walk cannot continue past it."""
    declared = size
    if is_rf64 and size == 0xFFFFFFFF and state.ds64_data_size is not None:
        declared = state.ds64_data_size
    state.data_declared = declared
    if declared == 0:
        following = stream.peek(8)
        if following and not (following[:4] in _KNOWN_CHUNKS and len(following) == 8):
            # Audio written after a header that was never finalised: measure it, but do not accept it.
            state.data_real = stream.drain()
            state.data_claim_reported = True
            found.reject(
                f"data chunk claims 0 bytes but {state.data_real} bytes follow it "
                "(header never finalized: size placeholder)"
            )
            return False
        return True
    state.data_real = stream.skip(declared)
    if state.data_real < declared:
        hint = ""
        if size == 0xFFFFFFFF and not is_rf64:
            hint = " (0xFFFFFFFF is a streaming placeholder: the header was never finalized)"
        found.reject(f"data chunk claims {declared} bytes but only {state.data_real} follow{hint}")
        state.data_claim_reported = True
        return False
    return True


def _fmt_chunk(stream: ByteStream, offset: int, size: int, state: _State, found: Findings) -> bool:
    state.fmt_seen = True
    if size > MAX_FMT_BYTES:
        state.fmt_too_big = True
        found.reject(f"fmt chunk at byte offset {offset} claims {size} bytes (implausible)")
        skipped = stream.skip(size)
        return skipped == size
    body = stream.read(size)
    if len(body) < size:
        found.reject(f"fmt chunk at byte offset {offset} claims {size} bytes but only {len(body)} follow")
        return False
    state.fmt = _parse_fmt(body, state, found)
    return True


def _parse_fmt(body: bytes, state: _State, found: Findings) -> WavFormat | None:
    if len(body) < 16:
        found.reject(f"fmt chunk is {len(body)} bytes, shorter than the 16-byte minimum")
        return None
    tag, channels, rate, byte_rate, block_align, bits = struct.unpack_from("<HHIIHH", body)
    sub_tag = tag
    if tag == WAVE_FORMAT_EXTENSIBLE:
        if len(body) < 40:
            found.reject(f"WAVE_FORMAT_EXTENSIBLE fmt chunk is {len(body)} bytes, needs 40")
            return None
        valid_bits = int.from_bytes(body[18:20], "little")
        guid = body[24:40]
        if guid[2:] != _GUID_TAIL:
            found.reject(f"WAVE_FORMAT_EXTENSIBLE with unknown sub-format GUID {guid.hex()}")
            return None
        sub_tag = int.from_bytes(guid[:2], "little")
        if valid_bits > bits:
            found.reject(f"fmt declares {valid_bits} valid bits in a {bits}-bit container")
    codec = _CODECS.get((sub_tag, bits))
    if codec is None:
        name = _TAG_NAMES.get(sub_tag, "unknown")
        if (sub_tag, 8) in _CODECS or (sub_tag, 16) in _CODECS or (sub_tag, 32) in _CODECS:
            found.reject(f"unsupported bit depth for {name} WAV: {bits} bits per sample")
        else:
            found.reject(f"unsupported WAV codec: format tag 0x{sub_tag:04X} ({name})")
    if channels == 0 or channels > MAX_CHANNELS:
        found.reject(f"fmt declares {channels} channels (implausible)")
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        found.reject(f"fmt declares a sample rate of {rate} Hz (implausible)")
    if codec is not None:
        expected_align = channels * ((bits + 7) // 8)
        if block_align != expected_align:
            found.reject(
                f"fmt block_align is {block_align} but {channels} channel(s) of {bits}-bit samples "
                f"need {expected_align}"
            )
        elif byte_rate != rate * block_align:
            # Players ignore byte_rate for PCM, so a wrong one is a sloppy writer, not a broken recording.
            state.warnings.append(f"fmt byte_rate is {byte_rate}, expected {rate * block_align}")
    return WavFormat(sub_tag, codec, channels, rate, byte_rate, block_align, bits)


def _check_riff_size(riff_size: int, total: int, is_rf64: bool, state: _State, found: Findings) -> None:
    if is_rf64:
        if state.ds64_riff_size is None:
            found.reject("RF64 file without a ds64 chunk as its first chunk")
            return
        declared = state.ds64_riff_size
        what = "ds64 RIFF size"
    else:
        if riff_size in (0, 0xFFFFFFFF):
            found.reject(
                f"RIFF size field is 0x{riff_size:08X}, a streaming placeholder: the writer never "
                "finalized the header"
            )
            return
        declared = riff_size
        what = "RIFF header"
    expected = declared + 8
    if expected == total or (state.missing_final_pad and expected == total + 1):
        return
    if total < expected:
        found.reject(f"{what} claims {expected} bytes but the file has only {total} (truncated)")
    else:
        found.reject(
            f"file has {total - expected} bytes after the end of the RIFF chunk ({what} claims {expected})"
        )


def _finish(state: _State, found: Findings) -> None:
    fmt = state.fmt
    found.metadata["chunks"] = state.chunk_ids
    if state.warnings:
        found.metadata["warnings"] = state.warnings
    if fmt is None:
        if not state.fmt_seen:
            found.reject("no fmt chunk: the sample format is unknown")
    else:
        found.codec = fmt.codec
        found.channels = fmt.channels or None
        found.sample_rate = fmt.sample_rate or None
        found.metadata.update(
            format_tag=f"0x{fmt.format_tag:04X}",
            bits_per_sample=fmt.bits_per_sample,
            block_align=fmt.block_align,
            byte_rate=fmt.byte_rate,
        )
    if state.data_declared is None:
        found.reject("no data chunk")
        return
    found.metadata.update(declared_data_bytes=state.data_declared, data_bytes=state.data_real)
    if state.data_real == 0 and not state.data_claim_reported:
        found.reject("data chunk holds no audio (0 bytes)")
    if fmt is None or fmt.codec is None or not fmt.block_align or not fmt.sample_rate:
        return
    if state.data_real % fmt.block_align:
        found.reject(
            f"data holds {state.data_real} bytes, not a multiple of the {fmt.block_align}-byte sample frame "
            "(partial sample at the end)"
        )
    found.duration_s = state.data_real // fmt.block_align / fmt.sample_rate
