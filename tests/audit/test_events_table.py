"""The audit rows' Parquet table, built by Arrow's JSON reader from the events' outbox form: the same rows
``AuditEvent.row`` describes, whatever the values, and no pandas import in the process writing them."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa
import pytest

from ocp_ingest.audit.events import AuditEvent
from ocp_ingest.audit.schema import AUDIT_EVENT_SCHEMA
from ocp_ingest.audit.sink import events_table

T = datetime(2026, 12, 4, 16, 37, 31, 390271, tzinfo=UTC)


def expected_row(event: AuditEvent) -> dict:
    """The row as the schema keeps it: UTC without a zone, cut to milliseconds; no partition column."""
    row = event.row()
    for name, value in row.items():
        if isinstance(value, datetime):
            row[name] = value.replace(microsecond=value.microsecond // 1000 * 1000)
    return row


EVENTS = [
    AuditEvent("STORED", T, "d-1", lob="retail", size_bytes=2**40, retry_count=2**31 - 1, ledger_version=3),
    # a zone other than UTC, the last microsecond of a millisecond, every optional value empty
    AuditEvent("CDR_END", T.astimezone(timezone(timedelta(hours=-5))).replace(microsecond=999999), None),
    # text that JSON must escape, and characters beyond the basic plane
    AuditEvent(
        "ESCALATED",
        T - timedelta(days=400),
        'd-"3"\\',
        detail="línea\nnueva \t\u0000 😀 \u2028",
        call_start_ts=T - timedelta(days=401),
        call_end_ts=T - timedelta(days=401, microseconds=-1),
        object_url="file:///r/x y.wav",
    ),
]


def test_the_table_holds_every_value_as_the_row_says() -> None:
    table = events_table([e.to_json() for e in EVENTS])
    assert table.schema == AUDIT_EVENT_SCHEMA
    assert table.to_pylist() == [expected_row(e) for e in EVENTS]


def test_an_event_longer_than_the_readers_default_block_is_kept_whole() -> None:
    events = [EVENTS[0], AuditEvent("ESCALATED", T, "d-long", detail="x" * (3 << 20))]
    assert events_table([e.to_json() for e in events]).to_pylist() == [expected_row(e) for e in events]


def test_ordered_rows_go_by_event_time_then_event_id() -> None:
    same_ms = [AuditEvent("STORED", T.replace(microsecond=390999), "a", event_id="b" * 32)]
    events = [*EVENTS, *same_ms, AuditEvent("STORED", T, "b", event_id="0" * 32)]
    table = events_table([e.to_json() for e in reversed(events)], ordered=True)
    order = sorted(events, key=lambda e: (e.event_ts, e.event_id))
    assert table.column("event_id").to_pylist() == [e.event_id for e in order]


def test_no_events_make_an_empty_table_with_the_schema() -> None:
    assert events_table([]).schema == AUDIT_EVENT_SCHEMA
    assert events_table([]).num_rows == 0


def test_a_body_that_is_not_an_event_is_refused_not_written_half() -> None:
    with pytest.raises(pa.ArrowInvalid):
        events_table([EVENTS[0].to_json(), '{"event_id": "x", "event_ts": "not a time"'])


def test_writing_audit_rows_never_imports_pandas(tmp_path: Path) -> None:
    # pyarrow imports pandas (seconds of CPU holding the GIL) on its first array built from Python values:
    # a fresh process that applies, publishes and reads back audit events must not pay for it.
    script = f"""
import sys
from datetime import UTC, datetime
from ocp_ingest.audit.sink import AuditSink
from ocp_ingest.audit.tables import read_events
from ocp_ingest.ledger import Ledger
from ocp_ingest.ledger.sqlite import SqliteLedgerBackend
from ocp_ingest.ledger.transitions import CallIdentity, CdrEnd
sink = AuditSink({(tmp_path / "audit").as_uri()!r}, actor="test")
with Ledger(SqliteLedgerBackend({str(tmp_path / "ledger.db")!r}), audit=sink) as ledger:
    now = datetime.now(UTC)
    for i in range(3):
        ledger.apply(CdrEnd(f"d-{{i}}", now, 1000, "NORMAL", CallIdentity(ocp_group="g", lob="retail")))
    ledger.flush_audit()
print(len(sink.files_written), "pandas" in sys.modules)
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["1", "False"]
