"""Keeping reports and SLA alerts: new files at their keys in the audit area, create-only."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

from ocp_ingest.report.completeness import Tally
from ocp_ingest.report.publish import publish_report, record_sla_alert

DAY = date(2026, 11, 20)
NOW = datetime(2026, 11, 21, 2, 0, 5, 123456, tzinfo=UTC)
REPORT = {
    "date": DAY.isoformat(),
    "generated_at": NOW.isoformat(),
    "population": "calls started on the date (UTC) with a dialog_end",
    "sla_hours": 24.0,
    "total": Tally().to_dict(),
    "by_lob": {},
    "unresolved_calls": [],
}


def test_a_report_is_kept_as_json_and_html_and_a_repeat_keeps_the_first(tmp_path: Path) -> None:
    audit = tmp_path / "audit"
    urls = publish_report(audit.as_uri(), DAY, REPORT, now=NOW)
    folder = audit / "reports" / "dt=2026-11-20"
    assert urls["json"].endswith("/reports/dt=2026-11-20/completeness-20261121T020005Z.json")
    assert urls["html"].endswith("/reports/dt=2026-11-20/completeness-20261121T020005Z.html")
    assert sorted(p.name for p in folder.iterdir()) == [
        "completeness-20261121T020005Z.html",
        "completeness-20261121T020005Z.json",
    ]
    assert json.loads((folder / "completeness-20261121T020005Z.json").read_text()) == REPORT
    changed = {**REPORT, "sla_hours": 1.0}
    assert publish_report(audit.as_uri(), DAY, changed, now=NOW) == urls  # same second: kept, not rewritten
    assert json.loads((folder / "completeness-20261121T020005Z.json").read_text()) == REPORT


def test_an_sla_alert_is_recorded_in_the_audit_area(tmp_path: Path) -> None:
    audit = tmp_path / "audit"
    url = record_sla_alert(audit.as_uri(), "scheduled__2026", "completeness SLA breached", now=NOW)
    path = audit / "reports" / "alerts" / "sla-20261121T020005123456Z.json"
    assert url.endswith("/reports/alerts/sla-20261121T020005123456Z.json") and path.exists()
    body = {"run_id": "scheduled__2026", "message": "completeness SLA breached"}
    assert json.loads(path.read_text()) == body
