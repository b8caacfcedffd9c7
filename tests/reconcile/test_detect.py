"""detect: the backfill's groups and the run's request, checked on a SQLite ledger."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from ocp_ingest.ledger import Ledger
from ocp_ingest.ledger.transitions import AttemptFailed, CallIdentity, CdrEnd, CdrStart
from ocp_ingest.reconcile.detect import Detection, PendingCall, PendingQuery, backfill_groups, detect

T0 = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


def started(ledger: Ledger, n: int, at: datetime, group: str | None, lob: str) -> None:
    ledger.apply(CdrStart(f"{n:032X}", at, CallIdentity(ocp_group=group, lob=lob)))


def query(**window: object) -> PendingQuery:
    return PendingQuery(grace=timedelta(0), limit=100, **window)  # type: ignore[arg-type]


def test_a_backfill_covers_every_group_the_ledger_knows_in_its_window_or_the_ones_asked_for(
    ledger: Ledger,
) -> None:
    started(ledger, 1, T0 + timedelta(minutes=5), "grp-a", "retail")
    started(ledger, 2, T0 + timedelta(minutes=35), "grp-b", "cards")
    started(ledger, 3, T0 + 3 * HOUR, "grp-c", "retail")  # outside the window
    started(ledger, 4, T0 + timedelta(minutes=10), None, "retail")  # no group: cannot be exported
    window = {"window_start": T0, "window_end": T0 + 2 * HOUR}

    assert backfill_groups(ledger, query(**window)) == ("grp-a", "grp-b")
    assert backfill_groups(ledger, query(**window, lobs=("retail",))) == ("grp-a",)
    assert backfill_groups(ledger, query(**window, ocp_groups=("grp-z", "grp-a"))) == ("grp-a", "grp-z")
    assert backfill_groups(ledger, query()) == ()  # a scheduled run names no group


def test_detection_travels_as_json_and_keeps_the_window_and_groups(ledger: Ledger) -> None:
    started(ledger, 1, T0 + timedelta(minutes=5), "grp-a", "retail")
    detection = detect(ledger, query(window_start=T0, window_end=T0 + HOUR), dry_run=True)
    assert detection.window == (T0, T0 + HOUR) and detection.ocp_groups == ("grp-a",) and detection.dry_run
    assert Detection.from_dict(detection.to_dict()) == detection
    row = PendingCall("A" * 32, "grp-a", T0 + timedelta(microseconds=7))
    assert PendingCall.from_row(row.to_row()) == row
    lived = PendingCall("A" * 32, "grp-a", T0, T0 + timedelta(minutes=3, microseconds=1), 3)
    assert PendingCall.from_row(json.loads(json.dumps(lived.to_row()))) == lived
    # a row of three, from a run planned before ends and retries travelled
    assert PendingCall.from_row(["A" * 32, "grp-a", "2026-11-24T09:00:00Z"]) == PendingCall(
        "A" * 32, "grp-a", T0
    )


def test_detected_calls_carry_their_end_and_their_failed_attempts(ledger: Ledger) -> None:
    dialog = f"{7:032X}"
    ledger.apply(CdrStart(dialog, T0 + timedelta(minutes=50), CallIdentity(ocp_group="grp-a", lob="retail")))
    ledger.apply(CdrEnd(dialog, T0 + timedelta(minutes=70), 1_200_000, "NORMAL"))
    ledger.apply(AttemptFailed(dialog, "run-1", "recording not in export e1"))
    (found,) = detect(ledger, query()).calls
    assert (found.start, found.end, found.retry_count) == (
        T0 + timedelta(minutes=50),
        T0 + timedelta(minutes=70),
        1,
    )


def test_a_window_needs_both_ends_in_order() -> None:
    with pytest.raises(ValueError, match="give both window_start and window_end"):
        query(window_start=T0)
    with pytest.raises(ValueError, match="must be after window_start"):
        query(window_start=T0, window_end=T0)
