"""Task callables of the ``ocp_completeness_report`` DAG: the day in, small JSON out, failure past the SLA."""

from __future__ import annotations

import contextlib
import json
import logging
from datetime import UTC, date, datetime, timedelta
from typing import Any

from airflow.sdk import ObjectStoragePath

from ocp_ingest.airflow.audit_actor import task_actor
from ocp_ingest.audit import tables
from ocp_ingest.config import Settings
from ocp_ingest.ledger import open_ledger
from ocp_ingest.report.completeness import (
    CompletenessSlaBreached,
    build_report,
    render_html,
    report_json,
    sla_breach_message,
)
from ocp_ingest.storage import ObjectExists, write_create_only

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
    done = tables.compact_day(Settings.from_env().audit_url, day)
    return {"date": day.isoformat(), "partitions": len(done), "events": sum(c.rows for c in done)}


def report(day: date) -> dict[str, Any]:
    """Build, store (``reports/dt=.../completeness-<time>.json|html``, new files each run), then judge."""
    settings = Settings.from_env()
    with open_ledger(settings) as ledger:
        result = build_report(ledger, settings, day)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    root = ObjectStoragePath(settings.audit_url) / "reports" / f"dt={day:%Y-%m-%d}"
    for suffix, text in (("json", report_json(result)), ("html", render_html(result))):
        with contextlib.suppress(ObjectExists):
            write_create_only(root / f"completeness-{stamp}.{suffix}", [text.encode()])
    log.info("completeness %s: %s", day, json.dumps(result["total"]))
    message = sla_breach_message(result)
    if message:
        raise CompletenessSlaBreached(message)
    return {"date": day.isoformat(), "report": str(root / f"completeness-{stamp}.json"), **result["total"]}


def alert_on_sla_breach(context: Any) -> None:
    """on_failure_callback of ``completeness_report``: an ERROR alert line and a JSON record (audit area).

    Wire an Airflow notifier (Slack, PagerDuty, e-mail) here or in the DAG if your deployment has one.
    """
    exception = context.get("exception")
    if not isinstance(exception, CompletenessSlaBreached):
        return
    run_id = context.get("run_id") or "run"
    log.error("ALERT %s", exception)
    settings = Settings.from_env()
    dest = ObjectStoragePath(settings.audit_url) / "reports" / "alerts"
    dest = dest / f"sla-{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}.json"
    body = {"run_id": str(run_id), "message": str(exception)}
    with contextlib.suppress(ObjectExists):
        write_create_only(dest, [json.dumps(body, sort_keys=True).encode()])
