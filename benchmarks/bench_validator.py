"""Throughput and memory of validate_audio on a large WAV, against a plain read + SHA-256 baseline.

Usage::

    python benchmarks/bench_validator.py [SIZE] [--mp3 SIZE]

SIZE is the WAV size in bytes, with an optional K/M/G suffix (binary units); default 1G. ``--mp3 SIZE``
also times an MP3 of that size (frames of a short libmp3lame encoding repeated), with and without
decoding. Files are created in a temporary directory and deleted afterwards. The files are freshly written,
so both the baseline and the validator read them from the page cache: the comparison is CPU cost, not disk.
Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import hashlib
import resource
import struct
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "include"))  # runnable without an install

from ocp_ingest.audio import validate_audio

CHUNK = 1 << 20
RATE, CHANNELS, BITS = 8000, 1, 16


def parse_size(text: str) -> int:
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    text = text.strip().upper().removesuffix("IB").removesuffix("B")
    if text and text[-1] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(text)


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def write_wav(path: Path, size: int) -> float:
    """A PCM WAV of ``size`` bytes (header included); returns its duration in seconds."""
    block_align = CHANNELS * BITS // 8
    data_size = (size - 44) // block_align * block_align
    fmt = struct.pack("<HHIIHH", 1, CHANNELS, RATE, RATE * block_align, block_align, BITS)
    header = (
        b"RIFF" + struct.pack("<I", 36 + data_size) + b"WAVE"
        + b"fmt " + struct.pack("<I", 16) + fmt
        + b"data" + struct.pack("<I", data_size)
    )  # fmt: skip
    # A non-constant pattern, so nothing downstream can shortcut runs of zeros.
    pattern = bytes((i * 37 + (i >> 8)) & 0xFF for i in range(CHUNK))
    with open(path, "wb") as out:
        out.write(header)
        left = data_size
        while left:
            piece = pattern[: min(left, CHUNK)]
            out.write(piece)
            left -= len(piece)
    return data_size / block_align / RATE


def encode_clip(path: Path, seconds: int) -> int:
    """A CBR 128 kbit/s stereo MP3 of two tones made only of audio frames (no ID3 tag, no Info frame, so
    copies join seamlessly), encoded with the FFmpeg (libmp3lame) bundled in PyAV. Returns its frame count.
    """
    import av
    import numpy as np

    rate, samples = 44100, 1152
    t = np.arange(seconds * rate) / rate
    tone = 0.35 * np.sin(2 * np.pi * 440 * t) + 0.2 * np.sin(2 * np.pi * 1250 * t)
    pcm = (np.repeat(tone[:, None], 2, axis=1) * 32767).astype("<i2")
    options = {"write_xing": "0", "id3v2_version": "0"}
    with av.open(str(path), "w", format="mp3", options=options) as out:
        stream = out.add_stream("libmp3lame", rate=rate, layout="stereo")
        stream.codec_context.bit_rate = 128_000
        for first in range(0, len(pcm), samples):
            chunk = np.ascontiguousarray(pcm[first : first + samples])
            frame = av.AudioFrame(format="s16", layout="stereo", samples=len(chunk))
            frame.planes[0].update(chunk.tobytes())
            frame.sample_rate = rate
            frame.pts = first
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    with av.open(str(path)) as clip:
        return sum(1 for packet in clip.demux(audio=0) if packet.size)


def write_mp3(path: Path, size: int) -> float:
    """An MP3 of about ``size`` bytes: the audio frames of a 10 s CBR encoding, repeated."""
    clip_path = path.with_suffix(".clip.mp3")
    frames = encode_clip(clip_path, 10)
    body = clip_path.read_bytes()
    copies = max(size // len(body), 1)
    with open(path, "wb") as out:
        for _ in range(copies):
            out.write(body)
    return copies * frames * 1152 / 44100


def baseline(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb", buffering=0) as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def timed(label: str, size: int, func: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    result = func()
    seconds = time.perf_counter() - start
    rate = size / seconds / 1e6
    print(f"  {label:<34} {seconds:8.2f} s  {rate:9.1f} MB/s")
    return rate, result


def bench_wav(directory: Path, size: int) -> None:
    path = directory / "big.wav"
    duration = write_wav(path, size)
    size = path.stat().st_size
    print(f"WAV: {size} bytes ({size / (1 << 30):.2f} GiB), {duration:.0f} s of 8 kHz 16-bit mono PCM")
    rss_before = peak_rss_mib()
    base_rates, validate_rates = [], []
    for _ in range(2):  # alternate, so neither side alone benefits from a warm cache
        rate, expected = timed("read + sha256 (baseline)", size, lambda: baseline(path))
        base_rates.append(rate)
        rate, verdict = timed(
            "validate_audio", size, lambda: validate_audio(path, expected_duration_s=duration)
        )
        validate_rates.append(rate)
        assert verdict.ok and verdict.sha256 == expected, verdict.reasons  # type: ignore[union-attr]
    rss_after = peak_rss_mib()
    best_base, best_validate = max(base_rates), max(validate_rates)
    print(f"  best baseline       {best_base:9.1f} MB/s")
    print(f"  best validate_audio {best_validate:9.1f} MB/s")
    print(f"  ratio validate/baseline {best_validate / best_base:.3f}")
    print(f"  peak RSS before validation {rss_before:.1f} MiB, after {rss_after:.1f} MiB")
    path.unlink()


def bench_mp3(directory: Path, size: int) -> None:
    path = directory / "big.mp3"
    duration = write_mp3(path, size)
    size = path.stat().st_size
    mib = size / (1 << 20)
    print(f"MP3: {size} bytes ({mib:.0f} MiB), {duration:.0f} s of 44.1 kHz stereo 128 kbit/s CBR")
    rss_before = peak_rss_mib()
    timed("read + sha256 (baseline)", size, lambda: baseline(path))
    for decode in (False, True):
        _, verdict = timed(
            f"validate_audio decode_mp3={decode}",
            size,
            lambda decode=decode: validate_audio(path, expected_duration_s=duration, decode_mp3=decode),
        )
        assert verdict.ok, verdict.reasons  # type: ignore[union-attr]
    print(f"  peak RSS before validation {rss_before:.1f} MiB, after {peak_rss_mib():.1f} MiB")
    path.unlink()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "size", nargs="?", default="1G", help="WAV size in bytes, K/M/G suffixes (default 1G)"
    )
    parser.add_argument("--mp3", metavar="SIZE", help="also time an MP3 of this size")
    args = parser.parse_args(argv)
    print(f"peak RSS at start {peak_rss_mib():.1f} MiB")
    with tempfile.TemporaryDirectory(prefix="bench-validator-") as tmp:
        bench_wav(Path(tmp), parse_size(args.size))
        if args.mp3:
            bench_mp3(Path(tmp), parse_size(args.mp3))


if __name__ == "__main__":
    main()
