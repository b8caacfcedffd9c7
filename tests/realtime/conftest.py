"""The realtime tests push to the same real receiver as tests/receiver (production uvicorn setup), or use
the realtime domain directly on the embedded default (``embedded``)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ocp_ingest.config import Settings
from ocp_ingest.ledger import Ledger, open_ledger
from ocp_ingest.ledger.cdr import cdr_transition
from ocp_ingest.ocp import wire
from ocp_ingest.realtime import Arrival, RealtimeProcessor, land_recording, list_arrivals
from ocp_ingest.routing import LobRouter
from ocp_ingest.storage import StorageLayout
from ocp_ingest_dev.simulator import audio
from ocp_ingest_dev.simulator.calls import SimCall
from tests.receiver.conftest import SECRET, Receiver, calls, limits, receiver

__all__ = ["SECRET", "Embedded", "Receiver", "calls", "embedded", "limits", "receiver"]


@dataclass
class Embedded:
    """The realtime domain on the embedded default, without the receiver or Airflow."""

    settings: Settings
    layout: StorageLayout
    router: LobRouter
    ledger: Ledger

    def record_cdrs(self, call: SimCall) -> None:
        for event in call.events():
            if (transition := cdr_transition(event, self.router)) is not None:
                self.ledger.apply(transition)

    def land(self, call: SimCall) -> Arrival:
        name = wire.parse_recording_filename(call.recording_filename)
        body = audio.wav_bytes(call.dialog_id, call.duration_ms)
        return land_recording(name, [body], ledger=self.ledger, layout=self.layout, max_bytes=10**7).arrival

    def run_batch(self):  # type: ignore[no-untyped-def]
        return RealtimeProcessor(self.settings, self.ledger, self.layout).process(
            list_arrivals(self.layout, 100)
        )


@pytest.fixture
def embedded(ingest_home: Path) -> Iterator[Embedded]:
    settings = Settings.from_env()
    with open_ledger(settings) as ledger:
        yield Embedded(
            settings, StorageLayout.from_settings(settings), LobRouter.load(settings.lob_routing_file), ledger
        )
