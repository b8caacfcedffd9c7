"""The realtime DAG's trigger: wakes for new arrivals only, ends idle after its maximum wait."""

from __future__ import annotations

import asyncio
import importlib
from pathlib import Path

import pytest

from ocp_ingest.airflow.triggers import LandingArrivalsTrigger


async def first_event(trigger: LandingArrivalsTrigger) -> dict:
    async for event in trigger.run():
        return event.payload
    raise AssertionError("the trigger ended without an event")


def test_serialize_round_trips_through_the_installed_class_path(tmp_path: Path) -> None:
    trigger = LandingArrivalsTrigger(tmp_path.as_uri(), poll_interval_s=0.5, max_wait_s=9)
    path, kwargs = trigger.serialize()
    module, name = path.rsplit(".", 1)
    assert not module.startswith("dags")  # the triggerer imports it from the package
    rebuilt = getattr(importlib.import_module(module), name)(**kwargs)
    assert rebuilt.serialize() == (path, kwargs)


def test_idle_landing_ends_with_an_idle_event(tmp_path: Path) -> None:
    parked = tmp_path / "audio" / "waiting"
    parked.mkdir(parents=True)
    (parked / "X.json").write_text("{}")  # waiting for its dialog_end: must not wake the DAG
    event = asyncio.run(first_event(LandingArrivalsTrigger(tmp_path.as_uri(), 0.05, 0.3)))
    assert event == {"status": "idle", "waiting": 0}


def test_a_new_arrival_fires_the_trigger(tmp_path: Path) -> None:
    async def scenario() -> dict:
        task = asyncio.create_task(first_event(LandingArrivalsTrigger(tmp_path.as_uri(), 0.05, 30)))
        await asyncio.sleep(0.2)
        assert not task.done()
        (tmp_path / "cdr_waiting").write_bytes(b"")  # what the receiver leaves when it keeps events
        return await asyncio.wait_for(task, 5)

    assert asyncio.run(scenario()) == {"status": "arrivals", "waiting": 1}


def test_without_an_explicit_url_the_trigger_watches_the_configured_landing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OCP_INGEST_HOME", str(tmp_path))
    (tmp_path / "landing" / "cdr").mkdir(parents=True)  # an event landed as a file by an older version
    (tmp_path / "landing" / "cdr" / "evt_1.json").write_text("{}")
    trigger = LandingArrivalsTrigger(None, 0.05, 1)
    assert trigger.serialize()[1]["landing_url"] is None
    assert asyncio.run(first_event(trigger)) == {"status": "arrivals", "waiting": 1}
