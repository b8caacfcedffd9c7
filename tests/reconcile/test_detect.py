"""detect: the backfill's groups and the run's request, checked on a SQLite ledger."""

from __future__ import annotations

import json
import weakref
from datetime import UTC, datetime, timedelta

import pytest

from ocp_ingest.ledger import CallRecord, Ledger
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


def test_a_backlog_over_many_pages_is_detected_whole_oldest_first_holding_one_page_of_records(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Detection reads the pending and open-calls indexes page by page and keeps compact rows only: no
    more than one page of ledger records is alive at any time, and the merge of both lists is the same as
    sorting them whole (a call's age is its end, or its start while its end is unknown)."""
    monkeypatch.setattr(ledger.backend, "SPARSE_PAGE", 5)
    for n in range(23):  # ended calls, three per minute: ties straddle the pages
        ledger.apply(
            CdrEnd(f"{n:032X}", T0 + timedelta(minutes=n // 3), 60_000, "NORMAL", CallIdentity(ocp_group="g"))
        )
    for n in range(100, 104):  # open calls, started among the ends
        started(ledger, n, T0 + timedelta(minutes=2 * (n - 100)), "g", "retail")
    now = T0 + timedelta(days=1)
    whole = ledger.pending(timedelta(0), None, now=now) + ledger.open_calls(HOUR, None, now=now)
    expected = [
        r.dialog_id for r in sorted(whole, key=lambda r: (r.pending_since or r.open_since, r.dialog_id))
    ]
    assert len(expected) == 27

    made: list[weakref.ref[CallRecord]] = []
    most_alive = 0
    record_of_row = ledger.backend._record  # type: ignore[attr-defined]

    def tracked(row):  # type: ignore[no-untyped-def]
        nonlocal most_alive
        record = record_of_row(row)
        made.append(weakref.ref(record))
        most_alive = max(most_alive, sum(1 for r in made if r() is not None))
        return record

    monkeypatch.setattr(ledger.backend, "_record", tracked)
    full = PendingQuery(grace=timedelta(0), limit=None, open_after=HOUR)
    calls = detect_calls(ledger, full, now)
    assert [c.dialog_id for c in calls] == expected
    assert len(made) == 27  # each record read once
    assert most_alive <= 5  # never more than a page of records at once (holding them whole: 27)
    limited = PendingQuery(grace=timedelta(0), limit=10, open_after=HOUR)
    assert [c.dialog_id for c in detect_calls(ledger, limited, now)] == expected[:10]


def detect_calls(ledger: Ledger, query: PendingQuery, now: datetime) -> list[PendingCall]:
    from ocp_ingest.reconcile.detect import detect_pending

    return detect_pending(ledger, query, now=now)
