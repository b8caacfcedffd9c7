"""The completeness report of a settled local stack, run through Airflow's REST API.

:func:`run_reports` triggers ``ocp_completeness_report`` for each day the calls started on, waits for the
runs, and returns where the HTML reports and the runs are.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from ocp_ingest_dev.stack.airflow_api import AirflowApi

REPORT_DAG = "ocp_completeness_report"


@dataclass(frozen=True)
class ReportOutcome:
    day: date
    state: str
    run_url: str
    html: Path | None
    total: dict[str, Any] | None

    def line(self) -> str:
        if self.total is None:
            return f"  report {self.day}: run {self.state}, no report file ({self.run_url})"
        t = self.total
        return (
            f"  report {self.day}: {t.get('completeness_pct')}% complete of {t.get('calls_ended')} calls "
            f"(stored {t.get('stored')}, terminal {t.get('terminal_by_reason')}, unresolved "
            f"{t.get('unresolved')}), run {self.state}\n"
            f"    {self.html.as_uri() if self.html else '-'}\n    {self.run_url}"
        )


def newest_report(reports_root: Path, day: date, since: float) -> tuple[Path | None, dict[str, Any] | None]:
    """The HTML and JSON totals of the newest report of ``day`` written after ``since`` (epoch seconds)."""
    folder = reports_root / f"dt={day:%Y-%m-%d}"
    found = sorted(p for p in folder.glob("completeness-*.json") if p.stat().st_mtime >= since)
    if not found:
        return None, None
    newest = found[-1]
    return newest.with_suffix(".html"), json.loads(newest.read_text())["total"]


def run_reports(api: AirflowApi, days: list[date], reports_root: Path) -> list[ReportOutcome]:
    """One ``ocp_completeness_report`` run per day (the DAG's ``date`` param), waited for in turn."""
    outcomes = []
    for day in days:
        started = time.time() - 1
        run_id = api.trigger(REPORT_DAG, {"date": day.isoformat()})
        state = api.wait(REPORT_DAG, run_id)
        html, total = newest_report(reports_root, day, started)
        outcomes.append(ReportOutcome(day, state, api.run_url(REPORT_DAG, run_id), html, total))
    return outcomes
