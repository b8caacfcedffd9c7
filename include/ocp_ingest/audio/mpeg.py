"""MPEG audio frame headers (ISO 11172-3 / 13818-3, plus the unofficial MPEG-2.5, Layer III only) and ID3v2
tag framing.

A header is 4 bytes: 11 sync bits, version, layer, protection, bitrate index, sample-rate index, padding,
private, channel mode, ... The frame length depends only on bytes 1 and 2 (given byte 0 == 0xFF), so it is
precomputed into a 65536-entry table: the frame walker's hot loop is then one index per frame.
"""

from __future__ import annotations

from dataclasses import dataclass

_VERSIONS = {0b11: "1", 0b10: "2", 0b00: "2.5"}  # 0b01 is reserved
_LAYERS = {0b01: "III", 0b10: "II", 0b11: "I"}  # 0b00 is reserved
_SAMPLE_RATES = {"1": (44100, 48000, 32000), "2": (22050, 24000, 16000), "2.5": (11025, 12000, 8000)}
# Layer III bitrates in kbit/s by index; index 0 is "free format" (unsupported), 15 is invalid.
BITRATES_L3 = {
    "1": (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    "2": (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
BITRATES_L3["2.5"] = BITRATES_L3["2"]

# Largest Layer III frame: MPEG-1 320 kbit/s at 32 kHz, or MPEG-2.5 160 kbit/s at 8 kHz, plus padding.
MAX_FRAME_LEN = 1441


@dataclass(frozen=True)
class FrameHeader:
    version: str  # "1", "2" or "2.5"
    bitrate_kbps: int
    sample_rate: int
    padding: bool
    channels: int  # 1 for mono, 2 for stereo / joint stereo / dual channel
    crc: bool  # a 16-bit CRC follows the header
    length: int  # whole frame, header included

    @property
    def samples_per_frame(self) -> int:
        return 1152 if self.version == "1" else 576

    @property
    def side_info_len(self) -> int:
        if self.version == "1":
            return 17 if self.channels == 1 else 32
        return 9 if self.channels == 1 else 17


def _decode(b1: int, b2: int) -> tuple[str, int, int, bool, int] | None:
    version = _VERSIONS.get((b1 >> 3) & 3)
    if version is None or (b1 & 0xE0) != 0xE0 or _LAYERS.get((b1 >> 1) & 3) != "III":
        return None
    bitrate_index, rate_index, padding = b2 >> 4, (b2 >> 2) & 3, (b2 >> 1) & 1
    if bitrate_index in (0, 15) or rate_index == 3:
        return None
    kbps = BITRATES_L3[version][bitrate_index]
    rate = _SAMPLE_RATES[version][rate_index]
    length = (144 if version == "1" else 72) * kbps * 1000 // rate + padding
    return version, kbps, rate, bool(padding), length


def _build_table() -> list[int]:
    table = [0] * 65536
    for key in range(65536):
        decoded = _decode(key >> 8, key & 0xFF)
        if decoded:
            table[key] = decoded[4]
    return table


# FRAME_LEN[(byte1 << 8) | byte2] is the frame length for a valid Layer III header, else 0.
FRAME_LEN: list[int] = _build_table()


def frame_length(head: bytes) -> int | None:
    """Length of the Layer III frame whose header starts ``head``, or None if it is not one."""
    if len(head) < 4 or head[0] != 0xFF:
        return None
    return FRAME_LEN[(head[1] << 8) | head[2]] or None


def parse_header(head: bytes) -> FrameHeader | None:
    """Decode a Layer III frame header, or None."""
    if len(head) < 4 or head[0] != 0xFF:
        return None
    decoded = _decode(head[1], head[2])
    if decoded is None:
        return None
    version, kbps, rate, padding, length = decoded
    channels = 1 if (head[3] >> 6) == 3 else 2
    return FrameHeader(version, kbps, rate, padding, channels, crc=not (head[1] & 1), length=length)


def other_layer(head: bytes) -> str | None:
    """``"MPEG-1 Layer II"`` etc. when ``head`` is a plausible Layer I/II header (named in reasons)."""
    if len(head) < 4 or head[0] != 0xFF or (head[1] & 0xE0) != 0xE0:
        return None
    version = _VERSIONS.get((head[1] >> 3) & 3)
    layer = _LAYERS.get((head[1] >> 1) & 3)
    if version is None or layer in (None, "III") or (head[2] >> 4) == 15 or ((head[2] >> 2) & 3) == 3:
        return None
    return f"MPEG-{version} Layer {layer}"


def describe_header(head: bytes) -> str:
    """Short human description of 4 header bytes, for reasons."""
    parsed = parse_header(head)
    if parsed is None:
        return "not a valid Layer III header"
    mode = "mono" if parsed.channels == 1 else "stereo"
    return f"MPEG-{parsed.version} Layer III {parsed.sample_rate} Hz {mode}"


def is_id3v2_header(head: bytes) -> bool:
    """``head`` starts with an ID3v2 tag header: "ID3", major version 2..4, synchsafe size."""
    return (
        len(head) >= 10
        and head[:3] == b"ID3"
        and 2 <= head[3] <= 4
        and head[4] != 0xFF
        and all(b < 0x80 for b in head[6:10])
    )


def synchsafe(data: bytes) -> int:
    """ID3v2 sizes store 7 bits per byte so they never contain a false MPEG sync."""
    value = 0
    for b in data[:4]:
        value = (value << 7) | (b & 0x7F)
    return value


def id3v2_length(head: bytes) -> int:
    """Whole length of the ID3v2 tag starting ``head`` (header, body and optional footer)."""
    return 10 + synchsafe(head[6:10]) + (10 if head[5] & 0x10 else 0)
