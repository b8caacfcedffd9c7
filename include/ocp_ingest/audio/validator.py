"""validate_audio: the layered check of one recording, in a single streaming pass.

Layers, cheapest first, all on the same pass over the bytes:

1. size and SHA-256 of the whole input (always computed, whatever else fails); empty input, HTML/JSON/XML
   error bodies and unknown formats are rejected by name;
2. WAV: every RIFF chunk size checked against the bytes that really follow, data read to its end;
3. MP3: strict frame walk to the end plus FFmpeg decoding of every frame (see ``mp3.py``);
4. the measured duration compared with the call's CDR duration.

mutagen is asked afterwards (seekable sources only) for its metadata; its duration is kept as
``metadata["header_duration_s"]`` for comparison and never used as the verdict's duration.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, BinaryIO

from ocp_ingest.audio.mp3 import check_mp3
from ocp_ingest.audio.sniff import SNIFF_BYTES, describe_non_audio, sniff_format
from ocp_ingest.audio.stream import ByteStream, LimitExceeded
from ocp_ingest.audio.verdict import AudioVerdict, Findings
from ocp_ingest.audio.wav import check_wav

_MPEG_MODES = {0: "stereo", 1: "joint stereo", 2: "dual channel", 3: "mono"}


def validate_audio(
    source: str | os.PathLike[str] | BinaryIO,
    *,
    expected_duration_s: float | None = None,
    tolerance_s: float = 2.0,
    tolerance_ratio: float = 0.02,
    max_bytes: int | None = None,
    decode_mp3: bool = True,
    known_sha256: str | None = None,
    header_view: bool = True,
) -> AudioVerdict:
    """Validate one recording and return a verdict; never raises because of what the bytes contain.

    ``source`` is a path or a binary file object, read from its current position to its end and not
    closed (its position afterwards is unspecified; seekable ones are re-read briefly for mutagen).
    ``expected_duration_s`` is the CDR duration: the measured duration may differ from it by at most
    ``max(tolerance_s, tolerance_ratio * expected_duration_s)``. With ``max_bytes`` set, larger inputs are
    rejected without being read past the limit (``sha256`` is then ``""``: the whole input was not hashed).
    ``decode_mp3=False`` skips FFmpeg decoding of MP3 frames (the strict frame walk still runs), for when
    decode time matters more than proof of decodability.
    ``known_sha256`` is the SHA-256 the caller has just computed over exactly these bytes (immutable, in
    memory, e.g. a download verified against its listing): it is reported as the verdict's ``sha256`` and
    the bytes are not hashed a second time. Every structural check still reads every byte.
    ``header_view=False`` skips mutagen's reading of the headers (``metadata["header_duration_s"]`` and
    the like): informational only, never part of the judgement; a caller that keeps no metadata (the
    ingest path) saves its cost, which for a short WAV is about half of the validation's.

    Raises only for caller errors: a missing path (FileNotFoundError), invalid arguments (ValueError),
    or an I/O error from the source itself (propagated unchanged: a failing disk or connection says
    nothing about the recording).
    """
    _check_arguments(expected_duration_s, tolerance_s, tolerance_ratio, max_bytes)
    if known_sha256 is not None and (len(known_sha256) != 64 or known_sha256 != known_sha256.lower()):
        raise ValueError("known_sha256 must be 64 lowercase hex characters")
    with _open_source(source) as src:
        return _validate(
            src,
            expected_duration_s,
            tolerance_s,
            tolerance_ratio,
            max_bytes,
            decode_mp3,
            known_sha256,
            header_view,
        )


@dataclass(frozen=True)
class _Source:
    raw: BinaryIO
    size: int | None  # bytes from the start position to the end, if known without reading
    start: int | None  # start position, if the source can seek back to it (mutagen needs that)


@contextmanager
def _open_source(source: str | os.PathLike[str] | BinaryIO) -> Iterator[_Source]:
    if isinstance(source, str | os.PathLike):
        # Unbuffered: ByteStream does its own 1 MiB buffering, a second buffer would only copy.
        with open(source, "rb", buffering=0) as raw:
            yield _Source(raw, os.fstat(raw.fileno()).st_size, 0)
        return
    start = size = None
    try:
        if source.seekable():
            start = source.tell()
            end = source.seek(0, os.SEEK_END)
            source.seek(start)
            size = max(end - start, 0)
    except (AttributeError, OSError, ValueError):  # pipes, sockets, partial file-like implementations
        start = size = None
    yield _Source(source, size, start)


def _check_arguments(
    expected: float | None, tolerance_s: float, tolerance_ratio: float, max_bytes: int | None
) -> None:
    if expected is not None and not (math.isfinite(expected) and expected >= 0):
        raise ValueError(f"expected_duration_s must be a finite number >= 0, got {expected!r}")
    if not (math.isfinite(tolerance_s) and tolerance_s >= 0):
        raise ValueError(f"tolerance_s must be a finite number >= 0, got {tolerance_s!r}")
    if not (math.isfinite(tolerance_ratio) and tolerance_ratio >= 0):
        raise ValueError(f"tolerance_ratio must be a finite number >= 0, got {tolerance_ratio!r}")
    if max_bytes is not None and max_bytes < 0:
        raise ValueError(f"max_bytes must be >= 0, got {max_bytes!r}")


def _validate(
    src: _Source,
    expected: float | None,
    tolerance_s: float,
    tolerance_ratio: float,
    max_bytes: int | None,
    decode_mp3: bool,
    known_sha256: str | None = None,
    header_view: bool = True,
) -> AudioVerdict:
    if max_bytes is not None and src.size is not None and src.size > max_bytes:
        return _too_large(f"input is {src.size} bytes, more than max_bytes={max_bytes}; not read", src.size)
    stream = ByteStream(src.raw, max_bytes=max_bytes, hashing=known_sha256 is None)
    found = Findings()
    try:
        _check_structure(stream, found, decode_mp3)
        stream.drain()
    except LimitExceeded:
        return _too_large(
            f"input is larger than max_bytes={max_bytes}; stopped reading after {stream.bytes_read} bytes",
            stream.bytes_read,
            found,
        )
    except Exception as exc:
        if stream.source_failed:
            raise
        # A parser bug must not turn into a crash of the caller: the input is rejected with the cause.
        found.reject(f"validator could not parse the input ({type(exc).__name__}: {exc})")
        try:
            stream.drain()
        except LimitExceeded:
            return _too_large(f"input is larger than max_bytes={max_bytes}", stream.bytes_read, found)
    if header_view and found.format is not None and found.mutagen_safe and src.start is not None:
        found.metadata.update(_mutagen_view(src, found))
    if expected is not None and found.duration_s is not None:
        _compare_with_cdr(found, expected, tolerance_s, tolerance_ratio)
    reasons = found.final_reasons()
    return AudioVerdict(
        ok=not reasons,
        format=found.format,
        codec=found.codec,
        sample_rate=found.sample_rate,
        channels=found.channels,
        duration_s=found.duration_s,
        size_bytes=stream.bytes_read,
        sha256=known_sha256 if known_sha256 is not None else stream.hexdigest(),
        reasons=reasons,
        metadata=found.metadata,
    )


def _check_structure(stream: ByteStream, found: Findings, decode_mp3: bool) -> None:
    head = stream.peek(SNIFF_BYTES)
    kind = sniff_format(head)
    if kind == "wav":
        check_wav(stream, found)
    elif kind == "mp3":
        check_mp3(stream, found, decode=decode_mp3)
    else:
        found.reject(describe_non_audio(head))


def _too_large(reason: str, size: int, found: Findings | None = None) -> AudioVerdict:
    # What was parsed of a cut-off read would only produce misleading "truncated" reasons: drop it.
    return AudioVerdict(
        ok=False,
        format=found.format if found else None,
        codec=found.codec if found else None,
        sample_rate=found.sample_rate if found else None,
        channels=found.channels if found else None,
        duration_s=None,
        size_bytes=size,
        sha256="",
        reasons=(reason,),
    )


def _compare_with_cdr(found: Findings, expected: float, tolerance_s: float, tolerance_ratio: float) -> None:
    measured = found.duration_s
    assert measured is not None
    allowed = max(tolerance_s, tolerance_ratio * expected)
    difference = abs(measured - expected)
    found.metadata.update(expected_duration_s=expected, duration_difference_s=round(difference, 3))
    if difference > allowed:
        found.reject(
            f"measured duration {measured:.2f} s differs from the CDR duration {expected:.2f} s "
            f"by {difference:.2f} s (allowed {allowed:.2f} s)"
        )


def _mutagen_view(src: _Source, found: Findings) -> dict[str, Any]:
    """mutagen's reading of the headers, for the record. Its duration is the header's claim."""
    # imported here: mutagen costs about 150 ms of CPU to import, which every task process that parses a
    # DAG file (and never validates audio) would pay at its start
    import mutagen.mp3
    import mutagen.wave

    assert src.start is not None
    try:
        src.raw.seek(src.start)
        if found.format == "wav":
            if src.start != 0:
                return {}  # mutagen's RIFF parser assumes the file starts at offset 0
            wave_info = mutagen.wave.WaveStreamInfo(src.raw)
            return {"header_duration_s": wave_info.length, "mutagen_bitrate": wave_info.bitrate}
        offset = src.start + int(found.metadata.get("first_frame_offset", 0))
        info = mutagen.mp3.MPEGInfo(src.raw, offset)
        return {
            "header_duration_s": info.length,
            "mutagen_bitrate": info.bitrate,
            "mutagen_bitrate_mode": str(info.bitrate_mode).rsplit(".", 1)[-1],
            "channel_mode": _MPEG_MODES.get(info.mode, str(info.mode)),
            "encoder": info.encoder_info or None,
        }
    except Exception as exc:  # mutagen is informational only; its failures are recorded, not raised
        return {"mutagen_error": f"{type(exc).__name__}: {exc}"}
