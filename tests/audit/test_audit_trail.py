"""Both stages drive calls through the ledger; the audit trail, SQL, report and verify agree with it."""

from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from ocp_ingest.audit import tables
from ocp_ingest.audit.schema import (
    AUDIT_EVENT_PARTITIONS,
    AUDIT_EVENT_SCHEMA,
    LEDGER_SNAPSHOT_PARTITIONS,
    LEDGER_SNAPSHOT_SCHEMA,
    athena_type,
)
from ocp_ingest.cli import main
from ocp_ingest.ledger import CallRecord, IngestionSource
from ocp_ingest.ledger.transitions import CallIdentity, CdrEnd, CdrStart
from ocp_ingest.report.completeness import build_report, render_html, sla_breach_message
from tests.airflow.conftest import (  # noqa: F401  (fixtures)
    Tenant,
    sim_config,
    store_by_realtime,
    tenant_factory,
)
from tests.conftest import load_dag

UNRESOLVED_ID = "F" * 31 + "0"


def drive_both_stages(tenant: Tenant) -> list[CallRecord]:
    """CDRs for every call, 3 calls stored by realtime, the rest by one reconciliation run, one left open."""
    tenant.receive_events(tenant.calls)
    for call in [c for c in tenant.calls if c.has_recording][:3]:
        store_by_realtime(tenant, call)
    dag_run = load_dag("ocp_reconciliation").test()
    assert dag_run.state == "success"
    # One call whose recording never came and that reconciliation has not settled yet: unresolved.
    first = tenant.record(tenant.calls[0].dialog_id)
    identity = CallIdentity(ocp_group=first.ocp_group, lob=first.lob)
    end = first.call_end_ts or datetime.now(UTC)
    tenant.ledger.apply(CdrStart(UNRESOLVED_ID, first.call_start_ts, identity))
    tenant.ledger.apply(CdrEnd(UNRESOLVED_ID, end, 2000, "HANGUP", identity))
    tenant.ledger.flush_audit()
    return [tenant.record(c.dialog_id) for c in tenant.calls] + [tenant.record(UNRESOLVED_ID)]


@pytest.mark.usefixtures("airflow_db")
def test_audit_sql_report_and_verify_agree_with_the_ledger(tenant_factory, capsys) -> None:  # noqa: F811
    tenant: Tenant = tenant_factory(sim_config(calls=10, no_recording_share=0.2))
    records = drive_both_stages(tenant)
    settings = tenant.settings
    audit_url = settings.audit_url
    now = datetime.now(UTC)
    call_days = sorted({r.call_start_ts.date() for r in records})
    first_day, today = call_days[0], now.date()
    stored = [r for r in records if r.s3_stored]
    by_source = Counter((r.lob, r.ingestion_source.value) for r in stored)
    assert {s for _, s in by_source} == {"REALTIME", "RECONCILIATION"}
    assert any(r.terminal_state for r in records)

    # Audit events: one STORED per stored call with the ledger's bytes and source; actors say who.
    events = tables.read_events(audit_url, first_day, today).to_pylist()
    stored_events = [e for e in events if e["event_type"] == "STORED"]
    assert sorted((e["dialog_id"], e["sha256"], e["source"]) for e in stored_events) == sorted(
        (r.dialog_id, r.sha256, r.ingestion_source.value) for r in stored
    )
    assert Counter(e["event_type"] for e in events)["TERMINAL"] == sum(1 for r in records if r.terminal_state)
    assert {e["lob"] for e in stored_events} == {r.lob for r in stored}
    recon_actors = {e["actor"] for e in stored_events if e["source"] == "RECONCILIATION"}
    assert recon_actors and all(a.startswith("download-export/") for a in recon_actors)
    assert any((e["actor"] or "").startswith("ocp_reconciliation/") for e in events)  # task adapters
    files = list(Path(audit_url.removeprefix("file://"), "audit_events").rglob("*.parquet"))
    name = re.compile(r"/dt=\d{4}-\d{2}-\d{2}/lob=[a-z]+/part-[0-9a-f]{32}\.parquet$")
    assert files and all(name.search(str(f)) for f in files)

    # Ledger snapshot + the analyst queries on DuckDB: exact counts against a recount from the ledger.
    tables.write_snapshot(tenant.ledger, settings, today)
    ended = [r for r in records if r.has_cdr_end]

    def run_queries() -> None:
        con = tables.duckdb_connect(audit_url)
        rows = con.execute(tables.load_sql("completeness_by_day_lob"), [today.isoformat()]).fetchall()
        got = {(str(r[0]), r[1]): r[2:8] for r in rows}
        want: dict = {}
        for r in ended:
            key = (r.call_start_ts.date().isoformat(), r.lob)
            c = want.setdefault(key, [0] * 6)
            c[0] += 1
            c[1] += r.s3_stored
            c[2] += r.s3_stored and r.ingestion_source is IngestionSource.REALTIME
            c[3] += r.s3_stored and r.ingestion_source is IngestionSource.RECONCILIATION
            c[4] += not r.s3_stored and r.terminal_state is not None
            c[5] += not r.s3_stored and r.terminal_state is None
        assert got == {k: tuple(v) for k, v in want.items()}

        span = [first_day.isoformat(), today.isoformat()]
        rows = con.execute(tables.load_sql("recovered_share"), span).fetchall()
        lobs = {r.lob for r in stored}
        assert {r[0]: (r[1], r[2]) for r in rows} == {
            lob: (sum(n for (lb, _), n in by_source.items() if lb == lob), by_source[(lob, "RECONCILIATION")])
            for lob in lobs
        }
        rows = con.execute(tables.load_sql("latency_percentiles"), span).fetchall()
        assert {(r[0], r[1]): r[2] for r in rows} == dict(by_source)
        rows = con.execute(tables.load_sql("unresolved_calls"), [today.isoformat()]).fetchall()
        assert [r[0] for r in rows] == [UNRESOLVED_ID]

    run_queries()
    # Compaction merges each partition's small files into one new file, records it, and changes no count.
    compacted = tables.compact_day(audit_url, today)
    assert compacted and all(c.manifest and len(c.replaced) >= 2 for c in compacted)
    for c in compacted:
        assert len(tables.event_files(audit_url, today, c.lob)) == 1
        assert pq.read_table(c.written.removeprefix("file://")).num_rows == sum(f["rows"] for f in c.replaced)
    run_queries()

    # The report's numbers equal a recount from the ledger, for each day of calls.
    for day in call_days:
        report = build_report(tenant.ledger, settings, day, now=now)
        day_calls = [r for r in ended if r.call_start_ts.date() == day]
        total = report["total"]
        assert total["calls_ended"] == len(day_calls)
        assert total["stored_realtime"] == sum(
            r.s3_stored and r.ingestion_source is IngestionSource.REALTIME for r in day_calls
        )
        assert total["stored_reconciliation"] == sum(
            r.s3_stored and r.ingestion_source is IngestionSource.RECONCILIATION for r in day_calls
        )
        assert total["terminal_by_reason"] == dict(
            Counter(r.terminal_state.value for r in day_calls if r.terminal_state and not r.s3_stored)
        )
        assert total["unresolved"] == sum(not r.s3_stored and not r.terminal_state for r in day_calls)
        assert sum(t["calls_ended"] for t in report["by_lob"].values()) == len(day_calls)
        assert total["unresolved_past_sla"] == 0 and sla_breach_message(report) is None
        page = render_html(report)
        assert (
            "<svg" in page
            and "<script" not in page
            and "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
        )
    late_day = tenant.record(UNRESOLVED_ID).call_start_ts.date()
    late = build_report(tenant.ledger, settings, late_day, now=now + timedelta(hours=48))
    assert UNRESOLVED_ID in (sla_breach_message(late) or "")

    # verify: clean first; then a flipped byte and a deleted object are both caught.
    since, until = first_day.isoformat(), today.isoformat()
    assert main(["verify", "--since", since, "--until", until]) == 0
    flipped, deleted = stored[0], stored[-1]
    path = Path(flipped.object_url.removeprefix("file://"))
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    Path(deleted.object_url.removeprefix("file://")).unlink()
    capsys.readouterr()
    assert main(["verify", "--since", since, "--until", until]) == 1
    out = capsys.readouterr().out
    assert f"SHA256_MISMATCH {flipped.dialog_id}" in out and f"MISSING {deleted.dialog_id}" in out


def _ddl_columns(ddl: str) -> tuple[dict[str, str], dict[str, str]]:
    sql = re.sub(r"--[^\n]*", "", ddl)  # comments may hold parentheses
    body = re.search(
        r"CREATE EXTERNAL TABLE IF NOT EXISTS \w+ \((.*?)\)\s*PARTITIONED BY \((.*?)\)", sql, re.S
    )
    assert body, ddl

    def pairs(text: str) -> dict[str, str]:
        return dict(line.strip().rstrip(",").split() for line in text.strip().splitlines() if line.strip())

    parts = dict(p.strip().split() for p in body.group(2).split(","))
    return pairs(body.group(1)), parts


@pytest.mark.parametrize(
    ("table", "schema", "partitions"),
    [
        ("audit_events", AUDIT_EVENT_SCHEMA, AUDIT_EVENT_PARTITIONS),
        ("ledger_snapshot", LEDGER_SNAPSHOT_SCHEMA, LEDGER_SNAPSHOT_PARTITIONS),
    ],
)
def test_athena_ddl_matches_the_parquet_schema(table: str, schema, partitions) -> None:
    ddl = tables.render_ddl(table, "s3://audit-bucket/prefix", ("retail", "cards"))
    columns, parts = _ddl_columns(ddl)
    assert list(columns) == schema.names
    assert columns == {f.name: athena_type(f.type) for f in schema}
    assert parts == partitions
    assert "LOCATION 's3://audit-bucket/prefix/" in ddl and "__" not in ddl
    assert "'projection.enabled' = 'true'" in ddl
    if "lob" in partitions:
        assert "'projection.lob.values' = 'retail,cards,none'" in ddl


@pytest.mark.usefixtures("airflow_db")
def test_report_dag_fails_and_alerts_on_unresolved_calls_past_the_sla(ingest_home: Path, monkeypatch) -> None:
    from ocp_ingest.config import Settings
    from ocp_ingest.ledger import open_ledger

    monkeypatch.setenv("OCP_INGEST_REPORT_SLA_HOURS", "1")
    settings = Settings.from_env()
    start = datetime.now(UTC) - timedelta(hours=30)
    identity = CallIdentity(ocp_group="ocp-banking", lob="retail")
    with open_ledger(settings) as ledger:
        ledger.apply(CdrStart(UNRESOLVED_ID, start, identity))
        ledger.apply(CdrEnd(UNRESOLVED_ID, start + timedelta(minutes=2), 120_000, "HANGUP", identity))
    dag = load_dag("ocp_completeness_report")
    for task in dag.tasks:
        task.retries = 0  # dag.test() would sit out the real retry delay
    dag_run = dag.test(run_conf={"date": start.date().isoformat()})
    assert dag_run.state == "failed"
    audit = ingest_home / "audit"
    assert list((audit / "ledger_snapshot" / f"dt={start:%Y-%m-%d}").glob("*.parquet"))
    assert len(list((audit / "reports" / f"dt={start:%Y-%m-%d}").glob("completeness-*.html"))) >= 1
    alerts = list((audit / "reports" / "alerts").glob("sla-*.json"))
    assert alerts and UNRESOLVED_ID in alerts[0].read_text()
