"""The ledger's CDR inbox on every backend: accepted CDR events kept under their id (the de-dup) until the
realtime DAG rolls them into the manifest."""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from datetime import timedelta

from ocp_ingest.ledger import Ledger
from ocp_ingest.ocp import wire
from tests.ledger.conftest import make_backend

AT = "2026-12-05T03:00:00.000000Z"


def test_an_id_is_new_once_then_the_same_event_or_another(ledger: Ledger) -> None:
    inbox = ledger.backend
    assert inbox.cdr_inbox_add([("e1", '{"a":1}'), ("e2", '{"b":2}')], AT) == [True, True]
    # Redelivered (the same body), reused for another event (another body), and new: per event.
    again = inbox.cdr_inbox_add([("e1", '{"a":1}'), ("e2", '{"b":3}'), ("e3", "{}")], AT)
    assert again == [False, None, True]
    assert inbox.cdr_inbox_list(10) == [("e1", '{"a":1}'), ("e2", '{"b":2}'), ("e3", "{}")]  # never replaced
    # The same id twice in one push: the second is a duplicate of the first.
    assert inbox.cdr_inbox_add([("e4", "x"), ("e4", "x"), ("e4", "y")], AT) == [True, False, None]


def test_the_longest_opaque_ids_are_kept_apart(ledger: Ledger) -> None:
    """OCP's event id may be 1,024 characters of 4-byte UTF-8 (over DynamoDB's key-size limits as it is);
    ids differing in their last character only are still two events."""
    longest = "\U0001d11e" * (wire.EVENT_ID_MAX_LEN - 1)
    ids = [wire.event_id(longest + "a"), wire.event_id(longest + "b")]
    inbox = ledger.backend
    assert inbox.cdr_inbox_add([(ids[0], "1"), (ids[1], "2")], AT) == [True, True]
    assert inbox.cdr_inbox_add([(ids[0], "1"), (ids[1], "1")], AT) == [False, None]
    assert sorted(inbox.cdr_inbox_list(10)) == [(ids[0], "1"), (ids[1], "2")]
    inbox.cdr_inbox_delete([ids[0]])
    assert inbox.cdr_inbox_list(10) == [(ids[1], "2")]


def test_the_inbox_lists_oldest_first_up_to_the_limit_and_forgets_rolled_events(ledger: Ledger) -> None:
    inbox = ledger.backend
    for n in range(30):  # over the DynamoDB backend's 16 shards
        inbox.cdr_inbox_add([(f"ev-{n:02d}", str(n))], f"2026-12-05T03:00:{59 - n:02d}.000000Z")
    listed = inbox.cdr_inbox_list(7)
    assert [event_id for event_id, _ in listed] == [f"ev-{n:02d}" for n in range(29, 22, -1)]
    inbox.cdr_inbox_delete([event_id for event_id, _ in listed] + ["never-kept"])
    assert len(inbox.cdr_inbox_list(100)) == 23
    # After the roll the id is free again: a redelivery is kept (the manifest is at-least-once).
    assert inbox.cdr_inbox_add([("ev-29", "29")], AT) == [True]


def test_inbox_entries_are_not_calls_nor_audit_events(ledger: Ledger) -> None:
    ledger.backend.cdr_inbox_add([("e1", "{}")], AT)
    assert ledger.get("e1") is None
    assert ledger.backend.outbox_list("9999", 100) == []
    assert ledger.pending(timedelta(0), limit=10) == []


def _accept(spec: dict[str, str], body: str) -> list[bool | None]:
    backend = make_backend(spec)
    try:
        return backend.cdr_inbox_add([("contended", body)], AT)
    finally:
        backend.close()


def test_concurrent_pushes_of_one_id_keep_exactly_one(ledger: Ledger, ledger_spec: dict[str, str]) -> None:
    bodies = ["same"] * 4 + ["other"] * 4
    with ProcessPoolExecutor(4) as pool:
        outcomes = [o for (o,) in pool.map(_accept, [ledger_spec] * len(bodies), bodies)]
    assert outcomes.count(True) == 1
    ((_, kept),) = ledger.backend.cdr_inbox_list(10)
    # Every push of the kept body is new or a duplicate; every other body is refused.
    assert all(o is not None for o, b in zip(outcomes, bodies, strict=True) if b == kept)
    assert all(o is None for o, b in zip(outcomes, bodies, strict=True) if b != kept)
