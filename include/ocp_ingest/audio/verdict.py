"""The structured result of audio validation."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Hostile input can produce one problem per damaged region; a verdict that lists thousands of them helps
# nobody, so reasons are capped (the last one says how many were left out).
MAX_REASONS = 20


@dataclass(frozen=True)
class AudioVerdict:
    """What the validator found out about one recording.

    ``duration_s`` is always measured (real data bytes for WAV, counted/decoded frames for MP3), never the
    header's claim; the header's claim, as reported by mutagen, is in ``metadata["header_duration_s"]``.
    ``metadata`` holds informational extras (bit depth, bitrate mode, frame counts, mutagen's view); it is
    not part of equality or hashing and nothing in it affects ``ok``.
    """

    ok: bool
    format: str | None
    codec: str | None
    sample_rate: int | None
    channels: int | None
    duration_s: float | None
    size_bytes: int
    sha256: str
    reasons: tuple[str, ...]
    metadata: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable copy (reasons as a list)."""
        return {
            "ok": self.ok,
            "format": self.format,
            "codec": self.codec,
            "sample_rate": self.sample_rate,
            "channels": self.channels,
            "duration_s": self.duration_s,
            "size_bytes": self.size_bytes,
            "sha256": self.sha256,
            "reasons": list(self.reasons),
            "metadata": dict(self.metadata),
        }


@dataclass
class Findings:
    """Mutable scratch pad the format checkers fill in; frozen into an AudioVerdict at the end."""

    format: str | None = None
    codec: str | None = None
    sample_rate: int | None = None
    channels: int | None = None
    duration_s: float | None = None
    reasons: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    # Set by a checker once it knows the structure is small enough for mutagen to parse with bounded
    # memory (mutagen reads whole chunks and walks every chunk header).
    mutagen_safe: bool = False
    _dropped: int = 0

    def reject(self, reason: str) -> None:
        """Record one problem; beyond MAX_REASONS only count them."""
        if len(self.reasons) < MAX_REASONS:
            self.reasons.append(reason)
        else:
            self._dropped += 1

    def final_reasons(self) -> tuple[str, ...]:
        if self._dropped:
            return (*self.reasons, f"... and {self._dropped} more problems not listed")
        return tuple(self.reasons)
