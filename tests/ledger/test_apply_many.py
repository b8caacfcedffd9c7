"""Ledger.apply_many: a batch gives the same records, outcomes and audit events as applying one by one."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from datetime import timedelta

import pytest

from ocp_ingest.ledger import Ledger, Outcome
from ocp_ingest.ledger.model import CallRecord
from ocp_ingest.ledger.transitions import CdrEnd, CdrStart, ExportRequested, Transition
from tests.ledger.test_contract import IDENTITY, SHA_A, SHA_B, T0, did, stored


class Observer:
    actor = None

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    def record_transition(self, transition: Transition, old: CallRecord | None, new: CallRecord) -> None:
        self.seen.append((transition.name, transition.dialog_id))

    def emit(self, event: object) -> None:
        pass

    def flush(self) -> list[str]:
        return []

    def close(self) -> None:
        pass


def test_batch_outcomes_match_one_by_one(ledger: Ledger) -> None:
    audit = Observer()
    ledger.audit = audit
    ids = [did(100 + i) for i in range(6)]
    for d in ids:
        ledger.apply(CdrEnd(d, T0, 1000, "NORMAL", IDENTITY))
    ledger.apply(stored(ids[1]))
    ledger.apply(ExportRequested(ids[2], "exp-1"))
    audit.seen.clear()

    batch = [
        stored(ids[0]),  # applied
        stored(ids[1]),  # same bytes again: already stored
        stored(ids[1], SHA_B),  # repeated call in the batch, other bytes: conflict
        ExportRequested(ids[2], "exp-1"),  # nothing changes
        ExportRequested(ids[3], "exp-2"),  # applied
        stored(ids[3]),  # repeated call: applied after its ExportRequested
        CdrEnd(did(199), T0, 1000, "NORMAL", IDENTITY),  # a new record
    ]
    results = ledger.apply_many(batch)

    assert [r.outcome for r in results] == [
        Outcome.APPLIED,
        Outcome.ALREADY_STORED,
        Outcome.CONFLICT,
        Outcome.UNCHANGED,
        Outcome.APPLIED,
        Outcome.APPLIED,
        Outcome.APPLIED,
    ]
    assert ledger.get(ids[0]).s3_stored and ledger.get(ids[0]).sha256 == SHA_A
    assert ledger.get(ids[3]).export_id == "exp-2" and ledger.get(ids[3]).s3_stored
    assert ledger.get(did(199)).has_cdr_end and ledger.get(did(199)).version == 1
    assert sorted(audit.seen) == sorted(
        [("Stored", ids[0]), ("ExportRequested", ids[3]), ("Stored", ids[3]), ("CdrEnd", did(199))]
    )
    assert ledger.apply_many([]) == []


@contextlib.contextmanager
def another_writer_after_each_read(ledger: Ledger, change: Transition) -> Iterator[None]:
    """The batch reads its records, then another writer applies ``change`` before the batch writes."""
    backend = ledger.backend
    real_get_many = backend.get_many

    def stale_get_many(dialog_ids):  # type: ignore[no-untyped-def]
        found = real_get_many(dialog_ids)
        ledger.apply(change)
        return found

    backend.get_many = stale_get_many  # type: ignore[method-assign]
    try:
        yield
    finally:
        backend.get_many = real_get_many  # type: ignore[method-assign]


def test_a_record_changed_by_another_writer_meanwhile_is_re_applied(ledger: Ledger) -> None:
    d = did(300)
    ledger.apply(CdrEnd(d, T0, 1000, "NORMAL", IDENTITY))
    with another_writer_after_each_read(ledger, ExportRequested(d, "exp-other")):
        (result,) = ledger.apply_many([stored(d)])
    record = ledger.get(d)
    assert result.outcome is Outcome.APPLIED and record.s3_stored
    assert record.export_id == "exp-other"  # the other writer's change survived


def test_records_the_caller_knows_are_not_read_again_and_a_stale_one_loses_its_race(ledger: Ledger) -> None:
    fresh, stale, unknown = did(400), did(401), did(402)
    for d in (fresh, stale, unknown):
        ledger.apply(CdrEnd(d, T0, 1000, "NORMAL", IDENTITY))
    known = ledger.get_many([fresh, stale])
    ledger.apply(stored(stale, SHA_B))  # another writer stores other bytes after the caller read it
    backend = ledger.backend
    real_get_many = backend.get_many
    asked: list[list[str]] = []

    def counting_get_many(dialog_ids):
        asked.append(list(dialog_ids))
        return real_get_many(dialog_ids)

    backend.get_many = counting_get_many  # type: ignore[method-assign]
    try:
        results = ledger.apply_many([stored(fresh), stored(stale), stored(unknown)], known)
    finally:
        backend.get_many = real_get_many  # type: ignore[method-assign]
    assert asked == [[unknown]]  # only the record the caller did not give
    assert [r.outcome for r in results] == [Outcome.APPLIED, Outcome.CONFLICT, Outcome.APPLIED]
    assert ledger.get(stale).sha256 == SHA_B  # the stale copy never overwrote the other writer's change
    assert ledger.get(fresh).s3_stored and ledger.get(fresh).version == 2


class VersionObserver(Observer):
    def __init__(self) -> None:
        super().__init__()
        self.versions: list[tuple[str, int]] = []

    def record_transition(self, transition: Transition, old: CallRecord | None, new: CallRecord) -> None:
        super().record_transition(transition, old, new)
        self.versions.append((transition.name, new.version))


def a_call_s_life(d: str) -> list[Transition]:
    return [
        CdrStart(d, T0, IDENTITY),
        CdrEnd(d, T0, 1000, "NORMAL", IDENTITY),
        ExportRequested(d, "exp-1"),
        stored(d),
    ]


def count_writes(ledger: Ledger) -> dict[str, int]:
    """Counts the ledger's writes to its backend from now on: ``write_many`` batches, and single ``write``
    calls outside them (the DynamoDB backend writes a batch without audit events record by record)."""
    counts = {"write": 0, "write_many": 0}
    backend = ledger.backend
    real_write, real_write_many = backend.write, backend.write_many
    inside = [0]

    def write(*args, **kwargs):  # type: ignore[no-untyped-def]
        counts["write"] += inside[0] == 0
        return real_write(*args, **kwargs)

    def write_many(*args, **kwargs):  # type: ignore[no-untyped-def]
        counts["write_many"] += 1
        inside[0] += 1
        try:
            return real_write_many(*args, **kwargs)
        finally:
            inside[0] -= 1

    backend.write, backend.write_many = write, write_many  # type: ignore[method-assign]
    return counts


def test_a_calls_changes_in_one_batch_are_one_write_with_an_audit_event_each(ledger: Ledger) -> None:
    """A push's events of one call: applied in order in memory, written once, one version per change."""
    one_by_one, batched = did(500), did(501)
    ledger.clock = lambda: T0 + timedelta(hours=1)  # the same timestamps on both
    for transition in a_call_s_life(one_by_one):
        ledger.apply(transition)
    audit = VersionObserver()
    ledger.audit = audit
    writes = count_writes(ledger)

    results = ledger.apply_many(a_call_s_life(batched))

    assert [r.outcome for r in results] == [Outcome.APPLIED] * 4
    assert writes == {"write": 0, "write_many": 1}
    assert audit.versions == [("CdrStart", 1), ("CdrEnd", 2), ("ExportRequested", 3), ("Stored", 4)]
    assert [r.record.version for r in results] == [1, 2, 3, 4]
    expected = ledger.get(one_by_one)
    same = dataclasses.replace(ledger.get(batched), dialog_id=one_by_one, object_url=expected.object_url)
    assert same == expected  # the same record as one by one


def test_a_calls_changes_that_lose_their_race_are_applied_one_by_one(ledger: Ledger) -> None:
    d = did(510)
    ledger.apply(CdrStart(d, T0, IDENTITY))
    with another_writer_after_each_read(ledger, ExportRequested(d, "exp-other")):
        results = ledger.apply_many([CdrEnd(d, T0, 1000, "NORMAL", IDENTITY), stored(d)])
    assert [r.outcome for r in results] == [Outcome.APPLIED, Outcome.APPLIED]
    record = ledger.get(d)
    assert record.export_id == "exp-other" and record.has_cdr_end and record.s3_stored  # nothing lost
    assert record.version == 4


def test_a_call_with_more_changes_than_a_chain_holds_gets_the_rest_one_by_one(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Ledger, "MAX_CHAIN", 2)
    d = did(520)
    audit = VersionObserver()
    ledger.audit = audit
    writes = count_writes(ledger)
    results = ledger.apply_many(a_call_s_life(d))
    assert [r.outcome for r in results] == [Outcome.APPLIED] * 4
    assert [v for _, v in audit.versions] == [1, 2, 3, 4]
    assert writes == {"write": 2, "write_many": 1}  # the chain of two, then one write each
    assert ledger.get(d).s3_stored and ledger.get(d).version == 4
