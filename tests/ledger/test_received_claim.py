"""The first complete pushed body claims its call (both backends): later different bytes are a conflict."""

from __future__ import annotations

from datetime import UTC, datetime

from ocp_ingest.ledger import Ledger, Outcome
from ocp_ingest.ledger.transitions import AudioRejected, CdrEnd, ConflictingAudio, FileReceived
from tests.ledger.test_contract import IDENTITY, SHA_A, SHA_B, did, stored

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def test_the_first_body_claims_the_call_and_another_is_a_conflict(ledger: Ledger) -> None:
    d = did(900)
    assert ledger.apply(FileReceived(d, SHA_A, 1000)).outcome is Outcome.APPLIED
    assert ledger.get(d).received_sha256 == SHA_A
    assert ledger.apply(FileReceived(d, SHA_A, 1000)).outcome is Outcome.UNCHANGED  # the same body again
    refused = ledger.apply(FileReceived(d, SHA_B, 1000))
    assert refused.outcome is Outcome.CONFLICT and refused.record.received_sha256 == SHA_A
    assert ledger.get(d).received_sha256 == SHA_A


def test_a_rejected_body_releases_the_claim(ledger: Ledger) -> None:
    d = did(901)
    ledger.apply(FileReceived(d, SHA_A, 1000))
    ledger.apply(AudioRejected(d, "truncated"))
    assert ledger.get(d).received_sha256 is None and ledger.get(d).file_received
    assert ledger.apply(FileReceived(d, SHA_B, 1000)).outcome is Outcome.APPLIED
    assert ledger.get(d).received_sha256 == SHA_B


def test_storing_keeps_a_conflict_flagged_but_clears_other_errors(ledger: Ledger) -> None:
    flagged, rejected = did(902), did(903)
    for d in (flagged, rejected):
        ledger.apply(CdrEnd(d, T0, 1000, "NORMAL", IDENTITY))
        ledger.apply(FileReceived(d, SHA_A, 1000))
    ledger.apply(ConflictingAudio(flagged, SHA_B, "file:///q/b.bin"))
    ledger.apply(AudioRejected(rejected, "an earlier attempt failed"))
    for d in (flagged, rejected):
        assert ledger.apply(stored(d)).outcome is Outcome.APPLIED
    assert ledger.get(flagged).last_error.startswith("conflicting audio sha256=" + SHA_B)
    assert ledger.get(rejected).last_error is None
