"""The completeness report task as an operator, so its HTML is one click away from the run.

``CompletenessReportOperator`` returns one XCom (``return_value``): the report's JSON and HTML URLs and
the day's headline numbers. Its extra link "Completeness report" (a button on the task instance in the
UI, and ``GET .../taskInstances/completeness_report/links`` in the REST API) opens the HTML. Airflow 3
computes the link in the worker when the task ends and keeps it in XCom (``_link_CompletenessReportLink``),
so the api-server needs no plugin to show it. The XCom is pushed before an SLA breach fails the task, so
the link is there on the days it matters most.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from airflow.sdk import BaseOperator, BaseOperatorLink


def browser_url(url: str) -> str:
    """Where a browser opens a stored object: the S3 console for ``s3://``, the URL itself otherwise."""
    if not url.startswith("s3://"):
        return url
    bucket, _, key = url.removeprefix("s3://").partition("/")
    bucket = bucket.rpartition("@")[2]  # s3://conn_id@bucket/key
    return f"https://s3.console.aws.amazon.com/s3/object/{bucket}?prefix={quote(key)}"


class CompletenessReportLink(BaseOperatorLink):
    """The extra link to the day's HTML report (from the task's return value)."""

    name = "Completeness report"

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        from airflow.sdk.execution_time.xcom import XCom  # the configured XCom backend

        value = XCom.get_value(ti_key=ti_key, key="return_value") or {}
        url = value.get("html_url") if isinstance(value, dict) else None
        return browser_url(url) if url else ""


class CompletenessReportOperator(BaseOperator):
    """Build, store and judge one day's completeness report (the ``date`` param, else the logical date's
    previous day); past the SLA the task fails after storing the report and pushing its XCom."""

    operator_extra_links = (CompletenessReportLink(),)
    ui_color = "#e8f5e9"

    def execute(self, context: Any) -> dict[str, Any]:
        from ocp_ingest.airflow.tasks import report as report_tasks  # at run time: parsing stays cheap

        day = report_tasks.report_day(context["params"], context.get("logical_date"))
        return report_tasks.report(day, ti=context["ti"])
