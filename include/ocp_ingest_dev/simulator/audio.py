"""Cheap, realistic WAV audio: PCM 16-bit, 8 kHz, mono (16,000 bytes/s, about 0.96 MB per minute).

A few MiB of tones and deterministic noise are computed once; each call's PCM data is a rotation of that
buffer starting at an offset derived from its dialog id, and the dialog id is also written in a LIST/INFO
chunk, so every call's bytes differ. Producing a byte range is slicing, never per-sample Python work, so
60 MB/s (20 calls/s of 3-minute calls) costs a fraction of one core.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterator
from functools import lru_cache

import numpy as np

SAMPLE_RATE = 8000
BYTES_PER_SAMPLE = 2
BYTES_PER_MS = SAMPLE_RATE * BYTES_PER_SAMPLE // 1000  # 16
_BASE_SAMPLES = 1 << 21  # 262 s of audio, 4 MiB
DEFAULT_CHUNK = 1 << 20


@lru_cache(maxsize=1)
def _base_pcm() -> bytes:
    """Tones with a syllable-like envelope plus noise, doubled so any rotation is one contiguous slice."""
    rng = np.random.default_rng(20240601)
    t = np.arange(_BASE_SAMPLES, dtype=np.float64) / SAMPLE_RATE
    voice = 0.35 * np.sin(2 * np.pi * 220 * t) + 0.2 * np.sin(2 * np.pi * 470 * t + 1.0)
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 3.1 * t) ** 2
    signal = voice * envelope + 0.05 * rng.standard_normal(_BASE_SAMPLES)
    pcm = np.clip(signal * 12000, -32768, 32767).astype("<i2").tobytes()
    return pcm + pcm


def _info_chunk(dialog_id: str) -> bytes:
    text = f"OCP simulator dialog {dialog_id}".encode() + b"\0"
    if len(text) % 2:
        text += b"\0"
    icmt = b"ICMT" + struct.pack("<I", len(text)) + text
    return b"LIST" + struct.pack("<I", 4 + len(icmt)) + b"INFO" + icmt


def wav_header(dialog_id: str, duration_ms: int) -> bytes:
    """RIFF/WAVE header (fmt, LIST/INFO with the dialog id, data chunk header) for a call."""
    data_len = duration_ms * BYTES_PER_MS
    fmt = b"fmt " + struct.pack(
        "<IHHIIHH", 16, 1, 1, SAMPLE_RATE, SAMPLE_RATE * BYTES_PER_SAMPLE, BYTES_PER_SAMPLE, 16
    )
    info = _info_chunk(dialog_id)
    body = b"WAVE" + fmt + info + b"data" + struct.pack("<I", data_len)
    return b"RIFF" + struct.pack("<I", len(body) - 4 + 4 + data_len) + body


def wav_size(dialog_id: str, duration_ms: int) -> int:
    """Total file size in bytes."""
    return len(wav_header(dialog_id, duration_ms)) + duration_ms * BYTES_PER_MS


def _offset(dialog_id: str) -> int:
    half = len(_base_pcm()) // 2
    return (int(hashlib.sha256(dialog_id.encode()).hexdigest()[:12], 16) % (half // 2)) * 2


def iter_wav(
    dialog_id: str,
    duration_ms: int,
    *,
    start: int = 0,
    end: int | None = None,
    chunk_size: int = DEFAULT_CHUNK,
) -> Iterator[bytes]:
    """Yield bytes ``[start, end)`` of the call's WAV file lazily (end defaults to the file size)."""
    header = wav_header(dialog_id, duration_ms)
    total = len(header) + duration_ms * BYTES_PER_MS
    end = total if end is None else min(end, total)
    pos = start
    if pos < len(header):
        piece = header[pos : min(end, len(header))]
        pos += len(piece)
        if piece:
            yield piece
    base = _base_pcm()
    half = len(base) // 2
    rotation = _offset(dialog_id)
    chunk_size = min(chunk_size, half)
    while pos < end:
        n = min(chunk_size, end - pos)
        at = (rotation + pos - len(header)) % half
        yield base[at : at + n]
        pos += n


def wav_bytes(dialog_id: str, duration_ms: int) -> bytes:
    """The whole file in memory (small calls only)."""
    return b"".join(iter_wav(dialog_id, duration_ms))


def wav_digest(dialog_id: str, duration_ms: int) -> tuple[str, int]:
    """(SHA-256 hex, size) of the call's WAV file, computed by streaming."""
    digest, size = hashlib.sha256(), 0
    for chunk in iter_wav(dialog_id, duration_ms):
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size
