"""Task callables of the ``ocp_completeness_report`` DAG: the day in, small JSON out, failure past the SLA.

These are the edge: each reads the settings from the environment once and hands them to the domain
(:mod:`ocp_ingest.audit.tables`, :mod:`ocp_ingest.report`).
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, date, datetime, timedelta
from typing import Any

from ocp_ingest.airflow.audit_actor import task_actor
from ocp_ingest.audit import tables
from ocp_ingest.config import Settings
from ocp_ingest.ledger import open_ledger
from ocp_ingest.report.completeness import CompletenessSlaBreached, build_report, sla_breach_message
from ocp_ingest.report.publish import publish_report

log = logging.getLogger(__name__)


def report_day(params: dict[str, Any], logical_date: datetime | None) -> date:
    """The ``date`` param, else the day before the run (a 02:00 run reports yesterday)."""
    if params.get("date"):
        return date.fromisoformat(str(params["date"]))
    return ((logical_date or datetime.now(UTC)) - timedelta(days=1)).date()


def snapshot(day: date) -> dict[str, Any]:
    settings = Settings.from_env()
    with open_ledger(settings, actor=task_actor()) as ledger:
        files = tables.write_snapshot(ledger, settings, day)
    return {"date": day.isoformat(), "files": files}


def compact(day: date) -> dict[str, Any]:
    settings = Settings.from_env()
    with open_ledger(settings, actor=task_actor()) as ledger:
        # Events a crashed process left in the ledger's outbox first, so the day compacts complete.
        published = ledger.publish_audit()
    done = tables.compact_day(settings.audit_url, day)
    return {
        "date": day.isoformat(),
        "partitions": len(done),
        "events": sum(c.rows for c in done),
        "outbox_published": published,
    }


def report(day: date, ti: Any = None) -> dict[str, Any]:
    """Build, store (new files each run), then judge: past the SLA the task fails.

    The return value (one XCom) is the report's JSON and HTML URLs and the day's totals; with ``ti`` it is
    pushed before an SLA breach fails the task, so the run still links to its report.
    """
    settings = Settings.from_env()
    with open_ledger(settings) as ledger:
        result = build_report(ledger, settings, day)
    stored = publish_report(settings.audit_url, day, result)
    summary = {
        "date": day.isoformat(),
        "json_url": stored["json"],
        "html_url": stored["html"],
        **result["total"],
    }
    log.info("completeness %s: %s", day, json.dumps(result["total"]))
    log.info("report: %s", stored["html"])
    message = sla_breach_message(result)
    if message:
        if ti is not None:
            ti.xcom_push(key="return_value", value=summary)
        raise CompletenessSlaBreached(message)
    return summary
