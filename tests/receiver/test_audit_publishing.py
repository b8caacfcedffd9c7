"""The receiver's audit trail: every acknowledged change is in the ledger's outbox at its answer, in Parquet
within the publish interval (not one file per request), and all of it in Parquet after a clean stop.
A push's events are written to the ledger as one batch."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ocp_ingest.audit.tables import event_files, read_events
from ocp_ingest.receiver.server import RunningReceiver
from ocp_ingest_dev.simulator.calls import SimCall
from tests.receiver.conftest import Receiver, served_receiver

FAR_FUTURE = "9999-12-31T00:00:00Z"


@pytest.fixture
def slow_publisher(
    ingest_home: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Receiver, RunningReceiver]]:
    """A receiver whose interval is far longer than the test: only a clean stop publishes."""
    monkeypatch.setenv("OCP_INGEST_RECEIVER_AUDIT_PUBLISH_S", "300")
    with served_receiver(ingest_home) as served:
        yield served


def _published(receiver: Receiver) -> list[dict[str, object]]:
    today = datetime.now(UTC).date()
    table = read_events(receiver.settings.audit_url, today - timedelta(days=1), today + timedelta(days=1))
    return table.select(["event_id", "dialog_id", "transition"]).to_pylist()


def _outbox_ids(receiver: Receiver) -> set[str]:
    return {e.event_id for e in receiver.ledger.backend.outbox_list(FAR_FUTURE, 10_000)}  # type: ignore[attr-defined]


def _push_calls(receiver: Receiver, calls: list[SimCall]) -> None:
    for call in calls:  # one push per call's events, then its audio: as many requests as calls x 2
        assert receiver.post_events(call.events()).status_code == 200
        assert receiver.put_audio(call).json()["status"] == "received"


def test_acknowledged_changes_wait_in_the_outbox_and_a_clean_stop_publishes_them_in_one_file(
    slow_publisher: tuple[Receiver, RunningReceiver], calls: list[SimCall]
) -> None:
    receiver, server = slow_publisher
    _push_calls(receiver, calls)
    durable = _outbox_ids(receiver)
    # each call's CDR transitions and FileReceived, durable (committed with its change) at the answer
    assert len(durable) >= 3 * len(calls)
    assert _published(receiver) == []  # no request published on its own
    server.stop()
    published = _published(receiver)
    assert {row["event_id"] for row in published} == durable
    assert {row["dialog_id"] for row in published} == {c.dialog_id for c in calls}
    assert _outbox_ids(receiver) == set()  # published and cleared from the outbox
    today = datetime.now(UTC).date()
    files = [
        f for day in (today - timedelta(days=1), today) for f in event_files(receiver.settings.audit_url, day)
    ]
    lobs = {
        row["lob"]
        for row in read_events(receiver.settings.audit_url, today - timedelta(days=1), today).to_pylist()
    }
    assert len(files) == len(lobs)  # one file per (day, LOB) for all 12 requests, not one per request


def test_acknowledged_changes_reach_parquet_within_the_interval_without_a_stop(
    ingest_home: Path, monkeypatch: pytest.MonkeyPatch, calls: list[SimCall]
) -> None:
    monkeypatch.setenv("OCP_INGEST_RECEIVER_AUDIT_PUBLISH_S", "0.2")
    with served_receiver(ingest_home) as (receiver, _):
        _push_calls(receiver, calls[:2])
        durable = _outbox_ids(receiver)
        deadline = time.monotonic() + 15
        while {r["event_id"] for r in _published(receiver)} != durable and time.monotonic() < deadline:
            time.sleep(0.1)
        assert {r["event_id"] for r in _published(receiver)} == durable
        # The receiver keeps publishing: a later push is published too, while it runs.
        _push_calls(receiver, calls[2:3])
        later = _outbox_ids(receiver)
        deadline = time.monotonic() + 15
        while not later <= {r["event_id"] for r in _published(receiver)} and time.monotonic() < deadline:
            time.sleep(0.1)
        assert later and later <= {r["event_id"] for r in _published(receiver)}


def test_a_push_of_many_calls_events_is_one_ledger_batch_and_a_reused_id_is_refused_alone(
    receiver: Receiver, calls: list[SimCall], monkeypatch: pytest.MonkeyPatch
) -> None:
    batches: list[int] = []
    write_many = receiver.ledger.backend.write_many  # type: ignore[attr-defined]

    def counting(items, *args, **kwargs):  # type: ignore[no-untyped-def]
        batches.append(len(items))
        return write_many(items, *args, **kwargs)

    monkeypatch.setattr(receiver.ledger.backend, "write_many", counting)
    starts = [c.dialog_start() for c in calls]
    assert receiver.post_events(starts[:1]).status_code == 200
    batches.clear()
    reused = calls[1].dialog_end().model_copy(update={"event_id": starts[0].event_id})
    answer = receiver.post_events([*starts[1:], reused])
    assert answer.status_code == 207, answer.text
    assert answer.json()["accepted"] == len(calls) - 1
    assert [r["index"] for r in answer.json()["rejected"]] == [len(calls) - 1]
    assert batches == [len(calls) - 1]  # one batch: one transaction for the whole push
    for call in calls:
        assert receiver.ledger.get(call.dialog_id) is not None
    assert receiver.ledger.get(calls[1].dialog_id).call_end_ts is None  # the refused end wrote nothing
