"""The completeness report of a settled stack, run through Airflow's REST API.

:func:`run_reports` triggers ``ocp_completeness_report`` for each day the calls started on, waits for the
runs, and returns where the HTML reports and the runs are. The reports are read back through the storage
layer, so the same code finds them on local disk (embedded default) and in S3 (distributed topology).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from ocp_ingest.storage.layout import REPORTS_FOLDER
from ocp_ingest.storage.objects import ObjectPath, is_local, local_path, object_path
from ocp_ingest_dev.stack.airflow_api import AirflowApi

REPORT_DAG = "ocp_completeness_report"


@dataclass(frozen=True)
class ReportOutcome:
    day: date
    state: str
    run_url: str
    #: The HTML report: a file:// URI on local disk, the s3:// URL in S3 (None: no report written).
    html: str | None
    total: dict[str, Any] | None

    def line(self) -> str:
        if self.total is None:
            return f"  report {self.day}: run {self.state}, no report file ({self.run_url})"
        t = self.total
        return (
            f"  report {self.day}: {t.get('completeness_pct')}% complete of {t.get('calls_ended')} calls "
            f"(stored {t.get('stored')}, terminal {t.get('terminal_by_reason')}, unresolved "
            f"{t.get('unresolved')}), run {self.state}\n"
            f"    {self.html or '-'}\n    {self.run_url}"
        )


def _stamp_time(path: ObjectPath) -> float:
    # completeness-20261203T031500Z.json: the name carries when it was written (S3 has no cheap mtime).
    stamp = path.name.removeprefix("completeness-").split(".", 1)[0]
    return datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC).timestamp()


def _display(path: ObjectPath) -> str:
    return "file://" + local_path(path) if is_local(path) else str(path)


def newest_report(audit_url: str, day: date, since: float) -> tuple[str | None, dict[str, Any] | None]:
    """The HTML URL and JSON totals of the newest report of ``day`` written since ``since`` (epoch s)."""
    folder = object_path(audit_url) / REPORTS_FOLDER / f"dt={day:%Y-%m-%d}"
    if not folder.exists():
        return None, None
    found = sorted(
        (p for p in folder.iterdir() if p.name.startswith("completeness-") and p.name.endswith(".json")),
        key=lambda p: p.name,
    )
    found = [p for p in found if _stamp_time(p) >= int(since)]
    if not found:
        return None, None
    newest = found[-1]
    html = newest.parent / newest.name.replace(".json", ".html")
    return _display(html), json.loads(newest.read_text())["total"]


def run_reports(api: AirflowApi, days: list[date], audit_url: str) -> list[ReportOutcome]:
    """One ``ocp_completeness_report`` run per day (the DAG's ``date`` param), waited for in turn."""
    outcomes = []
    for day in days:
        started = time.time() - 1
        run_id = api.trigger(REPORT_DAG, {"date": day.isoformat()})
        state = api.wait(REPORT_DAG, run_id)
        html, total = newest_report(audit_url, day, started)
        outcomes.append(ReportOutcome(day, state, api.run_url(REPORT_DAG, run_id), html, total))
    return outcomes
