"""SQLite specifics: the pending and open lists come from partial indexes; older ledger files migrate."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from ocp_ingest.ledger import Ledger
from ocp_ingest.ledger.model import TS_WIDTH, format_ts, parse_ts
from ocp_ingest.ledger.sqlite import SqliteLedgerBackend
from ocp_ingest.ledger.transitions import CdrEnd, CdrStart, FileReceived

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def test_pending_and_open_queries_use_their_partial_indexes(tmp_path: Path) -> None:
    backend = SqliteLedgerBackend(tmp_path / "ledger.sqlite3")
    try:
        for name, column in (("calls_pending", "pending_since"), ("calls_open", "open_since")):
            plan = backend._query(
                f"EXPLAIN QUERY PLAN SELECT * FROM calls WHERE {column} IS NOT NULL AND {column} < ? "
                f"ORDER BY {column}, dialog_id LIMIT 10",
                ("2026-11-20",),
            )
            assert any(name in row["detail"] for row in plan), [row["detail"] for row in plan]
    finally:
        backend.close()


def test_a_ledger_file_without_the_open_column_is_migrated_with_its_calls(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    ledger = Ledger(SqliteLedgerBackend(path))
    open_id, ended_id = "A" * 32, "B" * 32
    ledger.apply(CdrStart(open_id, T0))
    ledger.apply(CdrEnd(ended_id, T0, 1000, "NORMAL"))
    ledger.close()
    with sqlite3.connect(path) as conn:  # what a ledger written before the open-calls index looks like
        conn.execute("DROP INDEX calls_open")
        conn.execute("ALTER TABLE calls DROP COLUMN open_since")

    reopened = Ledger(SqliteLedgerBackend(path))
    try:
        later = T0 + timedelta(hours=5)
        assert [c.dialog_id for c in reopened.open_calls(timedelta(hours=1), 10, now=later)] == [open_id]
        assert [c.dialog_id for c in reopened.pending(timedelta(hours=1), 10, now=later)] == [ended_id]
    finally:
        reopened.close()


def test_a_ledger_file_without_a_later_record_field_gains_it(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    ledger = Ledger(SqliteLedgerBackend(path))
    ledger.apply(CdrStart("C" * 32, T0))
    ledger.close()
    with sqlite3.connect(path) as conn:  # a ledger written before the first-body claim existed
        conn.execute("ALTER TABLE calls DROP COLUMN received_sha256")

    reopened = Ledger(SqliteLedgerBackend(path))
    try:
        assert reopened.get("C" * 32).received_sha256 is None
        reopened.apply(FileReceived("C" * 32, "a" * 64, 10))
        assert reopened.get("C" * 32).received_sha256 == "a" * 64
    finally:
        reopened.close()


def test_connections_opening_a_fresh_ledger_file_at_once_all_open_it(tmp_path: Path) -> None:
    """Switching to WAL and creating the schema race when tasks open a new ledger together; SQLite
    answers "locked" there without waiting, so each open must wait its turn, never fail."""
    import threading

    errors: list[BaseException] = []

    def open_and_close(path: Path) -> None:
        try:
            for _ in range(5):
                SqliteLedgerBackend(path)._conn.close()
        except BaseException as error:
            errors.append(error)

    for trial in range(40):
        path = tmp_path / f"ledger-{trial}.sqlite3"
        threads = [threading.Thread(target=open_and_close, args=(path,)) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        mode = sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0]
        assert mode == "wal"


@pytest.mark.parametrize(
    "moment",
    [
        datetime(2026, 11, 25, 10, 0, tzinfo=UTC),
        datetime(2026, 11, 25, 10, 0, 0, 7, tzinfo=timezone(timedelta(hours=-5))),
        datetime(999, 1, 2, 3, 4, 5, 6, tzinfo=UTC),
    ],
)
def test_ledger_timestamps_are_fixed_width_utc_text_and_read_back_exactly(moment: datetime) -> None:
    text = format_ts(moment)
    assert len(text) == TS_WIDTH and text.endswith("Z")
    assert parse_ts(text) == moment
    with pytest.raises(ValueError, match="timezone-aware"):
        format_ts(moment.replace(tzinfo=None))


def test_a_record_with_every_field_set_is_stored_as_plain_values_and_read_back_equal() -> None:
    from dataclasses import fields

    from ocp_ingest.ledger import CallRecord, CallStatus, IngestionSource, TerminalState

    moment = datetime(2026, 12, 5, 1, 2, 3, 456789, tzinfo=UTC)
    record = CallRecord("A" * 32, call_status=CallStatus.COMPLETED, ingestion_source=IngestionSource.REALTIME)
    record.terminal_state = TerminalState.NO_RECORDING_EXPECTED
    for f in fields(CallRecord):
        if f.name.endswith(("_ts", "_at")):
            setattr(record, f.name, moment)
        elif getattr(record, f.name) is None:
            numbers = {"audio_duration_s": 1.5, "duration_ms": 7000, "size_bytes": 56000}
            setattr(record, f.name, numbers.get(f.name, f"{f.name}-value"))
    item = record.to_item()
    assert set(item) == {f.name for f in fields(CallRecord)}
    assert all(type(v) in (str, int, float, bool) for v in item.values()), item  # JSON-able as it is
    assert item["call_start_ts"] == format_ts(moment) and item["call_status"] == "COMPLETED"
    assert item["terminal_state"] == TerminalState.NO_RECORDING_EXPECTED.value
    assert CallRecord.from_item(item) == record
