"""Format detection from the first bytes, and specific reasons for everything that is not WAV or MP3."""

from __future__ import annotations

import re

from ocp_ingest.audio import mpeg

# How many leading bytes the validator looks at to sniff and describe the input.
SNIFF_BYTES = 4096

_WAV_MAGIC = (b"RIFF", b"RIFX", b"RF64", b"BW64")

# Other containers a recording endpoint might hand us instead of WAV/MP3: name them instead of "unknown".
_OTHER_FORMATS: tuple[tuple[int, bytes, str], ...] = (
    (0, b"OggS", "Ogg (Vorbis/Opus)"),
    (0, b"fLaC", "FLAC"),
    (0, b"#!AMR", "AMR"),
    (0, b".snd", "Sun/NeXT AU"),
    (0, b"\x1aE\xdf\xa3", "Matroska/WebM"),
    (4, b"ftyp", "MP4/M4A"),
    (0, b"\x1f\x8b", "gzip-compressed data"),
    (0, b"PK\x03\x04", "a ZIP archive"),
    (0, b"%PDF", "a PDF document"),
    (0, b"\x00\x00\x00\x00", "all-zero data"),
)


def sniff_format(head: bytes) -> str | None:
    """``"wav"``, ``"mp3"`` or ``None`` from the first bytes only (12 bytes suffice; more helps MP3).

    Meant for early rejection: a ``"wav"``/``"mp3"`` answer says the bytes *start* like that format, not
    that the file is valid.
    """
    head = bytes(head[:16])
    if len(head) >= 12 and head[:4] in _WAV_MAGIC and head[8:12] == b"WAVE":
        return "wav"
    if mpeg.is_id3v2_header(head):
        return "mp3"
    if len(head) >= 4 and mpeg.frame_length(head) is not None:
        return "mp3"
    return None


def describe_non_audio(head: bytes) -> str:
    """A specific, human-readable reason why ``head`` (the first bytes of a non-WAV/MP3 input) is rejected."""
    if not head:
        return "empty file (0 bytes)"
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    lower = text[:512].lower()
    if lower.startswith((b"<!doctype html", b"<html")) or (lower.startswith(b"<") and b"<html" in lower):
        title = _tag_text(head, b"title")
        return "looks like an HTML error page, not audio" + (f" (title: {title!r})" if title else "")
    if lower.startswith(b"<"):
        code = _tag_text(head, b"code") or _tag_text(head, b"message")
        detail = f" (error code: {code!r})" if code else ""
        return f"looks like an XML document (e.g. an HTTP/S3 error response), not audio{detail}"
    if lower.startswith((b"{", b"[")):
        return f"looks like a JSON body, not audio: {_excerpt(text)}"
    if head[:4] in (b"RIFF", b"RIFX") and len(head) >= 12:
        return f"RIFF container of type {head[8:12].decode('latin-1')!r}, not WAVE"
    for offset, magic, name in _OTHER_FORMATS:
        if head[offset : offset + len(magic)] == magic:
            return f"unsupported format: {name}, not WAV or MP3"
    layer = mpeg.other_layer(head)
    if layer:
        return f"{layer} audio, not MP3 (only MPEG Layer III is supported)"
    if _mostly_text(head):
        return f"looks like a text body, not audio: {_excerpt(text)}"
    first = " ".join(f"{b:02x}" for b in head[:8])
    return f"unknown format (first bytes: {first}{' ...' if len(head) > 8 else ''})"


def _tag_text(head: bytes, tag: bytes) -> str | None:
    match = re.search(rb"<" + tag + rb"[^>]*>([^<]{1,200})<", head, re.IGNORECASE)
    if not match:
        return None
    return " ".join(match.group(1).decode("utf-8", "replace").split())[:100] or None


def _excerpt(data: bytes, limit: int = 80) -> str:
    text = " ".join(data[: limit * 2].decode("utf-8", "replace").split())
    text = "".join(ch if ch.isprintable() else "?" for ch in text)
    return repr(text[:limit] + ("..." if len(text) > limit else ""))


def _mostly_text(head: bytes) -> bool:
    sample = head[:512]
    printable = sum(1 for b in sample if 32 <= b < 127 or b in (9, 10, 13))
    return printable >= 0.95 * len(sample)
