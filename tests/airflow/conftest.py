"""A simulated OCP tenant on loopback, reached through the ``ocp_default`` Connection, over a fresh home."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ocp_ingest.config import Settings
from ocp_ingest.ledger import CallRecord, Ledger, open_ledger
from ocp_ingest.ledger.cdr import cdr_transition
from ocp_ingest.routing import LobRouter
from ocp_ingest_dev.simulator import RunningSimulator, SimCall, Simulator, SimulatorConfig, serve
from ocp_ingest_dev.simulator.auth import SIMULATOR_PAT as PAT
from tests.sim_support import small_sim_config


def sim_config(calls: int = 24, **overrides: object) -> SimulatorConfig:
    """Few, short calls (1-3 s of audio), a 2-hour window, a 0.3 s export preparation time."""
    defaults = {"seed": 11, "max_duration_s": 3.0, "no_recording_share": 0.0, "prep_s": 0.3}
    return small_sim_config(**{**defaults, "calls": calls, **overrides})  # type: ignore[arg-type]


@dataclass
class Tenant:
    """The simulator, the ledger and storage of one test, plus helpers to set the scene."""

    running: RunningSimulator
    settings: Settings
    ledger: Ledger
    home: Path

    @property
    def sim(self) -> Simulator:
        assert self.running.sim is not None
        return self.running.sim

    @property
    def calls(self) -> list[SimCall]:
        return self.sim.calls

    def receive_events(self, calls: Iterable[SimCall], *, lose_dialog_end: bool = False) -> None:
        """What the realtime path would have recorded from OCP's pushed CDR events (no audio)."""
        router = LobRouter.load(self.settings.lob_routing_file)
        for call in calls:
            for event in call.events():
                if lose_dialog_end and event.message_type.value == "dialog_end":
                    continue
                transition = cdr_transition(event, router)
                if transition is not None:
                    self.ledger.apply(transition)

    def record(self, dialog_id: str) -> CallRecord:
        record = self.ledger.get(dialog_id)
        assert record is not None, dialog_id
        return record

    def stored_files(self) -> list[Path]:
        root = self.home / "recordings"
        return sorted(root.rglob("*.wav")) if root.exists() else []

    def snapshot(self) -> tuple[dict[str, dict], list[str]]:
        """Every ledger record and every file under the home (except the ledger itself)."""
        records = {c.dialog_id: r.to_item() for c in self.calls if (r := self.ledger.get(c.dialog_id))}
        files = sorted(
            str(p.relative_to(self.home))
            for p in self.home.rglob("*")
            if p.is_file() and not p.name.startswith("ledger.sqlite3")
        )
        return records, files


def sha_of(url: str) -> str:
    return hashlib.sha256(Path(url.removeprefix("file://")).read_bytes()).hexdigest()


@pytest.fixture
def tenant_factory(ingest_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator:
    """``tenant_factory(config)``: serve a simulator, point ``ocp_default`` at it, open the ledger."""
    monkeypatch.setenv("OCP_INGEST_PENDING_GRACE_S", "0")
    monkeypatch.setenv("OCP_INGEST_EXPORT_POLL_INTERVAL_S", "0.1")
    monkeypatch.setenv("OCP_INGEST_EXPORT_POLL_MAX_INTERVAL_S", "0.3")
    monkeypatch.setenv("OCP_INGEST_EXPORT_MAX_WAIT_S", "60")
    monkeypatch.setenv("OCP_INGEST_DOWNLOAD_MAX_RESUMES", "2")
    contexts = []
    opened: list[Ledger] = []

    def make(config: SimulatorConfig | None = None, calls: list[SimCall] | None = None) -> Tenant:
        ctx = serve(Simulator(config or sim_config(), calls=calls))
        contexts.append(ctx)
        running = ctx.__enter__()
        conn = {
            "conn_type": "ocp",
            "host": running.url,
            "password": PAT,
            "extra": {"max_attempts": 6, "max_total_s": 20},
        }
        monkeypatch.setenv("AIRFLOW_CONN_OCP_DEFAULT", json.dumps(conn))
        settings = Settings.from_env()
        ledger = open_ledger(settings)
        opened.append(ledger)
        return Tenant(running, settings, ledger, ingest_home)

    yield make
    for ledger in opened:
        ledger.close()
    for ctx in reversed(contexts):
        ctx.__exit__(None, None, None)


@pytest.fixture
def tenant(tenant_factory) -> Tenant:
    return tenant_factory()


def store_by_realtime(tenant: Tenant, call: SimCall) -> None:
    """The realtime path storing a call's pushed audio (landing -> RecordingIngestor, REALTIME)."""
    from ocp_ingest.ingest import RecordingIngestor
    from ocp_ingest.ledger import IngestionSource
    from ocp_ingest.storage import StorageLayout, write_create_only
    from ocp_ingest_dev.simulator import audio

    layout = StorageLayout.from_settings(tenant.settings)
    body = audio.wav_bytes(call.dialog_id, call.duration_ms)
    sha = hashlib.sha256(body).hexdigest()
    landing = layout.landing_path(call.dialog_id, "f" * 16 + sha[16:])  # not the reconciliation's key
    write_create_only(landing, [body])
    outcome = RecordingIngestor(tenant.settings, tenant.ledger, layout).ingest(
        landing, sha, len(body), tenant.record(call.dialog_id), IngestionSource.REALTIME
    )
    landing.unlink()
    assert outcome.kind == "stored", outcome
