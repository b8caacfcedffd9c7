"""``ocp-ingest audit snapshot|compact|publish|ddl``, ``ocp-ingest report`` and ``ocp-ingest verify``."""

from __future__ import annotations

import argparse
import getpass
import json
import socket
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path


def _day(value: str) -> date:
    return date.fromisoformat(value)


def _yesterday() -> date:
    return datetime.now(UTC).date() - timedelta(days=1)


def operator_actor() -> str:
    """Who ran a command by hand: ``operator:<user>@<host>``."""
    try:
        user = getpass.getuser()
    except Exception:
        user = "unknown"
    return f"operator:{user}@{socket.gethostname()}"


def _cmd_audit(args: argparse.Namespace) -> int:
    from ocp_ingest.audit import tables
    from ocp_ingest.config import Settings

    settings = Settings.from_env()
    if args.audit_command == "ddl":
        from ocp_ingest.routing import LobRouter

        location = args.location or settings.audit_url
        lobs = LobRouter.load(settings.lob_routing_file).lobs
        for table in ("audit_events", "ledger_snapshot"):
            print(tables.render_ddl(table, location, lobs))
        return 0
    from ocp_ingest.ledger import open_ledger

    if args.audit_command == "publish":
        with open_ledger(settings, actor=operator_actor()) as ledger:
            events = ledger.publish_audit(timedelta(seconds=args.grace_seconds))
        print(json.dumps({"published": events}))
        return 0
    day = args.date or _yesterday()
    if args.audit_command == "compact":
        with open_ledger(settings, actor=operator_actor()) as ledger:
            ledger.publish_audit()  # a crashed process's leftovers first, so the day is complete
        done = tables.compact_day(settings.audit_url, day)
        print(json.dumps([c.__dict__ for c in done], indent=1, default=str))
        return 0

    with open_ledger(settings, actor=operator_actor()) as ledger:
        print("\n".join(tables.write_snapshot(ledger, settings, day)))
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from ocp_ingest.config import Settings
    from ocp_ingest.ledger import open_ledger
    from ocp_ingest.report.completeness import build_report, render_html, report_json, sla_breach_message

    settings = Settings.from_env()
    with open_ledger(settings) as ledger:
        report = build_report(ledger, settings, args.date or _yesterday())
    if args.json:
        Path(args.json).write_text(report_json(report))
    if args.html:
        Path(args.html).write_text(render_html(report))
    print(json.dumps({"date": report["date"], **report["total"]}, indent=1))
    message = sla_breach_message(report)
    if message:
        print(message, file=sys.stderr)
        return 3
    return 0


def _cmd_verify(args: argparse.Namespace) -> int:
    from ocp_ingest.config import Settings
    from ocp_ingest.ledger import open_ledger
    from ocp_ingest.report.verify import verify as run_verify
    from ocp_ingest.report.verify import window

    settings = Settings.from_env()
    start, end = window(args.date, args.since, args.until)
    with open_ledger(settings) as ledger:
        result = run_verify(ledger, settings, start, end, lob=args.lob, sample=args.sample, seed=args.seed)
    for finding in result.findings:
        print(f"{finding.kind.upper()} {finding.dialog_id} {finding.object_url}: {finding.detail}")
    print(json.dumps({"checked": result.checked, "ok": result.ok, "failed": result.failed}))
    return 1 if result.failed else 0


def add_cli(subparsers: argparse._SubParsersAction) -> None:
    audit = subparsers.add_parser("audit", help="audit tables: ledger snapshot, compaction, Athena DDL")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True)
    snapshot = audit_sub.add_parser("snapshot", help="write every call's state as Parquet for a day")
    snapshot.add_argument("--date", type=_day, default=None, help="YYYY-MM-DD (default yesterday, UTC)")
    compact = audit_sub.add_parser("compact", help="merge a day's small audit event files")
    compact.add_argument("--date", type=_day, default=None, help="YYYY-MM-DD (default yesterday, UTC)")
    publish = audit_sub.add_parser(
        "publish", help="publish audit events left in the ledger's outbox (a crashed process's)"
    )
    publish.add_argument(
        "--grace-seconds", type=float, default=300, help="leave younger events to their own process"
    )
    ddl = audit_sub.add_parser("ddl", help="print the Athena CREATE EXTERNAL TABLE statements")
    ddl.add_argument("--location", default=None, help="s3://bucket/prefix (default OCP_INGEST_AUDIT_URL)")
    audit.set_defaults(func=_cmd_audit)

    report = subparsers.add_parser("report", help="the daily completeness report (exit 3 past the SLA)")
    report.add_argument("--date", type=_day, default=None, help="YYYY-MM-DD (default yesterday, UTC)")
    report.add_argument("--json", default=None, help="write the report as JSON here")
    report.add_argument("--html", default=None, help="write the report as a self-contained HTML page here")
    report.set_defaults(func=_cmd_report)

    verify = subparsers.add_parser("verify", help="re-hash stored recordings against the ledger and audit")
    verify.add_argument("--date", type=_day, default=None, help="calls started on this day")
    verify.add_argument("--since", type=_day, default=None, help="first day (inclusive)")
    verify.add_argument("--until", type=_day, default=None, help="last day (inclusive, default today)")
    verify.add_argument("--sample", type=int, default=None, help="check a random sample of N calls")
    verify.add_argument("--seed", type=int, default=None, help="sample seed (repeatable samples)")
    verify.add_argument("--lob", default=None)
    verify.set_defaults(func=_cmd_verify)
