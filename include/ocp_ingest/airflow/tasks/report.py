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
from ocp_ingest.report.publish import publish_report, record_sla_alert

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


def report(day: date) -> dict[str, Any]:
    """Build, store (new files each run), then judge: past the SLA the task fails."""
    settings = Settings.from_env()
    with open_ledger(settings) as ledger:
        result = build_report(ledger, settings, day)
    stored = publish_report(settings.audit_url, day, result)
    log.info("completeness %s: %s", day, json.dumps(result["total"]))
    message = sla_breach_message(result)
    if message:
        raise CompletenessSlaBreached(message)
    return {"date": day.isoformat(), "report": stored, **result["total"]}


def alert_on_sla_breach(context: Any) -> None:
    """on_failure_callback of ``completeness_report``: an ERROR alert line and a JSON record (audit area).

    Wire an Airflow notifier (Slack, PagerDuty, e-mail) here or in the DAG if your deployment has one.
    """
    exception = context.get("exception")
    if not isinstance(exception, CompletenessSlaBreached):
        return
    log.error("ALERT %s", exception)
    record_sla_alert(Settings.from_env().audit_url, str(context.get("run_id") or "run"), str(exception))
