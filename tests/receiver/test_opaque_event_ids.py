"""OCP's event_id is its opaque id (issue #17): any non-empty printable string up to a bound is accepted
and kept under itself in the ledger's CDR inbox, where two different ids never share a key."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from ocp_ingest.ocp import wire
from ocp_ingest.realtime.events import roll_cdr_manifest
from ocp_ingest.storage import StorageLayout
from ocp_ingest_dev.simulator.calls import SimCall, generate_calls
from tests.receiver.conftest import Receiver

LEGAL = [
    "exp.20261202.0001",  # dots
    "urn:ocp:event/2026/12/02/0001",  # slashes and colons
    "../../etc/passwd",  # a path, as a string: never one on our side
    "ünïcode-事件-é",
    "e" * 200,  # long
    "a b",  # a space is printable
    "a.b",
    "a/b",
    "a-b",  # a plain token: kept as it is
    ".",
]


def _with_ids(calls: list[SimCall], event_ids: list[str]) -> list[wire.CdrEvent]:
    """One distinct event per id (dialog_starts of different calls, or their ends)."""
    events = [e for c in calls for e in (c.dialog_start(), c.dialog_end())]
    assert len(events) >= len(event_ids)
    return [e.model_copy(update={"event_id": i}) for e, i in zip(events, event_ids, strict=False)]


def _more_calls() -> list[SimCall]:
    return generate_calls(
        seed=8, count=6, window_start=datetime(2026, 11, 24, 10, tzinfo=UTC), max_duration_s=8
    )


def test_every_opaque_event_id_is_accepted_once_under_a_key_of_its_own(receiver: Receiver) -> None:
    events = _with_ids(_more_calls(), LEGAL)
    answer = receiver.post_events(events)
    assert answer.status_code == 200, answer.text
    assert answer.json()["accepted"] == len(LEGAL) and answer.json()["duplicates"] == 0
    assert receiver.cdr_inbox() == sorted(LEGAL)  # each kept under its own id: no two collided
    # Redelivered: each is a duplicate of itself, found through its key.
    again = receiver.post_events(events, kind="ndjson")
    assert again.status_code == 200 and again.json()["duplicates"] == len(LEGAL)
    # An opaque id reused for another event is still caught.
    other = _more_calls()[-1].dialog_end().model_copy(update={"event_id": "exp.20261202.0001"})
    assert receiver.post_events([other]).status_code == 409
    # The manifest keeps the ids as OCP gave them.
    assert roll_cdr_manifest(StorageLayout.from_settings(receiver.settings), receiver.ledger) == len(LEGAL)
    manifest = [p for p in receiver.home.rglob("*.ndjson") if "cdr_manifest" in p.parts]
    lines = [json.loads(line) for path in manifest for line in path.read_text().splitlines()]
    assert {line["event_id"] for line in lines} == set(LEGAL)


@pytest.mark.parametrize(
    "hostile",
    ["", "a\nb", "a\x00b", "tab\there", "\u200b", "x" * (wire.EVENT_ID_MAX_LEN + 1)],
    ids=["empty", "newline", "nul", "tab", "zero-width", "too-long"],
)
def test_an_event_id_that_is_empty_unprintable_or_too_long_is_refused_alone(
    receiver: Receiver, hostile: str
) -> None:
    good, bad = _with_ids(_more_calls(), ["good-1", "placeholder"])
    body = json.dumps([json.loads(good.to_json()), {**json.loads(bad.to_json()), "event_id": hostile}])
    answer = receiver.post_body(body.encode())
    assert answer.status_code == 207, answer.text
    (rejected,) = answer.json()["rejected"]
    assert rejected["index"] == 1 and "event_id" in rejected["reason"]
    assert receiver.cdr_inbox() == ["good-1"]


def test_the_longest_event_id_accepted_is_the_bound() -> None:
    assert wire.event_id("x" * wire.EVENT_ID_MAX_LEN) == "x" * wire.EVENT_ID_MAX_LEN


def test_the_simulators_opaque_event_ids_reach_the_ledger(receiver: Receiver) -> None:
    calls = generate_calls(
        seed=9,
        count=4,
        window_start=datetime(2026, 11, 24, 10, tzinfo=UTC),
        max_duration_s=8,
        opaque_event_ids=True,
    )
    events = [e for c in calls for e in c.events()]
    assert all("." in e.event_id and "/" in e.event_id for e in events)
    assert len({e.event_id for e in events}) == len(events)
    assert receiver.post_events(events).json()["accepted"] == len(events)
    assert all(receiver.ledger.get(c.dialog_id).has_cdr_end for c in calls)
    # Stable per event: a redelivery is a duplicate.
    again = [e for c in calls for e in c.events()]
    assert receiver.post_events(again).json()["duplicates"] == len(events)
