"""SQLite ledger backend: the embedded default.

WAL mode lets the receiver and several Airflow task processes read and write at once; a busy timeout
rides out short write locks. Atomic per-record writes are single statements guarded by the version
column. The pending list and the open-calls list are partial indexes (only pending, resp. open, rows are
in them), the SQLite twins of the DynamoDB sparse indexes. The audit outbox (``audit_outbox``) gets a
change's event row in the change's own transaction.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from ocp_ingest.ledger.base import OutboxEntry
from ocp_ingest.ledger.model import RECORD_FIELDS, CallRecord, format_ts, parse_ts

_INT_FIELDS = {"duration_ms", "retry_count", "size_bytes", "version"}
_BOOL_FIELDS = {"has_cdr_end", "file_received", "post_process_ok", "s3_stored"}


def _column_type(name: str) -> str:
    if name in _INT_FIELDS or name in _BOOL_FIELDS:
        return "INTEGER"
    if name == "audio_duration_s":
        return "REAL"
    return "TEXT"


#: Index keys derived from the record (never read back): the partial indexes below use them.
_DERIVED = ("pending_since", "open_since")
_COLUMNS = (*RECORD_FIELDS, *_DERIVED)
SCHEMA = f"""
CREATE TABLE IF NOT EXISTS calls (
    {", ".join(f"{n} {_column_type(n)}" for n in RECORD_FIELDS if n != "dialog_id")},
    dialog_id TEXT PRIMARY KEY,
    pending_since TEXT,
    open_since TEXT
);
CREATE INDEX IF NOT EXISTS calls_by_start ON calls (call_start_ts);
CREATE INDEX IF NOT EXISTS calls_by_group ON calls (ocp_group, call_start_ts);
CREATE INDEX IF NOT EXISTS calls_by_lob ON calls (lob, call_start_ts);
-- Hours of an OCP group whose dialog_end CDRs a completed export was diffed against (first one stands).
CREATE TABLE IF NOT EXISTS swept_hours (
    ocp_group TEXT NOT NULL,
    hour TEXT NOT NULL,
    export_id TEXT NOT NULL,
    swept_at TEXT NOT NULL,
    PRIMARY KEY (ocp_group, hour)
);
-- Audit events committed with their ledger change, waiting to be published to the Parquet trail.
CREATE TABLE IF NOT EXISTS audit_outbox (
    event_id TEXT PRIMARY KEY,
    created_at TEXT NOT NULL,
    body TEXT NOT NULL,
    claim TEXT,
    claimed_at TEXT
);
CREATE INDEX IF NOT EXISTS audit_outbox_by_age ON audit_outbox (created_at, event_id);
-- CDR events accepted by the receiver, until the realtime DAG rolls them into the hourly manifest.
CREATE TABLE IF NOT EXISTS cdr_inbox (
    event_id TEXT PRIMARY KEY,
    received_at TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS cdr_inbox_by_age ON cdr_inbox (received_at, event_id);
"""
_OUTBOX_INSERT = "INSERT INTO audit_outbox (event_id, created_at, body) VALUES (?, ?, ?)"
# After the migration below: a ledger created before a column existed gets it first.
INDEXES = """
CREATE INDEX IF NOT EXISTS calls_pending ON calls (pending_since) WHERE pending_since IS NOT NULL;
CREATE INDEX IF NOT EXISTS calls_open ON calls (open_since) WHERE open_since IS NOT NULL;
"""


def _row_values(record: CallRecord) -> dict[str, Any]:
    item = record.to_item()
    for name in _BOOL_FIELDS:
        item[name] = int(item[name])
    item["pending_since"] = format_ts(record.pending_since)
    item["open_since"] = format_ts(record.open_since)
    return item


class SqliteLedgerBackend:
    """Ledger records in one SQLite file (WAL), safe for several processes writing at once."""

    def __init__(self, path: str | Path, busy_timeout_s: float = 30.0) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Autocommit: every write is one atomic statement, so no transaction is held across calls.
        self._conn = sqlite3.connect(
            self.path, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False
        )
        self._conn.row_factory = sqlite3.Row
        self._lock = threading.Lock()
        with self._lock:
            self._open(busy_timeout_s)
        names = ", ".join(_COLUMNS)
        params = ", ".join(f":{n}" for n in _COLUMNS)
        self._insert = f"INSERT INTO calls ({names}) VALUES ({params}) ON CONFLICT(dialog_id) DO NOTHING"
        sets = ", ".join(f"{n} = :{n}" for n in _COLUMNS if n != "dialog_id")
        self._update = f"UPDATE calls SET {sets} WHERE dialog_id = :dialog_id AND version = :expected_version"

    def _open(self, busy_timeout_s: float) -> None:
        """WAL mode, schema and migration, retried while another process holds the file.

        SQLite answers "database is locked" at once, without waiting out the busy timeout, where waiting
        could deadlock: switching the journal mode, or opening while the last connection checkpoints.
        """
        deadline = time.monotonic() + busy_timeout_s
        pause = 0.01
        while True:
            try:
                # WAL is a property of the file: set it once, not on every open.
                mode = self._conn.execute("PRAGMA journal_mode").fetchone()[0]
                if str(mode).lower() != "wal":
                    self._conn.execute("PRAGMA journal_mode=WAL")
                self._conn.execute("PRAGMA synchronous=NORMAL")
                self._conn.executescript(SCHEMA)
                self._migrate()
                self._conn.executescript(INDEXES)
                return
            except sqlite3.OperationalError as error:
                if "locked" not in str(error) and "busy" not in str(error):
                    raise
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                if time.monotonic() + pause > deadline:
                    raise
                time.sleep(pause)
                pause = min(pause * 2, 0.5)

    def _migrate(self) -> None:
        """Add the columns a ledger file created by an older version lacks; fill the derived ones.

        A record field added later starts empty (None) on old rows. In one write transaction, re-checked
        inside it: processes opening the ledger at once migrate once.
        """

        def missing() -> list[str]:
            have = {row[1] for row in self._conn.execute("PRAGMA table_info(calls)")}
            return [name for name in _COLUMNS if name not in have]

        if not missing():
            return
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            added = missing()
            for name in added:
                self._conn.execute(f"ALTER TABLE calls ADD COLUMN {name} {_column_type(name)}")
            if any(name in _DERIVED for name in added):
                for row in self._conn.execute("SELECT * FROM calls").fetchall():
                    values = _row_values(self._record(row))
                    self._conn.execute(
                        "UPDATE calls SET pending_since = ?, open_since = ? WHERE dialog_id = ?",
                        (values["pending_since"], values["open_since"], values["dialog_id"]),
                    )
            self._conn.execute("COMMIT")
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise

    def check(self, timeout_s: float = 30.0) -> None:
        """Fail fast: the ledger file and its folder (WAL and shared-memory files live beside it) are
        writable and the file is a ledger; else :class:`~ocp_ingest.infrastructure.ResourceUnavailable`."""
        from ocp_ingest.infrastructure import ResourceUnavailable

        for target, what in ((self.path, "the file"), (self.path.parent, "its folder")):
            if not os.access(target, os.R_OK | os.W_OK):
                raise ResourceUnavailable(f"{what} is not writable by uid {os.geteuid()}")
        try:
            self._query("SELECT dialog_id FROM calls LIMIT 1")
        except sqlite3.Error as exc:
            raise ResourceUnavailable(f"not a usable ledger: {type(exc).__name__}: {exc}") from None

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    @staticmethod
    def _record(row: sqlite3.Row) -> CallRecord:
        return CallRecord.from_item(dict(row))

    def get(self, dialog_id: str) -> CallRecord | None:
        rows = self._query("SELECT * FROM calls WHERE dialog_id = ?", (dialog_id,))
        return self._record(rows[0]) if rows else None

    def get_many(self, dialog_ids: Sequence[str]) -> dict[str, CallRecord]:
        found: dict[str, CallRecord] = {}
        ids = list(dict.fromkeys(dialog_ids))
        for i in range(0, len(ids), 500):  # stay under SQLite's bound-parameter limit
            chunk = ids[i : i + 500]
            marks = ", ".join("?" for _ in chunk)
            for row in self._query(f"SELECT * FROM calls WHERE dialog_id IN ({marks})", chunk):
                found[row["dialog_id"]] = self._record(row)
        return found

    #: Entries one publisher claims (and puts in one audit file) at once.
    outbox_claim_limit = 5000

    def write(self, record: CallRecord, expected_version: int, outbox: OutboxEntry | None = None) -> bool:
        if outbox is not None:
            return self.write_many([(record, expected_version)], [[outbox]])[0]
        values = _row_values(record)
        with self._lock:
            if expected_version == 0:
                cursor = self._conn.execute(self._insert, values)
            else:
                cursor = self._conn.execute(self._update, {**values, "expected_version": expected_version})
        return cursor.rowcount == 1

    def write_many(
        self, items: Sequence[tuple[CallRecord, int]], outbox: Sequence[Sequence[OutboxEntry]] | None = None
    ) -> list[bool]:
        """Several :meth:`write` (record, expected version) in one transaction: one lock, one commit.

        Each record keeps its own version check; the result says, per record, whether it was written.
        ``outbox[i]``, if given, is stored iff record ``i`` is.
        """
        rows = [(_row_values(record), expected) for record, expected in items]
        entries = list(outbox) if outbox is not None else [()] * len(rows)
        written: list[bool] = []
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                for (values, expected), record_entries in zip(rows, entries, strict=True):
                    if expected == 0:
                        cursor = self._conn.execute(self._insert, values)
                    else:
                        cursor = self._conn.execute(self._update, {**values, "expected_version": expected})
                    ok = cursor.rowcount == 1
                    if ok and record_entries:
                        self._conn.executemany(
                            _OUTBOX_INSERT, [(e.event_id, e.created_at, e.body) for e in record_entries]
                        )
                    written.append(ok)
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
        return written

    def _transaction(self, sql: str, rows: Sequence[Sequence[Any]]) -> list[int]:
        """Run ``sql`` once per row in one write transaction; the row counts."""
        counts: list[int] = []
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                for row in rows:
                    counts.append(self._conn.execute(sql, row).rowcount)
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
        return counts

    def outbox_add(self, entries: Sequence[OutboxEntry]) -> None:
        sql = "INSERT OR IGNORE INTO audit_outbox (event_id, created_at, body) VALUES (?, ?, ?)"
        self._transaction(sql, [(e.event_id, e.created_at, e.body) for e in entries])

    def outbox_claim(self, event_ids: Sequence[str], claim: str, at: str) -> set[str]:
        sql = "UPDATE audit_outbox SET claim = ?, claimed_at = ? WHERE event_id = ? AND claim IS NULL"
        ids = list(dict.fromkeys(event_ids))
        counts = self._transaction(sql, [(claim, at, i) for i in ids])
        return {i for i, n in zip(ids, counts, strict=True) if n == 1}

    def outbox_list(self, created_before: str, limit: int) -> list[OutboxEntry]:
        rows = self._query(
            "SELECT event_id, body, created_at, claim, claimed_at FROM audit_outbox WHERE created_at < ? "
            "ORDER BY created_at, event_id LIMIT ?",
            (created_before, limit),
        )
        return [OutboxEntry(**dict(row)) for row in rows]

    def outbox_unclaim(self, event_ids: Sequence[str]) -> None:
        sql = "UPDATE audit_outbox SET claim = NULL, claimed_at = NULL WHERE event_id = ?"
        self._transaction(sql, [(i,) for i in event_ids])

    def outbox_delete(self, event_ids: Sequence[str]) -> None:
        self._transaction("DELETE FROM audit_outbox WHERE event_id = ?", [(i,) for i in event_ids])

    def cdr_inbox_add(self, events: Sequence[tuple[str, str]], at: str) -> list[bool | None]:
        outcomes: list[bool | None] = []
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                for event_id, body in events:
                    added = self._conn.execute(
                        "INSERT INTO cdr_inbox (event_id, received_at, body) VALUES (?, ?, ?) "
                        "ON CONFLICT(event_id) DO NOTHING",
                        (event_id, at, body),
                    ).rowcount
                    if added:
                        outcomes.append(True)
                        continue
                    (kept,) = self._conn.execute(
                        "SELECT body FROM cdr_inbox WHERE event_id = ?", (event_id,)
                    ).fetchone()
                    outcomes.append(False if kept == body else None)
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
        return outcomes

    def cdr_inbox_list(self, limit: int) -> list[tuple[str, str]]:
        rows = self._query(
            "SELECT event_id, body FROM cdr_inbox ORDER BY received_at, event_id LIMIT ?", (limit,)
        )
        return [(row["event_id"], row["body"]) for row in rows]

    def cdr_inbox_delete(self, event_ids: Sequence[str]) -> None:
        self._transaction(
            "DELETE FROM cdr_inbox WHERE event_id = ?", [(i,) for i in dict.fromkeys(event_ids)]
        )

    #: Rows per read of a sparse index: the lock is held per page, not for a whole backlog.
    SPARSE_PAGE = 5000

    def _sparse(
        self, column: str, before: datetime, limit: int | None, ocp_groups: Sequence[str] | None
    ) -> Iterator[CallRecord]:
        """Oldest first from a partial index (``pending_since`` or ``open_since``), page by page (keyset:
        after the last row's ``(column, dialog_id)``), until ``limit`` rows or the index ends. One page is
        held at a time, and the lock only while a page is read."""
        found = 0
        after: tuple[str, str] | None = None
        while limit is None or found < limit:
            sql = f"SELECT * FROM calls WHERE {column} IS NOT NULL AND {column} < ?"
            params: list[Any] = [format_ts(before)]
            if after is not None:
                sql += f" AND ({column}, dialog_id) > (?, ?)"
                params.extend(after)
            if ocp_groups:
                sql += f" AND ocp_group IN ({', '.join('?' for _ in ocp_groups)})"
                params.extend(ocp_groups)
            page = self.SPARSE_PAGE if limit is None else min(self.SPARSE_PAGE, limit - found)
            sql += f" ORDER BY {column}, dialog_id LIMIT ?"
            params.append(page)
            rows = self._query(sql, params)
            found += len(rows)
            for row in rows:
                yield self._record(row)
            if len(rows) < page:
                break
            after = (rows[-1][column], rows[-1]["dialog_id"])

    def iter_pending(
        self, ended_before: datetime, limit: int | None, ocp_groups: Sequence[str] | None = None
    ) -> Iterator[CallRecord]:
        return self._sparse("pending_since", ended_before, limit, ocp_groups)

    def iter_open_calls(
        self, started_before: datetime, limit: int | None, ocp_groups: Sequence[str] | None = None
    ) -> Iterator[CallRecord]:
        return self._sparse("open_since", started_before, limit, ocp_groups)

    def mark_swept(self, ocp_group: str, hours: Sequence[datetime], export_id: str, at: datetime) -> None:
        rows = [(ocp_group, format_ts(h), export_id, format_ts(at)) for h in hours]
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.executemany("INSERT OR IGNORE INTO swept_hours VALUES (?, ?, ?, ?)", rows)
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    def swept_hours(self, ocp_group: str, start: datetime, end: datetime) -> set[datetime]:
        rows = self._query(
            "SELECT hour FROM swept_hours WHERE ocp_group = ? AND hour >= ? AND hour < ?",
            (ocp_group, format_ts(start), format_ts(end)),
        )
        return {h for row in rows if (h := parse_ts(row["hour"])) is not None}

    def calls_started_between(
        self, start: datetime, end: datetime, ocp_group: str | None = None, lob: str | None = None
    ) -> Iterator[CallRecord]:
        sql = "SELECT * FROM calls WHERE call_start_ts >= ? AND call_start_ts < ?"
        params: list[Any] = [format_ts(start), format_ts(end)]
        if ocp_group is not None:
            sql += " AND ocp_group = ?"
            params.append(ocp_group)
        if lob is not None:
            sql += " AND lob = ?"
            params.append(lob)
        sql += " ORDER BY call_start_ts, dialog_id"
        for row in self._query(sql, params):
            yield self._record(row)

    def close(self) -> None:
        with self._lock:
            self._conn.close()
