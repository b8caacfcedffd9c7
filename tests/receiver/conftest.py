"""A real receiver on loopback, served with its production uvicorn configuration, over a fresh home."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from ocp_ingest.config import Settings
from ocp_ingest.ledger import Ledger, open_ledger
from ocp_ingest.ocp import wire
from ocp_ingest.receiver import auth as signing
from ocp_ingest.receiver.app import create_app
from ocp_ingest.receiver.guard import ReceiverLimits
from ocp_ingest.receiver.server import RunningReceiver, start_receiver
from ocp_ingest_dev.simulator import audio
from ocp_ingest_dev.simulator.calls import SimCall, generate_calls

SECRET = "whsec_dGVzdC1zZWNyZXQtZm9yLXRoZS1yZWNlaXZlcg=="


@dataclass
class Receiver:
    url: str
    settings: Settings
    ledger: Ledger
    home: Path
    client: httpx.Client

    def post_events(self, events: list[wire.CdrEvent], kind: str = "array") -> httpx.Response:
        return self.post_body(wire.event_body(events, kind))  # type: ignore[arg-type]

    def post_body(self, body: bytes) -> httpx.Response:
        """POST a raw (signed) events body."""
        return self.client.post(
            f"{self.url}/v1/events", content=body, headers=signing.event_headers(SECRET, body)
        )

    def put_audio(self, call: SimCall, body: bytes | None = None, **headers: str) -> httpx.Response:
        body = audio.wav_bytes(call.dialog_id, call.duration_ms) if body is None else body
        signed = signing.audio_headers(SECRET, call.recording_filename, sha256(body))
        return self.client.put(
            f"{self.url}/v1/recordings/{call.recording_filename}", content=body, headers={**signed, **headers}
        )

    def landing_files(self) -> list[str]:
        root = self.home / "landing" / "audio"
        return sorted(p.name for p in root.rglob("*.*")) if root.exists() else []

    def cdr_inbox(self) -> list[str]:
        """The ids of the accepted CDR events the ledger keeps until the roll."""
        return sorted(event_id for event_id, _ in self.ledger.backend.cdr_inbox_list(100_000))


def sha256(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


@pytest.fixture
def calls() -> list[SimCall]:
    return generate_calls(
        seed=7,
        count=6,
        window_start=datetime(2026, 11, 24, 10, tzinfo=UTC),
        mean_duration_s=4,
        max_duration_s=8,
    )


@pytest.fixture
def limits() -> ReceiverLimits:
    """Production limits; tests of the bounds override this fixture with small ones."""
    return ReceiverLimits()


@contextmanager
def served_receiver(
    home: Path, limits: ReceiverLimits | None = None
) -> Iterator[tuple[Receiver, RunningReceiver]]:
    """A receiver on loopback with the environment's settings; stopped and its ledger closed on exit."""
    settings = Settings.from_env()
    ledger = open_ledger(settings)
    server = start_receiver(create_app(settings, secret=SECRET, ledger=ledger, limits=limits), limits=limits)
    try:
        with httpx.Client(timeout=30) as client:
            yield Receiver(server.url, settings, ledger, home, client), server
    finally:
        server.stop()
        ledger.close()


@pytest.fixture
def receiver(
    ingest_home: Path, monkeypatch: pytest.MonkeyPatch, limits: ReceiverLimits
) -> Iterator[Receiver]:
    monkeypatch.setenv("OCP_INGEST_MAX_RECORDING_BYTES", str(2 * 1024 * 1024))
    monkeypatch.setenv("OCP_INGEST_MAX_EVENT_BODY_BYTES", str(64 * 1024))
    with served_receiver(ingest_home, limits) as (served, _):
        yield served
