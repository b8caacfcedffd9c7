"""Session-wide generated recordings: encoded once per test run into a temporary directory."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from audio_fixtures import SIXTY_S_SIZE, encode_mp3, pcm_wav


@pytest.fixture(scope="session")
def audio_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("audio")


@pytest.fixture(scope="session")
def wav60(audio_dir: Path) -> bytes:
    """60 s PCM WAV, 8 kHz mono 16-bit, written by the stdlib ``wave`` module."""
    data = pcm_wav(audio_dir / "sixty.wav", 60, rate=8000)
    assert struct.unpack_from("<I", data, 40)[0] == SIXTY_S_SIZE
    return data


@pytest.fixture(scope="session")
def mp3_cbr(audio_dir: Path) -> bytes:
    """5 s MPEG-1 Layer III, 44.1 kHz mono, 128 kbit/s CBR with an Info header."""
    return encode_mp3(audio_dir / "cbr.mp3", 5, bit_rate=128_000)


@pytest.fixture(scope="session")
def mp3_vbr(audio_dir: Path) -> bytes:
    """5 s 44.1 kHz mono VBR (LAME quality 4) with a Xing header."""
    return encode_mp3(audio_dir / "vbr.mp3", 5, vbr_quality=4)


@pytest.fixture(scope="session")
def mp3_vbr_no_xing(audio_dir: Path) -> bytes:
    """The same VBR encoding, but the muxer was told not to write the Xing header frame."""
    return encode_mp3(audio_dir / "vbr_no_xing.mp3", 5, vbr_quality=4, write_xing=False)


@pytest.fixture(scope="session")
def mp3_telephony(audio_dir: Path) -> bytes:
    """5 s MPEG-2.5 Layer III, 8 kHz mono, 16 kbit/s: what a telephony platform produces."""
    return encode_mp3(audio_dir / "tel.mp3", 5, rate=8000, bit_rate=16_000)


@pytest.fixture(scope="session")
def mp3_stereo_vbr(audio_dir: Path) -> bytes:
    """5 s MPEG-2 Layer III, 22.05 kHz stereo VBR."""
    return encode_mp3(audio_dir / "stereo.mp3", 5, rate=22050, channels=2, vbr_quality=2)


@pytest.fixture
def write(tmp_path: Path):
    """Write bytes to a file under a given name (extension deliberately free) and return its path."""

    def _write(name: str, data: bytes) -> Path:
        path = tmp_path / name
        path.write_bytes(data)
        return path

    return _write
