"""Ledger contract: identical behaviour on SQLite and DynamoDB (moto server)."""

from __future__ import annotations

import multiprocessing
from datetime import UTC, datetime, timedelta

import pytest

from ocp_ingest.ledger import CallStatus, IngestionSource, Ledger, Outcome, TerminalState
from ocp_ingest.ledger.transitions import (
    AttemptFailed,
    AudioRejected,
    CallIdentity,
    CdrEnd,
    CdrStart,
    ExportRequested,
    FileReceived,
    IvrEnd,
    MarkTerminal,
    Stored,
)
from tests.ledger.conftest import make_backend

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
SHA_A = "a" * 64
SHA_B = "b" * 64
IDENTITY = CallIdentity(
    dialog_group="DG1", ocp_group="grp-retail", account_id="acc1", flow_name="retail_main", lob="retail"
)


def did(n: int) -> str:
    return f"{n:032X}"


def stored(dialog_id: str, sha: str = SHA_A, source: IngestionSource = IngestionSource.REALTIME) -> Stored:
    return Stored(dialog_id, f"file:///rec/{dialog_id}.wav", sha, 1000, source, "wav", 30.0)


def test_happy_lifecycle_sets_every_flag_with_its_time(ledger: Ledger) -> None:
    d = did(1)
    ledger.clock = lambda: T0
    ledger.apply(CdrStart(d, T0, IDENTITY))
    assert ledger.get(d).call_status is CallStatus.ACTIVE
    ledger.clock = lambda: T0 + timedelta(minutes=3)
    ledger.apply(CdrEnd(d, T0 + timedelta(minutes=3), 180_000, "NORMAL"))
    ledger.clock = lambda: T0 + timedelta(minutes=3, seconds=5)
    ledger.apply(FileReceived(d, SHA_A, 1000))
    ledger.clock = lambda: T0 + timedelta(minutes=3, seconds=9)
    result = ledger.apply(stored(d))

    assert result.outcome is Outcome.APPLIED
    call = ledger.get(d)
    assert call.call_status is CallStatus.COMPLETED
    assert (call.has_cdr_end, call.file_received, call.post_process_ok, call.s3_stored) == (True,) * 4
    assert call.ingestion_source is IngestionSource.REALTIME
    assert call.cdr_end_at == T0 + timedelta(minutes=3)
    assert call.file_received_at == T0 + timedelta(minutes=3, seconds=5)  # first time, not the store's
    assert call.s3_stored_at == T0 + timedelta(minutes=3, seconds=9)
    assert call.call_start_ts == T0 and call.duration_ms == 180_000 and call.end_type == "NORMAL"
    assert (call.ocp_group, call.lob, call.sha256, call.object_url) == (
        "grp-retail",
        "retail",
        SHA_A,
        f"file:///rec/{d}.wav",
    )
    assert call.version == 4


def test_duplicate_events_change_nothing(ledger: Ledger) -> None:
    d = did(2)
    ledger.apply(CdrStart(d, T0, IDENTITY))
    ledger.apply(CdrEnd(d, T0 + timedelta(minutes=1), 60_000, "FAR_HUP"))
    before = ledger.get(d)
    assert ledger.apply(CdrEnd(d, T0 + timedelta(minutes=1), 60_000, "FAR_HUP")).outcome is Outcome.UNCHANGED
    assert ledger.apply(CdrStart(d, T0, IDENTITY)).outcome is Outcome.UNCHANGED
    assert ledger.get(d) == before


def test_out_of_order_events_never_move_a_call_backwards(ledger: Ledger) -> None:
    d = did(3)
    end = T0 + timedelta(minutes=2)
    ledger.apply(CdrEnd(d, end, 120_000, "TRANSFER", IDENTITY))  # dialog_end first
    call = ledger.get(d)
    assert call.call_status is CallStatus.FINISHED_AGENT
    assert call.call_start_ts == T0  # derived from end - duration until dialog_start says otherwise
    ledger.apply(CdrStart(d, T0 + timedelta(seconds=1)))  # late start keeps what we have
    ledger.apply(IvrEnd(d, end, 99_000, "menu_timeout"))  # late IVR end: no status or duration regress
    call = ledger.get(d)
    assert call.call_status is CallStatus.FINISHED_AGENT and call.has_cdr_end
    assert call.duration_ms == 120_000 and call.ivr_end_reason == "menu_timeout"
    ledger.apply(stored(d))
    ledger.apply(CdrEnd(d, end, 120_000, "TRANSFER"))
    ledger.apply(AudioRejected(d, "late verdict"))
    call = ledger.get(d)
    assert call.call_status is CallStatus.COMPLETED and call.s3_stored and call.last_error is None


def test_ivr_end_then_dialog_end(ledger: Ledger) -> None:
    d = did(4)
    ledger.apply(CdrStart(d, T0, IDENTITY))
    ledger.apply(IvrEnd(d, T0 + timedelta(seconds=40), 40_000, "caller_hangup"))
    call = ledger.get(d)
    assert call.call_status is CallStatus.FINISHED_IVR and not call.has_cdr_end
    assert call.duration_ms == 40_000
    ledger.apply(CdrEnd(d, T0 + timedelta(seconds=41), 41_000, "NEAR_HUP"))
    call = ledger.get(d)
    assert call.call_status is CallStatus.FINISHED_IVR and call.has_cdr_end and call.duration_ms == 41_000


def test_audio_before_cdr_is_kept(ledger: Ledger) -> None:
    d = did(5)
    assert ledger.apply(FileReceived(d, SHA_A, 1000)).outcome is Outcome.APPLIED
    call = ledger.get(d)
    assert call.file_received and not call.has_cdr_end and call.call_status is CallStatus.ACTIVE
    ledger.apply(CdrEnd(d, T0, 1000, "NORMAL", IDENTITY))
    assert ledger.get(d).file_received and ledger.get(d).ocp_group == "grp-retail"


def test_second_store_same_bytes_is_already_stored_different_bytes_conflict(ledger: Ledger) -> None:
    d = did(6)
    ledger.apply(CdrEnd(d, T0, 1000, "NORMAL", IDENTITY))
    assert ledger.apply(stored(d)).outcome is Outcome.APPLIED
    first = ledger.get(d)
    again = ledger.apply(stored(d, source=IngestionSource.RECONCILIATION))
    assert again.outcome is Outcome.ALREADY_STORED and again.record == first
    assert ledger.apply(stored(d, SHA_B)).outcome is Outcome.CONFLICT
    assert ledger.apply(FileReceived(d, SHA_B, 5)).outcome is Outcome.CONFLICT
    assert ledger.get(d) == first  # source stays REALTIME, sha stays A


def test_rejected_audio_leaves_the_call_pending(ledger: Ledger) -> None:
    d = did(7)
    ledger.apply(CdrEnd(d, T0, 1000, "NORMAL", IDENTITY))
    ledger.apply(FileReceived(d, SHA_A, 1000))
    ledger.apply(AudioRejected(d, "data chunk claims 4294967295 bytes"))
    call = ledger.get(d)
    assert call.file_received and not call.post_process_ok and not call.s3_stored
    assert call.last_error == "data chunk claims 4294967295 bytes"
    assert [c.dialog_id for c in ledger.pending(timedelta(0), 10, now=T0 + timedelta(hours=1))] == [d]


def test_attempts_are_counted_once_per_attempt_id(ledger: Ledger) -> None:
    d = did(8)
    ledger.apply(CdrEnd(d, T0, 1000, "NORMAL", IDENTITY))
    ledger.apply(ExportRequested(d, "exp-1"))
    assert ledger.apply(AttemptFailed(d, "run-1", "not in export")).outcome is Outcome.APPLIED
    assert ledger.apply(AttemptFailed(d, "run-1", "not in export")).outcome is Outcome.UNCHANGED
    ledger.apply(AttemptFailed(d, "run-2", "export failed"))
    call = ledger.get(d)
    assert call.retry_count == 2 and call.export_id == "exp-1" and call.last_error == "export failed"


def test_terminal_states_are_final_but_a_stored_recording_wins(ledger: Ledger) -> None:
    d, e = did(9), did(10)
    for x in (d, e):
        ledger.apply(CdrEnd(x, T0, 1000, "NORMAL", IDENTITY))
    ledger.apply(MarkTerminal(d, TerminalState.NO_RECORDING_EXPECTED, "non-SIP call"))
    again = ledger.apply(MarkTerminal(d, TerminalState.UNRECOVERABLE_MAX_ATTEMPTS, "5 attempts"))
    assert again.outcome is Outcome.UNCHANGED
    call = ledger.get(d)
    assert (
        call.terminal_state is TerminalState.NO_RECORDING_EXPECTED and call.terminal_reason == "non-SIP call"
    )
    assert ledger.apply(AttemptFailed(d, "run-9", "x")).outcome is Outcome.UNCHANGED
    # The recording shows up after all: storing beats the escalation.
    assert ledger.apply(stored(d)).outcome is Outcome.APPLIED
    assert ledger.get(d).terminal_state is None and ledger.get(d).s3_stored
    ledger.apply(stored(e))
    assert ledger.apply(MarkTerminal(e, TerminalState.UNRECOVERABLE_RETENTION, "x")).outcome is (
        Outcome.ALREADY_STORED
    )


def test_pending_query_oldest_first_with_grace_limit_and_groups(ledger: Ledger) -> None:
    now = T0 + timedelta(days=3)
    ends = {did(100 + i): T0 + timedelta(days=i % 3, minutes=i) for i in range(12)}
    for i, (d, end) in enumerate(ends.items()):
        group = "grp-a" if i % 2 else "grp-b"
        ledger.apply(CdrEnd(d, end, 1000, "NORMAL", CallIdentity(ocp_group=group)))
    ledger.apply(CdrStart(did(200), T0))  # no dialog_end: not pending
    stored_one, terminal_one = did(100), did(101)
    ledger.apply(stored(stored_one))
    ledger.apply(MarkTerminal(terminal_one, TerminalState.NO_RECORDING_EXPECTED, "non-SIP"))
    fresh = did(300)
    ledger.apply(CdrEnd(fresh, now - timedelta(minutes=1), 1000, "NORMAL"))  # inside the grace period

    expected = sorted((end, d) for d, end in ends.items() if d not in (stored_one, terminal_one))
    got = ledger.pending(timedelta(minutes=15), 100, now=now)
    assert [c.dialog_id for c in got] == [d for _, d in expected]
    assert [c.dialog_id for c in ledger.pending(timedelta(minutes=15), 3, now=now)] == [
        d for _, d in expected[:3]
    ]
    only_a = ledger.pending(timedelta(minutes=15), 100, ["grp-a"], now=now)
    assert only_a and {c.ocp_group for c in only_a} == {"grp-a"}
    assert fresh in [c.dialog_id for c in ledger.pending(timedelta(0), 100, now=now + timedelta(seconds=1))]


def test_pending_without_a_limit_reads_every_page_oldest_first(ledger: Ledger, monkeypatch) -> None:
    """No ceiling: every pending call, across pages (SQLite reads its index in keyset pages; a page of 7
    here, so ties on the end time straddle page boundaries)."""
    if hasattr(ledger.backend, "SPARSE_PAGE"):
        monkeypatch.setattr(ledger.backend, "SPARSE_PAGE", 7)
    now = T0 + timedelta(days=1)
    ends = {did(600 + i): T0 + timedelta(minutes=i // 3) for i in range(40)}  # three calls per minute
    for d, end in ends.items():
        ledger.apply(CdrEnd(d, end, 1000, "NORMAL", CallIdentity(ocp_group="grp-a")))
    expected = [d for _, d in sorted((end, d) for d, end in ends.items())]
    assert [c.dialog_id for c in ledger.pending(timedelta(0), None, now=now)] == expected
    assert [c.dialog_id for c in ledger.pending(timedelta(0), 16, now=now)] == expected[:16]
    for i in range(5):  # open calls (a dialog_start only): the other sparse index, unbounded too
        ledger.apply(CdrStart(did(700 + i), T0))
    assert len(ledger.open_calls(timedelta(0), None, now=now)) == 5


def test_open_calls_query_finds_calls_whose_dialog_end_never_came(ledger: Ledger) -> None:
    now = T0 + timedelta(hours=10)
    starts = {did(400 + i): T0 + timedelta(minutes=7 * i) for i in range(6)}
    for i, (d, start) in enumerate(starts.items()):
        ledger.apply(CdrStart(d, start, CallIdentity(ocp_group="grp-a" if i % 2 else "grp-b")))
    ended, stored_one, terminal_one = did(400), did(401), did(402)
    ledger.apply(CdrEnd(ended, T0 + timedelta(hours=1), 1000, "NORMAL"))  # pending now, no longer open
    ledger.apply(stored(stored_one))
    ledger.apply(MarkTerminal(terminal_one, TerminalState.UNRECOVERABLE_MAX_ATTEMPTS, "gave up"))
    recent = did(500)
    ledger.apply(CdrStart(recent, now - timedelta(minutes=5)))  # may still be going on
    ivr_only = did(501)  # an IVR end is not a dialog_end: still open, ordered by its time
    ledger.apply(IvrEnd(ivr_only, T0 + timedelta(hours=2), 1000, "hangup", CallIdentity(ocp_group="grp-a")))

    got = ledger.open_calls(timedelta(hours=1), 100, now=now)
    expected = [d for d in starts if d not in (ended, stored_one, terminal_one)] + [ivr_only]
    assert [c.dialog_id for c in got] == expected
    assert all(not c.has_cdr_end for c in got)
    assert [c.dialog_id for c in ledger.open_calls(timedelta(hours=1), 2, now=now)] == expected[:2]
    assert {c.ocp_group for c in ledger.open_calls(timedelta(hours=1), 100, ["grp-a"], now=now)} == {"grp-a"}
    assert recent in [c.dialog_id for c in ledger.open_calls(timedelta(0), 100, now=now)]
    assert ledger.open_calls(timedelta(hours=1), 0, now=now) == []

    # Its dialog_end arrives late (or the manifest diff supplies it): it moves to the pending list.
    late = expected[0]
    ledger.apply(CdrEnd(late, starts[late] + timedelta(minutes=3), 180_000, "NORMAL"))
    assert late not in [c.dialog_id for c in ledger.open_calls(timedelta(hours=1), 100, now=now)]
    assert late in [c.dialog_id for c in ledger.pending(timedelta(0), 100, now=now)]


def test_swept_hours_are_remembered_per_group_and_the_first_sweep_stands(ledger: Ledger) -> None:
    day = T0.replace(hour=0)
    assert ledger.swept_hours("grp-a", day, day + timedelta(days=2)) == set()
    ledger.mark_swept("grp-a", day + timedelta(hours=3), day + timedelta(hours=6), "exp-1")
    ledger.mark_swept("grp-a", day + timedelta(hours=5), day + timedelta(hours=7), "exp-2")  # overlaps
    ledger.mark_swept("grp-b", day, day + timedelta(hours=1), "exp-3")
    assert ledger.swept_hours("grp-a", day, day + timedelta(days=2)) == {
        day + timedelta(hours=h) for h in (3, 4, 5, 6)
    }
    assert ledger.swept_hours("grp-a", day + timedelta(hours=4), day + timedelta(hours=6)) == {
        day + timedelta(hours=4),
        day + timedelta(hours=5),
    }
    assert ledger.swept_hours("grp-b", day, day + timedelta(days=2)) == {day}
    assert ledger.get_many([did(1)]) == {}  # sweep bookkeeping is not a call


def test_window_queries_and_counts(ledger: Ledger) -> None:
    for i in range(6):
        d = did(400 + i)
        lob = "retail" if i < 4 else "cards"
        ledger.apply(CdrStart(d, T0 + timedelta(hours=i), CallIdentity(ocp_group=f"grp-{i % 2}", lob=lob)))
        if i >= 1:
            ledger.apply(CdrEnd(d, T0 + timedelta(hours=i, minutes=1), 60_000, "NORMAL"))
    ledger.apply(stored(did(401)))
    ledger.apply(MarkTerminal(did(402), TerminalState.NO_RECORDING_EXPECTED, "non-SIP"))
    window = list(ledger.calls_started_between(T0, T0 + timedelta(hours=5)))
    assert [c.dialog_id for c in window] == [did(400 + i) for i in range(5)]  # half-open window
    assert [c.dialog_id for c in ledger.calls_started_between(T0, T0 + timedelta(days=1), lob="cards")] == [
        did(404),
        did(405),
    ]
    assert len(list(ledger.calls_started_between(T0, T0 + timedelta(days=1), ocp_group="grp-1"))) == 3
    assert ledger.counts_by_state(T0, T0 + timedelta(days=1)) == {
        "OPEN": 1,
        "STORED": 1,
        "TERMINAL:NO_RECORDING_EXPECTED": 1,
        "PENDING": 3,
    }


def test_get_many(ledger: Ledger) -> None:
    ids = [did(500 + i) for i in range(130)]  # more than one DynamoDB batch
    for d in ids:
        ledger.apply(CdrStart(d, T0))
    found = ledger.get_many([*ids, did(999)])
    assert set(found) == set(ids)


# --- several processes at once -------------------------------------------------------------


def _hammer(spec: dict[str, str], worker: int, calls: int, queue: multiprocessing.Queue) -> None:
    ledger = Ledger(make_backend(spec))
    outcomes = []
    for n in range(calls):
        d = did(10_000 + n)
        ledger.apply(CdrStart(d, T0, IDENTITY))
        ledger.apply(CdrEnd(d, T0 + timedelta(minutes=1), 60_000, "NORMAL"))
        ledger.apply(AttemptFailed(d, f"run-{worker}", "missing"))
        # Every worker tries to store every call: exactly one may win per call.
        result = ledger.apply(stored(d, source=IngestionSource(("REALTIME", "RECONCILIATION")[worker % 2])))
        outcomes.append((d, result.outcome.value))
    ledger.close()
    queue.put(outcomes)


@pytest.mark.slow
def test_concurrent_writers_from_several_processes(ledger: Ledger, ledger_spec: dict[str, str]) -> None:
    workers, calls = 4, 25
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    procs = [context.Process(target=_hammer, args=(ledger_spec, w, calls, queue)) for w in range(workers)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=180) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    by_call: dict[str, list[str]] = {}
    for outcomes in results:
        for d, outcome in outcomes:
            by_call.setdefault(d, []).append(outcome)
    assert len(by_call) == calls
    for d, outcomes in by_call.items():
        assert sorted(outcomes) == ["ALREADY_STORED"] * (workers - 1) + ["APPLIED"], d
        call = ledger.get(d)
        assert call.s3_stored and call.call_status is CallStatus.COMPLETED
        # Each worker's attempt counted once, unless the call was already stored when it tried.
        assert 1 <= call.retry_count <= workers
