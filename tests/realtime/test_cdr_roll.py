"""Accepted CDR events wait in the ledger's inbox, wake the realtime DAG through one marker file, and are
rolled into the hourly manifest once each; events landed as files by earlier versions are rolled too."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from ocp_ingest.ocp import wire
from ocp_ingest.realtime import count_arrivals, record_cdr_events, roll_cdr_manifest
from ocp_ingest.realtime import events as events_module
from ocp_ingest_dev.simulator.calls import SimCall
from tests.realtime.conftest import Embedded


def manifest_ids(home: Path) -> list[str]:
    files = (home / "audit" / "cdr_manifest").rglob("*.ndjson")
    return sorted(json.loads(line)["event_id"] for f in files for line in f.read_text().splitlines())


def all_events(calls: list[SimCall]) -> list[wire.CdrEvent]:
    return [e for c in calls for e in c.events()]


def test_kept_events_wake_the_dag_once_and_the_roll_empties_the_inbox(
    ingest_home: Path, embedded: Embedded, calls: list[SimCall]
) -> None:
    ledger, layout, router = embedded.ledger, embedded.layout, embedded.router
    events = all_events(calls)
    assert count_arrivals(layout.landing_url) == 0
    assert record_cdr_events(events, ledger, layout, router) == [True] * len(events)
    assert count_arrivals(layout.landing_url) == 1  # one marker however many events wait
    assert list((ingest_home / "landing").iterdir()) == [ingest_home / "landing" / "cdr_waiting"]

    assert roll_cdr_manifest(layout, ledger) == len(events)
    assert count_arrivals(layout.landing_url) == 0 and ledger.backend.cdr_inbox_list(10) == []
    assert manifest_ids(ingest_home) == sorted(e.event_id for e in events)
    assert roll_cdr_manifest(layout, ledger) == 0  # a retried roll finds nothing

    # Redelivered after the roll: kept (and rolled) again, the manifest is at-least-once by event_id.
    assert record_cdr_events(events[:1], ledger, layout, router) == [True]
    assert count_arrivals(layout.landing_url) == 1


def test_a_duplicate_push_wakes_the_dag_too(embedded: Embedded, calls: list[SimCall]) -> None:
    """A push whose first delivery kept the events but lost its marker (a crash, a storage fault) is
    redelivered: its duplicates leave the marker."""
    ledger, layout, router = embedded.ledger, embedded.layout, embedded.router
    events = all_events(calls[:1])
    record_cdr_events(events, ledger, layout, router)
    events_module.cdr_waiting_marker(layout.landing_url).unlink()
    assert record_cdr_events(events, ledger, layout, router) == [False] * len(events)
    assert count_arrivals(layout.landing_url) == 1


def test_a_roll_over_its_limit_leaves_the_marker_and_the_next_one_goes_on(
    ingest_home: Path, embedded: Embedded, calls: list[SimCall]
) -> None:
    ledger, layout, router = embedded.ledger, embedded.layout, embedded.router
    events = all_events(calls)
    record_cdr_events(events, ledger, layout, router)
    rolled = 0
    for _ in range(len(events)):
        if count_arrivals(layout.landing_url) == 0:
            break
        rolled += roll_cdr_manifest(layout, ledger, limit=4)
    assert rolled == len(events) and count_arrivals(layout.landing_url) == 0
    assert manifest_ids(ingest_home) == sorted(e.event_id for e in events)


def test_events_landed_as_files_by_an_earlier_version_are_rolled_with_the_inbox(
    ingest_home: Path, embedded: Embedded, calls: list[SimCall]
) -> None:
    ledger, layout, router = embedded.ledger, embedded.layout, embedded.router
    events = all_events(calls)
    old, new = events[: len(events) // 2], events[len(events) // 2 :]
    landed = ingest_home / "landing" / "cdr"
    landed.mkdir(parents=True)
    for event in old:
        (landed / f"{event.event_id}.json").write_bytes(event.to_json())
    assert count_arrivals(layout.landing_url) == len(old)  # they wake the DAG as they always did
    record_cdr_events(new, ledger, layout, router)
    assert roll_cdr_manifest(layout, ledger, limit=len(new) + 1) == len(new) + 1  # the inbox first
    assert roll_cdr_manifest(layout, ledger) == len(old) - 1
    assert list(landed.iterdir()) == [] and count_arrivals(layout.landing_url) == 0
    assert manifest_ids(ingest_home) == sorted(e.event_id for e in events)


def test_a_marker_that_cannot_be_written_refuses_nothing(
    embedded: Embedded,
    calls: list[SimCall],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The events are in the ledger already, and the DAG's idle run rolls them without the marker."""
    ledger, layout, router = embedded.ledger, embedded.layout, embedded.router

    def full_disk(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(events_module, "write_create_only", full_disk)
    events = all_events(calls[:1])
    with caplog.at_level(logging.WARNING, logger=events_module.__name__):
        assert record_cdr_events(events, ledger, layout, router) == [True] * len(events)
    assert "the idle run rolls the events" in caplog.text
    assert sorted(i for i, _ in ledger.backend.cdr_inbox_list(10)) == sorted(e.event_id for e in events)
    assert ledger.get(calls[0].dialog_id) is not None  # and their transitions applied
