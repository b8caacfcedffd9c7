"""Layered validation of call recordings (WAV, MP3): structure, decodability and duration, never headers.

Public API::

    validate_audio(source, *, expected_duration_s=None, tolerance_s=2.0, tolerance_ratio=0.02,
                   max_bytes=None, decode_mp3=True) -> AudioVerdict
    sniff_format(head) -> "wav" | "mp3" | None
    AudioVerdict

This package knows nothing about Airflow, storage or the OCP API: it reads bytes and returns a verdict.
"""

from ocp_ingest.audio.sniff import sniff_format
from ocp_ingest.audio.validator import validate_audio
from ocp_ingest.audio.verdict import AudioVerdict

__all__ = ["AudioVerdict", "sniff_format", "validate_audio"]
