"""The audit tables on storage: reading events, the daily ledger snapshot, compaction, SQL and DDL.

- ``audit_events/dt=YYYY-MM-DD/lob=<lob>/part-<uuid>.parquet``: written by the sink, never rewritten;
  :func:`compact_day` merges a day's small files into new ones, records what it replaced in
  ``audit_compactions/dt=YYYY-MM-DD/lob=<lob>/compaction-<uuid>.json`` and only then removes the old files.
- ``ledger_snapshot/dt=YYYY-MM-DD/part-NNNNN.parquet``: every call's state as of that day, a derived table
  (re-running the snapshot for a day replaces that day's files).
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from ocp_ingest.audit.schema import AUDIT_EVENT_SCHEMA, LEDGER_SNAPSHOT_SCHEMA
from ocp_ingest.audit.sink import parquet_bytes
from ocp_ingest.config import Settings
from ocp_ingest.ledger import Ledger, state_label
from ocp_ingest.ledger.model import CallRecord
from ocp_ingest.storage import (
    ObjectPath,
    is_local,
    local_path,
    object_path,
    sha256_of,
    write_create_only,
)
from ocp_ingest.storage.layout import (
    AUDIT_EVENTS_TABLE,
    SNAPSHOT_TABLE,
    audit_events_day,
    new_audit_compaction_record,
    new_audit_events_file,
    snapshot_file,
    snapshot_folder,
)

log = logging.getLogger(__name__)

SNAPSHOT_ROWS_PER_FILE = 100_000
# include/sql next to the package (editable install / project image); the analyst queries and the DDL.
SQL_DIR = Path(__file__).resolve().parents[2] / "sql"
QUERIES = ("completeness_by_day_lob", "recovered_share", "latency_percentiles", "unresolved_calls")


def day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time(), tzinfo=UTC)
    return start, start + timedelta(days=1)


def _naive_utc(value: Any) -> Any:
    return value.astimezone(UTC).replace(tzinfo=None) if isinstance(value, datetime) else value


# ------------------------------------------------------------------------------------ reading events
def event_files(audit_url: str, day: date, lob: str | None = None) -> list[ObjectPath]:
    """The Parquet files of one day (optionally one LOB) of ``audit_events``."""
    root = audit_events_day(audit_url, day)
    if not root.exists():
        return []
    dirs = [root / f"lob={lob}"] if lob else [p for p in root.iterdir() if p.name.startswith("lob=")]
    return sorted(
        (f for d in dirs if d.exists() for f in d.iterdir() if f.name.endswith(".parquet")), key=str
    )


def _read(path: ObjectPath) -> pa.Table:
    with path.open("rb") as handle:
        return pq.read_table(handle, schema=AUDIT_EVENT_SCHEMA)


def read_events(audit_url: str, first: date, last: date, lob: str | None = None) -> pa.Table:
    """Events of the days ``first..last`` with their ``dt`` and ``lob`` partition columns."""
    tables = []
    day = first
    while day <= last:
        for path in event_files(audit_url, day, lob):
            table = _read(path)
            lob_value = path.parent.name.removeprefix("lob=")
            table = table.append_column("dt", pa.array([f"{day:%Y-%m-%d}"] * len(table), pa.string()))
            tables.append(table.append_column("lob", pa.array([lob_value] * len(table), pa.string())))
        day += timedelta(days=1)
    if not tables:
        schema = AUDIT_EVENT_SCHEMA.append(pa.field("dt", pa.string())).append(pa.field("lob", pa.string()))
        return schema.empty_table()
    return pa.concat_tables(tables)


# ------------------------------------------------------------------------------------- compaction
@dataclass
class Compaction:
    day: str
    lob: str
    replaced: list[dict[str, Any]] = field(default_factory=list)
    written: str | None = None
    rows: int = 0
    manifest: str | None = None


def compact_day(audit_url: str, day: date) -> list[Compaction]:
    """Merge each LOB's files of ``day`` into one new file; record and then remove what it replaced.

    Files are never rewritten: the merged file is new (create-only), verified by reading it back (same
    event ids), the replaced files are listed with their SHA-256 in a manifest, and only then removed.
    A crash in between leaves duplicates of whole files, which the next compaction removes (by event id).
    """
    done = []
    root = audit_events_day(audit_url, day)
    lobs = sorted(p.name.removeprefix("lob=") for p in root.iterdir()) if root.exists() else []
    for lob in lobs:
        files = event_files(audit_url, day, lob)
        if len(files) < 2:
            continue
        result = Compaction(f"{day:%Y-%m-%d}", lob)
        tables = []
        for path in files:
            table = _read(path)
            sha, size = sha256_of(path)
            result.replaced.append({"file": str(path), "sha256": sha, "size": size, "rows": len(table)})
            tables.append(table)
        merged = pa.concat_tables(tables)
        _, first = _unique_rows(merged)
        merged = merged.take(first).sort_by([("event_ts", "ascending"), ("event_id", "ascending")])
        dest = new_audit_events_file(audit_url, day, lob)
        write_create_only(dest, [parquet_bytes(merged)])
        check = _read(dest)
        if set(check.column("event_id").to_pylist()) != set(merged.column("event_id").to_pylist()):
            raise RuntimeError(f"compacted file {dest} does not hold the merged events; nothing removed")
        result.written, result.rows = str(dest), len(check)
        record = new_audit_compaction_record(audit_url, day, lob)
        body = {
            "day": result.day,
            "lob": lob,
            "compacted_at": datetime.now(UTC).isoformat(),
            "written": {"file": str(dest), "rows": len(check), "sha256": sha256_of(dest)[0]},
            "replaced": result.replaced,
        }
        write_create_only(record, [json.dumps(body, indent=1, sort_keys=True).encode()])
        result.manifest = str(record)
        for path in files:
            path.unlink()
        log.info("compacted %d files (%d events) of %s/%s into %s", len(files), result.rows, day, lob, dest)
        done.append(result)
    return done


def _unique_rows(table: pa.Table) -> tuple[int, list[int]]:
    seen: set[str] = set()
    keep = []
    for index, event_id in enumerate(table.column("event_id").to_pylist()):
        if event_id not in seen:
            seen.add(event_id)
            keep.append(index)
    return len(keep), keep


# ---------------------------------------------------------------------------------------- snapshot
def snapshot_row(record: CallRecord) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for name in LEDGER_SNAPSHOT_SCHEMA.names:
        if name == "state":
            row[name] = state_label(record)
            continue
        value = getattr(record, name)
        row[name] = value.value if hasattr(value, "value") else _naive_utc(value)
    return row


def write_snapshot(ledger: Ledger, settings: Settings, day: date) -> list[str]:
    """Every call started within the retention horizon before the end of ``day``, as of now.

    Uses the ledger's windowed query (``calls_started_between``), never a full scan; calls older than the
    horizon were settled long ago and stay in earlier snapshots.
    """
    _, end = day_bounds(day)
    start = end - timedelta(days=settings.ocp_retention_days + 30)
    root = snapshot_folder(settings.audit_url, day)
    if root.exists():  # a derived table: a re-run for the same day replaces it
        for old in root.iterdir():
            old.unlink()
    written: list[str] = []
    rows: list[dict[str, Any]] = []

    def flush() -> None:
        dest = snapshot_file(settings.audit_url, day, len(written))
        table = pa.Table.from_pylist(rows, schema=LEDGER_SNAPSHOT_SCHEMA)
        write_create_only(dest, [parquet_bytes(table)])
        written.append(str(dest))
        rows.clear()

    for record in ledger.calls_started_between(start, end):
        rows.append(snapshot_row(record))
        if len(rows) >= SNAPSHOT_ROWS_PER_FILE:
            flush()
    if rows or not written:
        flush()  # an empty day still gets a (zero-row) file, so "no calls" is distinguishable from "no run"
    return written


# ------------------------------------------------------------------------------------- SQL and DDL
def load_sql(name: str) -> str:
    """An analyst query (``include/sql/<name>.sql``): the same text runs in Athena and on DuckDB."""
    return (SQL_DIR / f"{name}.sql").read_text()


def render_ddl(table: str, location: str, lobs: tuple[str, ...] = ()) -> str:
    """``CREATE EXTERNAL TABLE`` for ``audit_events`` or ``ledger_snapshot`` at ``location`` (s3://bucket/prefix)."""
    from ocp_ingest.audit.schema import NO_LOB

    text = (SQL_DIR / f"{table}.ddl.sql").read_text()
    values = ",".join(dict.fromkeys([*lobs, NO_LOB]))
    return text.replace("__LOCATION__", location.rstrip("/")).replace("__LOB_VALUES__", values)


def duckdb_connect(audit_url: str) -> Any:
    """A DuckDB connection with views named like the Athena tables over local Parquet (needs ``duckdb``).

    ``approx_percentile`` is defined as a macro (exact ``quantile_cont``) so Athena's query text runs as is.
    """
    import duckdb

    root = object_path(audit_url)
    if not is_local(root):
        raise ValueError("local SQL runs on file:// audit roots; use Athena for s3://")
    base = local_path(root)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute("CREATE MACRO approx_percentile(x, p) AS quantile_cont(x, p)")
    for table, schema, parts in (
        (AUDIT_EVENTS_TABLE, AUDIT_EVENT_SCHEMA, ("dt", "lob")),
        (SNAPSHOT_TABLE, LEDGER_SNAPSHOT_SCHEMA, ("dt",)),
    ):
        files = sorted(Path(base, table).glob("**/*.parquet"))
        if files:
            types = ", ".join(f"'{p}': VARCHAR" for p in parts)
            con.execute(
                f"CREATE VIEW {table} AS SELECT * FROM read_parquet('{base}/{table}/**/*.parquet', "
                f"hive_partitioning = true, hive_types = {{{types}}}, union_by_name = true)"
            )
        else:
            empty = schema
            for p in parts:
                empty = empty.append(pa.field(p, pa.string()))
            with contextlib.suppress(Exception):
                con.register(f"_{table}_empty", empty.empty_table())
            con.execute(f"CREATE VIEW {table} AS SELECT * FROM _{table}_empty")
    return con


def iter_days(first: date, last: date) -> Iterator[date]:
    day = first
    while day <= last:
        yield day
        day += timedelta(days=1)
