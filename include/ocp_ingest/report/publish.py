"""Keeping a completeness report and an SLA alert in the audit area: new files each time, never rewritten."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, date, datetime
from typing import Any

from ocp_ingest.report.completeness import render_html, report_json
from ocp_ingest.storage import ObjectExists, write_create_only
from ocp_ingest.storage.layout import report_path, sla_alert_path


def publish_report(
    audit_url: str, day: date, report: dict[str, Any], now: datetime | None = None
) -> dict[str, str]:
    """Store ``report`` as JSON and HTML (``reports/dt=.../completeness-<time>.json|html``); their URLs as
    ``{"json": ..., "html": ...}``.

    A repeat within the same second finds its files already there and keeps them.
    """
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    urls = {}
    for suffix, text in (("json", report_json(report)), ("html", render_html(report))):
        dest = report_path(audit_url, day, stamp, suffix)
        with contextlib.suppress(ObjectExists):
            write_create_only(dest, [text.encode()])
        urls[suffix] = str(dest)
    return urls


def record_sla_alert(audit_url: str, run_id: str, message: str, now: datetime | None = None) -> str:
    """Keep the record of one SLA alert (``reports/alerts/sla-<time>.json``); its URL."""
    dest = sla_alert_path(audit_url, now or datetime.now(UTC))
    body = {"run_id": run_id, "message": message}
    with contextlib.suppress(ObjectExists):
        write_create_only(dest, [json.dumps(body, sort_keys=True).encode()])
    return str(dest)
