"""dag.test() of ocp_completeness_report: the day from the logical date, one XCom with the report's URLs and
totals, and the extra link to the HTML (also through the REST API)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.conftest import load_dag

pytestmark = pytest.mark.usefixtures("airflow_db")


def xcoms(dag_run, task_id: str) -> dict:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.query(XComModel).filter_by(
            dag_id=dag_run.dag_id, run_id=dag_run.run_id, task_id=task_id
        )
        return {row.key: XComModel.deserialize_value(row) for row in rows}


def test_a_run_reports_the_day_before_its_logical_date_with_one_xcom_and_a_link(
    ingest_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dag = load_dag("ocp_completeness_report")
    dag_run = dag.test(logical_date=datetime(2026, 11, 21, 2, tzinfo=UTC))
    assert dag_run.state == "success"
    (html,) = (ingest_home / "audit" / "reports" / "dt=2026-11-20").glob("completeness-*.html")

    got = xcoms(dag_run, "completeness_report")
    assert set(got) == {"return_value", "_link_CompletenessReportLink"}  # not one XCom per key
    value = got["return_value"]
    url = f"file://{html}"
    assert value["date"] == "2026-11-20" and value["html_url"] == url
    assert value["json_url"] == url.removesuffix(".html") + ".json"
    assert value["calls_ended"] == 0 and "completeness_pct" in value
    assert got["_link_CompletenessReportLink"] == url
    assert set(xcoms(dag_run, "snapshot_ledger")) == {"return_value"}

    # The api-server shows the link from the stored XCom (no plugin needed).
    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "True")
    from airflow.api_fastapi.app import create_app
    from fastapi.testclient import TestClient

    links = TestClient(create_app("all")).get(
        f"/api/v2/dags/ocp_completeness_report/dagRuns/{dag_run.run_id}/taskInstances/completeness_report/links"
    )
    assert links.status_code == 200, links.text
    assert links.json()["extra_links"] == {"Completeness report": url}
