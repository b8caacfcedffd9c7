"""Deterministic audio fixtures built at test time: no binary files live in the repository.

PCM comes from two sine tones plus a little seeded noise (encoders need real signal to produce real
frames); WAV headers for mu-law, A-law, WAVE_FORMAT_EXTENSIBLE and RF64 are written by hand with struct;
MP3 is encoded with the FFmpeg (libmp3lame) bundled in PyAV.
"""

from __future__ import annotations

import math
import random
import struct
import wave
from array import array
from functools import lru_cache
from pathlib import Path

import av

GUID_TAIL = bytes.fromhex("000000001000800000aa00389b71")
# The example: 60 s of 8 kHz 16-bit mono is 960,000 data bytes.
SIXTY_S_SIZE = 960_000


# -- PCM ---------------------------------------------------------------------------------------------------
@lru_cache(maxsize=16)
def _one_second(rate: int, seed: int) -> array:
    rnd = random.Random(seed)
    samples = array("h")
    for i in range(rate):
        t = i / rate
        value = 0.35 * math.sin(2 * math.pi * 440 * t) + 0.2 * math.sin(2 * math.pi * 1250 * t)
        value += 0.05 * (rnd.random() * 2 - 1)
        samples.append(int(value * 32767))
    return samples


def pcm16(seconds: float, rate: int, channels: int = 1, seed: int = 1) -> bytes:
    """Interleaved signed 16-bit little-endian PCM (the same signal on every channel)."""
    second = _one_second(rate, seed)
    total = int(seconds * rate)
    mono = array("h", second * (total // rate + 1))[:total]
    if channels == 1:
        return mono.tobytes()
    interleaved = array("h", bytes(2 * total * channels))
    for c in range(channels):
        interleaved[c::channels] = mono
    return interleaved.tobytes()


def _mulaw_sample(sample: int) -> int:
    # G.711 mu-law: biased magnitude, 3-bit segment, 4-bit mantissa, all bits inverted.
    sign = 0x80 if sample < 0 else 0
    magnitude = min(abs(sample), 32635) + 0x84
    exponent = max(magnitude.bit_length() - 8, 0)
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    return ~(sign | (exponent << 4) | mantissa) & 0xFF


def _alaw_sample(sample: int) -> int:
    # G.711 A-law: 3-bit segment, 4-bit mantissa, even bits inverted (0x55).
    mask = 0xD5 if sample >= 0 else 0x55
    magnitude = min(sample if sample >= 0 else -sample - 1, 32767) >> 3
    if magnitude < 32:
        value = magnitude >> 1
    else:
        exponent = magnitude.bit_length() - 5
        value = (exponent << 4) | ((magnitude >> exponent) & 0x0F)
    return value ^ mask


@lru_cache(maxsize=2)
def _law_table(kind: str) -> bytes:
    encode = _mulaw_sample if kind == "mulaw" else _alaw_sample
    return bytes(encode(s - 65536 if s >= 32768 else s) for s in range(65536))


def g711(pcm: bytes, kind: str) -> bytes:
    """Encode s16le PCM as G.711 ``"mulaw"`` or ``"alaw"`` (one byte per sample)."""
    table = _law_table(kind)
    return bytes(table[s & 0xFFFF] for s in array("h", pcm))


# -- WAV ---------------------------------------------------------------------------------------------------
def pcm_wav(path: Path, seconds: float, rate: int = 8000, channels: int = 1, sampwidth: int = 2) -> bytes:
    """A plain PCM WAV written by the stdlib ``wave`` module; returns its bytes."""
    data = pcm16(seconds, rate, channels)
    if sampwidth == 1:
        data = bytes(((s >> 8) + 128) & 0xFF for s in array("h", data))
    elif sampwidth == 3:
        data = b"".join(struct.pack("<i", s << 8)[:3] for s in array("h", data))
    with wave.open(str(path), "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(sampwidth)
        out.setframerate(rate)
        out.writeframes(data)
    return path.read_bytes()


def _chunk(cid: bytes, payload: bytes, size: int | None = None) -> bytes:
    declared = len(payload) if size is None else size
    return cid + struct.pack("<I", declared) + payload + (b"\x00" if len(payload) % 2 else b"")


def build_wav(
    data: bytes,
    *,
    rate: int,
    channels: int,
    bits: int,
    format_tag: int = 1,
    extensible: bool = False,
    before_data: tuple[tuple[bytes, bytes], ...] = (),
    after_data: tuple[tuple[bytes, bytes], ...] = (),
    data_size: int | None = None,
    riff_size: int | None = None,
    fact: bool = False,
) -> bytes:
    """A WAV assembled by hand, so that every header field can be set (or broken) on purpose."""
    block_align = channels * ((bits + 7) // 8)
    common = struct.pack("<HIIHH", channels, rate, rate * block_align, block_align, bits)
    if extensible:
        mask = (1 << channels) - 1
        guid = struct.pack("<H", format_tag) + GUID_TAIL
        fmt = struct.pack("<H", 0xFFFE) + common + struct.pack("<HHI", 22, bits, mask) + guid
    elif format_tag == 1:
        fmt = struct.pack("<H", format_tag) + common
    else:
        fmt = struct.pack("<H", format_tag) + common + struct.pack("<H", 0)  # cbSize = 0
    body = b"WAVE" + _chunk(b"fmt ", fmt)
    if fact:
        body += _chunk(b"fact", struct.pack("<I", len(data) // block_align))
    for cid, payload in before_data:
        body += _chunk(cid, payload)
    body += _chunk(b"data", data, data_size)
    for cid, payload in after_data:
        body += _chunk(cid, payload)
    size = len(body) if riff_size is None else riff_size
    return b"RIFF" + struct.pack("<I", size) + body


def build_rf64(data: bytes, *, rate: int, channels: int, bits: int = 16) -> bytes:
    """An RF64 file: 32-bit sizes are 0xFFFFFFFF and the real ones live in the ds64 chunk."""
    block_align = channels * bits // 8
    fmt = struct.pack("<HHIIHH", 1, channels, rate, rate * block_align, block_align, bits)
    ds64_payload = struct.pack("<QQQI", 0, len(data), len(data) // block_align, 0)
    rest = _chunk(b"fmt ", fmt) + b"data" + struct.pack("<I", 0xFFFFFFFF) + data + b"\x00" * (len(data) % 2)
    riff_size = 4 + 8 + len(ds64_payload) + len(rest)
    ds64_payload = struct.pack("<QQQI", riff_size, len(data), len(data) // block_align, 0)
    return b"RF64" + struct.pack("<I", 0xFFFFFFFF) + b"WAVE" + _chunk(b"ds64", ds64_payload) + rest


# -- MP3 ---------------------------------------------------------------------------------------------------
def encode_mp3(
    path: Path,
    seconds: float,
    *,
    rate: int = 44100,
    channels: int = 1,
    bit_rate: int | None = None,
    vbr_quality: int | None = None,
    write_xing: bool = True,
) -> bytes:
    """Encode the test signal with libmp3lame: CBR with ``bit_rate``, VBR with ``vbr_quality`` (0..9).

    ``write_xing=False`` asks FFmpeg's mp3 muxer not to write the Xing/Info header frame.
    """
    layout = "mono" if channels == 1 else "stereo"
    data = pcm16(seconds, rate, channels)
    with av.open(str(path), "w", format="mp3", options={} if write_xing else {"write_xing": "0"}) as out:
        stream = out.add_stream("libmp3lame", rate=rate, layout=layout)
        ctx = stream.codec_context
        if bit_rate:
            ctx.bit_rate = bit_rate
        if vbr_quality is not None:
            # FFmpeg's libmp3lame wrapper switches to VBR when qscale is on; quality = global_quality / 118.
            ctx.flags |= av.codec.context.Flags.qscale
            ctx.global_quality = vbr_quality * 118
        frame_bytes = 2 * channels
        total = len(data) // frame_bytes
        for first in range(0, total, 1152):
            count = min(1152, total - first)
            frame = av.AudioFrame(format="s16", layout=layout, samples=count)
            frame.planes[0].update(data[first * frame_bytes : (first + count) * frame_bytes])
            frame.sample_rate = rate
            frame.pts = first
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path.read_bytes()


_L3_KBPS = {
    3: (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    2: (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
    0: (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}


def frame_offsets(data: bytes) -> list[tuple[int, int, int]]:
    """(offset, length, kbps) of each frame, by a deliberately naive walk independent of the validator."""
    pos = 0
    if data[:3] == b"ID3":
        pos = 10 + ((data[6] << 21) | (data[7] << 14) | (data[8] << 7) | data[9])
    frames = []
    while pos + 4 <= len(data) and data[pos] == 0xFF and data[pos + 1] & 0xE0 == 0xE0:
        version = (data[pos + 1] >> 3) & 3
        kbps = _L3_KBPS[version][data[pos + 2] >> 4]
        rate = _RATES[version][(data[pos + 2] >> 2) & 3]
        length = (144 if version == 3 else 72) * kbps * 1000 // rate + ((data[pos + 2] >> 1) & 1)
        frames.append((pos, length, kbps))
        pos += length
    return frames


def has_vbr_header(data: bytes) -> bool:
    """Whether the first frame carries a Xing/Info/VBRI tag (looked for anywhere in it)."""
    first = frame_offsets(data)[0]
    frame = data[first[0] : first[0] + first[1]]
    return any(tag in frame for tag in (b"Xing", b"Info", b"VBRI"))
