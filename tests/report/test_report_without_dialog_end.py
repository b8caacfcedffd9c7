"""The completeness report accounts for calls whose dialog_end never arrived (beside the main table)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from ocp_ingest.config import Settings
from ocp_ingest.ledger import IngestionSource, TerminalState, open_ledger
from ocp_ingest.ledger.transitions import CallIdentity, CdrEnd, CdrStart, MarkTerminal, Stored
from ocp_ingest.report.completeness import build_report, render_html, sla_breach_message

DAY = datetime(2026, 11, 20, tzinfo=UTC)
IDENTITY = CallIdentity(ocp_group="ocp-banking", lob="banking")


def test_open_calls_past_the_timeout_are_counted_and_breach_the_sla(ingest_home: Path, monkeypatch) -> None:
    monkeypatch.setenv("OCP_INGEST_OPEN_CALL_TIMEOUT_S", "3600")
    monkeypatch.setenv("OCP_INGEST_REPORT_SLA_HOURS", "24")
    settings = Settings.from_env()
    ended, overdue, stored, escalated, young = ("A" * 32, "B" * 32, "C" * 32, "D" * 32, "E" * 32)
    with open_ledger(settings) as ledger:
        ledger.apply(CdrStart(ended, DAY + timedelta(hours=1), IDENTITY))
        ledger.apply(CdrEnd(ended, DAY + timedelta(hours=1, minutes=2), 120_000, "NORMAL", IDENTITY))
        for d in (overdue, stored, escalated):
            ledger.apply(CdrStart(d, DAY + timedelta(hours=2), IDENTITY))
        ledger.apply(Stored(stored, "file:///r/c.wav", "c" * 64, 10, IngestionSource.REALTIME))
        ledger.apply(MarkTerminal(escalated, TerminalState.UNRECOVERABLE_MAX_ATTEMPTS, "5 attempts"))
        ledger.apply(CdrStart(young, DAY + timedelta(hours=23, minutes=50), IDENTITY))

        now = DAY + timedelta(hours=24)  # the young call started 10 minutes ago: maybe still going on
        report = build_report(ledger, settings, DAY.date(), now=now)
        assert report["total"]["calls_ended"] == 1  # the Athena queries' population is unchanged
        section = report["without_dialog_end"]
        assert section["counts"] == {
            "overdue": 1,
            "stored": 1,
            "terminal:UNRECOVERABLE_MAX_ATTEMPTS": 1,
        }
        assert [c["dialog_id"] for c in section["overdue_calls"]] == [overdue]
        assert sla_breach_message(report) is None
        assert overdue in render_html(report) and young not in render_html(report)

        late = build_report(ledger, settings, DAY.date(), now=now + timedelta(hours=3))
        message = sla_breach_message(late)
        assert message is not None and overdue in message and "never got a dialog_end" in message
        assert late["without_dialog_end"]["counts"]["overdue"] == 2  # the young call is overdue by now
